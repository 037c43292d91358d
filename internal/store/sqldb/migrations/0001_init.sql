-- The exitmesh schema, one text for every database: portable types (BIGINT, TEXT, BOOLEAN), and
-- {{ID}} for a generated id column, which each dialect spells its own way (sqldb.Dialect.IDColumn). Times are unix seconds, days YYYY-MM-DD, IP addresses the
-- canonical netip.Addr.String() form (IPv4-mapped IPv6 unmapped).

-- meta.version is incremented by every change to what Snapshot returns.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('version', 0);

CREATE TABLE plans (
    id                {{ID}},
    name              TEXT NOT NULL UNIQUE,
    max_proxies       BIGINT NOT NULL CHECK (max_proxies >= 0),
    max_subs          BIGINT NOT NULL CHECK (max_subs >= 0),
    max_ips           BIGINT NOT NULL CHECK (max_ips >= 0),
    max_hostnames     BIGINT NOT NULL CHECK (max_hostnames >= 0),
    monthly_bandwidth BIGINT NOT NULL CHECK (monthly_bandwidth >= 0) -- bytes; 0 = unlimited
);

-- One namespace for account and sub-account usernames: the proxy identifies a login by name alone.
CREATE TABLE logins (
    username TEXT PRIMARY KEY
);

-- Generated ids are never reused, so usage rows of a deleted sub-account stay its own.
CREATE TABLE accounts (
    id            {{ID}},
    username      TEXT NOT NULL UNIQUE REFERENCES logins (username),
    password_hash TEXT NOT NULL,
    plan_id       BIGINT NOT NULL REFERENCES plans (id),
    confirmed     BOOLEAN NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sub_accounts (
    id            {{ID}},
    account_id    BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    username      TEXT NOT NULL UNIQUE REFERENCES logins (username),
    password_hash TEXT NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT NOT NULL
);
CREATE INDEX sub_accounts_account_id ON sub_accounts (account_id);

CREATE TABLE proxy_servers (
    id      {{ID}},
    name    TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    country TEXT NOT NULL DEFAULT ''
);

CREATE TABLE account_proxies (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    proxy_id   BIGINT NOT NULL REFERENCES proxy_servers (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, proxy_id)
);

-- An IP address authorizes one account network-wide, or IP authentication would be ambiguous.
CREATE TABLE account_ips (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    ip         TEXT NOT NULL UNIQUE,
    PRIMARY KEY (account_id, ip)
);

-- ip is '' and resolved_at 0 until the hostname is first resolved.
CREATE TABLE account_hostnames (
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    hostname    TEXT NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    resolved_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, hostname)
);

-- Always subsets of the parent account's lists (enforced by the store).
CREATE TABLE sub_account_proxies (
    sub_id   BIGINT NOT NULL REFERENCES sub_accounts (id) ON DELETE CASCADE,
    proxy_id BIGINT NOT NULL REFERENCES proxy_servers (id) ON DELETE CASCADE,
    PRIMARY KEY (sub_id, proxy_id)
);

CREATE TABLE sub_account_ips (
    sub_id BIGINT NOT NULL REFERENCES sub_accounts (id) ON DELETE CASCADE,
    ip     TEXT NOT NULL,
    PRIMARY KEY (sub_id, ip)
);
CREATE INDEX sub_account_ips_ip ON sub_account_ips (ip);

-- Counters per account, sub-account (0 = the account itself), proxy server name and UTC day. No
-- foreign keys: a flush of counters must never fail or block because of a concurrent change, and
-- the usage of a deleted sub-account stays in the account's totals.
CREATE TABLE usage (
    account_id BIGINT NOT NULL,
    sub_id     BIGINT NOT NULL DEFAULT 0,
    proxy      TEXT NOT NULL,
    day        TEXT NOT NULL,
    bytes_in   BIGINT NOT NULL DEFAULT 0,
    bytes_out  BIGINT NOT NULL DEFAULT 0,
    requests   BIGINT NOT NULL DEFAULT 0,
    tunnels    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, sub_id, proxy, day)
);
CREATE INDEX usage_day ON usage (day);
