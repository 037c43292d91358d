-- Which login used which exit, per hour (abuse attribution): an abuse complaint names an exit IP and a
-- time. hour is the Unix time of the hour's start (UTC); rows older than usage.exit_retention are
-- pruned. The primary key leads with the exit and the hour, the complaint's two facts.
CREATE TABLE exit_usage (
    exit_ip    TEXT NOT NULL,
    hour       BIGINT NOT NULL,
    proxy      TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    sub_id     BIGINT NOT NULL,
    bytes_in   BIGINT NOT NULL DEFAULT 0,
    bytes_out  BIGINT NOT NULL DEFAULT 0,
    requests   BIGINT NOT NULL DEFAULT 0,
    tunnels    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (exit_ip, hour, proxy, account_id, sub_id)
);
CREATE INDEX exit_usage_hour ON exit_usage (hour);
