-- Answers to POSTs sent with an Idempotency-Key, per account and key, shared by every API node: a
-- retry of a change whose answer was lost gets the first answer again instead of a second application,
-- on whichever node it lands. route and params_hash bind the key to one request: the same key with
-- another request is refused. A claim is pending (status 0) while its request runs; created_at (unix
-- seconds) ages out pending claims of a node that died and forgets answers after a day.
CREATE TABLE idempotency_keys (
    account_id  BIGINT NOT NULL,
    key         TEXT NOT NULL,
    route       TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    status      BIGINT NOT NULL DEFAULT 0,
    body        TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
