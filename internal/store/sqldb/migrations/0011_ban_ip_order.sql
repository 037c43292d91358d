-- Operator lists page through the bans in force in the byte order of the IPs' text, and find them by
-- a prefix of it: an index in that order. The primary key cannot serve on PostgreSQL, where it is in
-- the database's collation; on SQLite, whose text compares bytes, this index repeats its order.
CREATE INDEX bans_ip_order ON bans (ip{{BYTEORDER}});
