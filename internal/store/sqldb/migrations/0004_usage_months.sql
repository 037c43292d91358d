-- Bandwidth (bytes in + bytes out) per account and UTC month (YYYY-MM), the account's sub-accounts
-- included. AddUsage keeps it in the same transaction as the usage rows, so it always equals their
-- sum; every node reads one row per account each sync interval instead of summing a month of days.
CREATE TABLE usage_months (
    month      TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    bytes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, account_id)
);
INSERT INTO usage_months (month, account_id, bytes)
    SELECT substr(day, 1, 7), account_id, SUM(bytes_in + bytes_out) FROM usage
    GROUP BY substr(day, 1, 7), account_id HAVING SUM(bytes_in + bytes_out) > 0;
