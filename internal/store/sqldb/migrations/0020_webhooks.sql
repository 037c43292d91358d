-- Webhooks. webhook_events is an outbox: the write that causes an event inserts it in its own
-- transaction, and a node routes it (deleting it) into one webhook_deliveries row per webhook that
-- wants it, in one transaction, so an event is neither lost nor routed twice. A delivery is claimed
-- for a lease (lease_until, unix seconds) by the node that sends it; a node that dies mid-delivery
-- lets the lease run out and another node (or itself, restarted) sends it again: at least once.
CREATE TABLE webhook_events (
    id         {{ID}},
    event_id   TEXT NOT NULL UNIQUE,
    event      TEXT NOT NULL,
    account_id BIGINT NOT NULL DEFAULT 0, -- 0: about no account (exit events)
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id          {{ID}},
    event_id    TEXT NOT NULL,
    event       TEXT NOT NULL,
    account_id  BIGINT NOT NULL DEFAULT 0,
    account     TEXT NOT NULL DEFAULT '',
    operator    BOOLEAN NOT NULL,           -- to an operator webhook; else to the account's own
    url         TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_at     BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    history     TEXT NOT NULL DEFAULT ''    -- every attempt, newest first: "<unix time> <outcome>" lines
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- An account's own webhook: the URL its events go to and the secret they are signed with. The secret
-- is kept as is (not hashed): the node needs it to sign, as the receiver needs it to check.
CREATE TABLE account_webhooks (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A token's token.expiring event is recorded once (expiry_noted), whichever node sees it first.
ALTER TABLE api_tokens ADD COLUMN expiry_noted BOOLEAN NOT NULL DEFAULT FALSE;
