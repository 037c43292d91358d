-- Bandwidth limits of accounts and sub-accounts and their billing period (API.md §2.1): limits are bytes
-- (0 = none); an account's billing period runs from its billing_day (1-28) to the same day of the next
-- month, 00:00 UTC. Sub-accounts gain profile fields.
ALTER TABLE accounts ADD COLUMN monthly_limit BIGINT NOT NULL DEFAULT 0 CHECK (monthly_limit >= 0);
ALTER TABLE accounts ADD COLUMN total_limit BIGINT NOT NULL DEFAULT 0 CHECK (total_limit >= 0);
ALTER TABLE accounts ADD COLUMN billing_day BIGINT NOT NULL DEFAULT 1 CHECK (billing_day BETWEEN 1 AND 28);
ALTER TABLE sub_accounts ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE sub_accounts ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE sub_accounts ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
ALTER TABLE sub_accounts ADD COLUMN monthly_limit BIGINT NOT NULL DEFAULT 0 CHECK (monthly_limit >= 0);
ALTER TABLE sub_accounts ADD COLUMN total_limit BIGINT NOT NULL DEFAULT 0 CHECK (total_limit >= 0);

-- Bytes (in + out) per login (sub_id 0: the account's own traffic) and billing period (its first day,
-- YYYY-MM-DD), and per login for all time. AddUsage keeps both in the transaction of the usage rows, so
-- every node reads one row per login instead of summing days. Accounts start on billing day 1: their
-- periods so far are calendar months.
CREATE TABLE usage_periods (
    account_id BIGINT NOT NULL,
    sub_id     BIGINT NOT NULL,
    period     TEXT NOT NULL,
    bytes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, sub_id, period)
);
CREATE INDEX usage_periods_period ON usage_periods (period);
INSERT INTO usage_periods (account_id, sub_id, period, bytes)
    SELECT account_id, sub_id, substr(day, 1, 7) || '-01', SUM(bytes_in + bytes_out) FROM usage
    GROUP BY account_id, sub_id, substr(day, 1, 7) HAVING SUM(bytes_in + bytes_out) > 0;

CREATE TABLE usage_totals (
    account_id BIGINT NOT NULL,
    sub_id     BIGINT NOT NULL,
    bytes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, sub_id)
);
INSERT INTO usage_totals (account_id, sub_id, bytes)
    SELECT account_id, sub_id, SUM(bytes_in + bytes_out) FROM usage
    GROUP BY account_id, sub_id HAVING SUM(bytes_in + bytes_out) > 0;
