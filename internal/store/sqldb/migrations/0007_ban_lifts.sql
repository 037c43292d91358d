-- Operators lift bans. A lifted ban stays as a row (lifted > 0) until PutBan prunes it with the
-- expired ones, so that a ban a node decided before the lift and writes after it stays lifted.
-- decided and lifted are unix milliseconds: a lift and a new ban often fall in the same second.
ALTER TABLE bans ADD COLUMN decided BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bans ADD COLUMN lifted BIGINT NOT NULL DEFAULT 0;
