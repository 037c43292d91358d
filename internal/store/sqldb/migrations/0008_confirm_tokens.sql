-- Email confirmation links of self sign-up, shared by every API node. id is the SHA-256 of the link's
-- secret, so a copy of the table confirms nobody. used is when the link was used (unix seconds), 0 while
-- it is not; links are deleted domain.ConfirmTokenKept after they expire. Not part of the version: only
-- the confirmation itself (accounts.confirmed) is.
CREATE TABLE confirm_tokens (
    id         TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires    BIGINT NOT NULL,
    used       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX confirm_tokens_expires ON confirm_tokens (expires);
CREATE INDEX confirm_tokens_account_id ON confirm_tokens (account_id);
