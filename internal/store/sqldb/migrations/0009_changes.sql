-- The change feed: what each write changed that nodes keep in memory, numbered by the version the
-- write set (meta.version), so that entries commit in sequence order. kind is 'account' (ref: the
-- account's id; the account or one of its sub-accounts changed) or 'plans' (ref 0: a plan's limits).
-- at is when it was written (unix seconds), for pruning; meta.changes_pruned is the highest seq pruned,
-- and a node whose view is older than that loads in full.
CREATE TABLE changes (
    seq  BIGINT NOT NULL,
    kind TEXT NOT NULL,
    ref  BIGINT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX changes_seq ON changes (seq);
INSERT INTO meta (key, value) VALUES ('changes_pruned', 0);
