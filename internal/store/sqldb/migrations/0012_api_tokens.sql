-- API tokens (API.md §2.2): bearer secrets of an account or one of its sub-accounts (sub_id; NULL for
-- the account's own). hash is the hex SHA-256 of the token, which is never stored; prefix is its start,
-- to tell tokens apart in a list. expires_at and last_used_at are unix seconds, 0 for never. A token's
-- creation, activation, deactivation and deletion are changes of its account in the feed; last_used_at
-- is not (the nodes batch it).
ALTER TABLE plans ADD COLUMN max_tokens BIGINT NOT NULL DEFAULT 0 CHECK (max_tokens >= 0);

CREATE TABLE api_tokens (
    id           {{ID}},
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sub_id       BIGINT REFERENCES sub_accounts (id) ON DELETE CASCADE,
    label        TEXT NOT NULL DEFAULT '',
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    active       BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE INDEX api_tokens_account_id ON api_tokens (account_id);
