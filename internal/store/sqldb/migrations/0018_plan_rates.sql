-- Per-plan rate, speed and concurrency limits, enforced by each node per account (0 = none):
-- requests and tunnel opens per second, bytes per second each way, requests and tunnels in flight.
ALTER TABLE plans ADD COLUMN rate BIGINT NOT NULL DEFAULT 0 CHECK (rate >= 0);
ALTER TABLE plans ADD COLUMN speed BIGINT NOT NULL DEFAULT 0 CHECK (speed >= 0);
ALTER TABLE plans ADD COLUMN connections BIGINT NOT NULL DEFAULT 0 CHECK (connections >= 0);
