package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// checkProxyServer validates p and returns it with the country upper-cased.
func checkProxyServer(p domain.ProxyServer) (domain.ProxyServer, error) {
	if err := domain.ValidateName("Proxy server", p.Name); err != nil {
		return p, err
	}
	if host, port, err := net.SplitHostPort(p.Address); err != nil || host == "" || port == "" {
		return p, domain.Errorf(domain.EINVALID, "Proxy server address %q must be host:port.", p.Address)
	}
	p.Country = strings.ToUpper(p.Country)
	if p.Country != "" && (len(p.Country) != 2 || strings.Trim(p.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "") {
		return p, domain.Errorf(domain.EINVALID, "Country %q must be a two-letter ISO 3166-1 code.", p.Country)
	}
	return p, nil
}

// PutProxyServer adds a proxy server to the catalogue or updates the address, country and TLS of the one
// with that name. An entry that is already exactly p is left alone, without a version change.
func (db *DB) PutProxyServer(ctx context.Context, p domain.ProxyServer) error {
	p, err := checkProxyServer(p)
	if err != nil {
		return fmt.Errorf("put proxy server: %w", err)
	}
	err = db.write(ctx, func(tx *sql.Tx, _ *changeLog) error { // the accounts view does not read the catalogue
		n, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO proxy_servers (name, address, country, tls) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET address = excluded.address, country = excluded.country, tls = excluded.tls
			WHERE proxy_servers.address <> excluded.address OR proxy_servers.country <> excluded.country
				OR proxy_servers.tls <> excluded.tls`,
			p.Name, p.Address, p.Country, p.TLS))
		if err == nil && n == 0 {
			return errUnchanged
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put proxy server %q: %w", p.Name, err)
	}
	return nil
}

// ListProxyServers returns the catalogue, sorted by name.
func (db *DB) ListProxyServers(ctx context.Context) ([]domain.ProxyServer, error) {
	ps := []domain.ProxyServer{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT name, address, country, tls FROM proxy_servers`, nil, func(r *sql.Rows) error {
			var p domain.ProxyServer
			err := r.Scan(&p.Name, &p.Address, &p.Country, &p.TLS)
			ps = append(ps, p)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list proxy servers: %w", err)
	}
	slices.SortFunc(ps, func(a, b domain.ProxyServer) int { return strings.Compare(a.Name, b.Name) })
	return ps, nil
}

// proxyID returns the id of the named proxy server.
func proxyID(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM proxy_servers WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errUnknownProxy(name)
	}
	return id, err
}

// proxyIDs returns the ids of the named proxy servers, in order.
func proxyIDs(ctx context.Context, tx *sql.Tx, names []string) ([]int64, error) {
	ids := make([]int64, 0, len(names))
	for _, name := range names {
		id, err := proxyID(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
