-- Operator lists page through accounts in the order of their usernames ignoring case (usernames are
-- ASCII), and find them by a prefix in any case: an index in that order. {{BYTEORDER}} is the
-- collation that compares bytes: PostgreSQL's default collation may not, SQLite's does.
CREATE INDEX accounts_username_lower ON accounts ((lower(username){{BYTEORDER}}), (username{{BYTEORDER}}));
