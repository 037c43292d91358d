-- A sub-account's authorized hostnames: some of its account's (enforced by the store), so that a
-- parent can give a sub-account its own hostname-authenticated clients (API.md §1, username=<sub>).
CREATE TABLE sub_account_hostnames (
    sub_id   BIGINT NOT NULL REFERENCES sub_accounts (id) ON DELETE CASCADE,
    hostname TEXT NOT NULL,
    PRIMARY KEY (sub_id, hostname)
);
