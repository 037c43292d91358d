-- Temporary IP bans, shared by every node of the network. Not part of the version: nodes read the
-- active ones each sync, so a flood of bans never forces full account reloads.
CREATE TABLE bans (
    ip     TEXT PRIMARY KEY,
    until  BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX bans_until ON bans (until);
