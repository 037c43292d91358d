-- Exit health as each node last reported it, for operators. Not part of the version: it changes with
-- every health check and no node's view depends on it.
CREATE TABLE exit_status (
    node       TEXT NOT NULL,
    proxy      TEXT NOT NULL,
    ip         TEXT NOT NULL,
    via        TEXT NOT NULL,
    healthy    BOOLEAN NOT NULL,
    active     BOOLEAN NOT NULL,
    latency_us BIGINT NOT NULL,
    checks     BIGINT NOT NULL,
    failures   BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    since      BIGINT NOT NULL,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (node, proxy, ip)
);
