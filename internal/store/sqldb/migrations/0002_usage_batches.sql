-- Usage batches already applied, so that a flush retried after an unknown commit outcome (the
-- connection broke during COMMIT) is not counted twice. Old rows are pruned by AddUsage.
CREATE TABLE usage_batches (
    id         TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
CREATE INDEX usage_batches_applied_at ON usage_batches (applied_at);
