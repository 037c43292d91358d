-- Whether a proxy server also takes TLS on its port (https:// proxy URLs), as its node's config says:
-- the dashboard shows customers the URLs that work.
ALTER TABLE proxy_servers ADD COLUMN tls BOOLEAN NOT NULL DEFAULT FALSE;
