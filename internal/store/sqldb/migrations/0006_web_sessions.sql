-- Dashboard sign-ins, shared by every API node. id is the SHA-256 of the cookie's secret, so a copy of
-- the table signs nobody in. Not part of the version: no in-memory view depends on it.
CREATE TABLE web_sessions (
    id       TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf     TEXT NOT NULL,
    expires  BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires);
