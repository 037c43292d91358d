-- Where a proxy server's exits are, as its node's config says, so customers see what they can steer
-- to (API.md, GET /api/proxies/available/). Each is a comma-separated list: the values (country
-- codes, ISO 3166-2 codes, city slugs, AS numbers) never contain a comma, and nothing queries them.
ALTER TABLE proxy_servers ADD COLUMN countries TEXT NOT NULL DEFAULT '';
ALTER TABLE proxy_servers ADD COLUMN regions TEXT NOT NULL DEFAULT '';
ALTER TABLE proxy_servers ADD COLUMN cities TEXT NOT NULL DEFAULT '';
ALTER TABLE proxy_servers ADD COLUMN asns TEXT NOT NULL DEFAULT '';
