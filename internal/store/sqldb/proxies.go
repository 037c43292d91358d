package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
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
	if p.Country != "" && !isCountry(p.Country) {
		return p, domain.Errorf(domain.EINVALID, "Country %q must be a two-letter ISO 3166-1 code.", p.Country)
	}
	return p, checkPlaces(&p.Places)
}

// checkPlaces sorts the lists of pl and drops repeats, and refuses a value that is not in its one
// case and form: the lists are stored comma-separated, so the forms are what keeps commas out.
func checkPlaces(pl *domain.Places) error {
	for _, c := range pl.Countries {
		if !isCountry(c) {
			return domain.Errorf(domain.EINVALID, "Exit country %q must be a two-letter ISO 3166-1 code.", c)
		}
	}
	for _, r := range pl.Regions {
		if norm, ok := domain.NormalizeRegion(r); !ok || norm != r {
			return domain.Errorf(domain.EINVALID, "Exit region %q must be an ISO 3166-2 code such as US-CA.", r)
		}
	}
	for _, c := range pl.Cities {
		if norm, ok := domain.NormalizeCity(c); !ok || norm != c {
			return domain.Errorf(domain.EINVALID, "Exit city %q must be a lower-case slug such as los_angeles.", c)
		}
	}
	pl.Countries, pl.Regions, pl.Cities = sortedSet(pl.Countries), sortedSet(pl.Regions), sortedSet(pl.Cities)
	pl.ASNs = sortedSet(pl.ASNs)
	return nil
}

func isCountry(c string) bool {
	return len(c) == 2 && strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
}

func sortedSet[T cmp.Ordered](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// joinList is a list as its column holds it; splitList reads it back, nil for none.
func joinList(s []string) string { return strings.Join(s, ",") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func joinASNs(asns []uint32) string {
	parts := make([]string, len(asns))
	for i, a := range asns {
		parts[i] = strconv.FormatUint(uint64(a), 10)
	}
	return joinList(parts)
}

func splitASNs(s string) ([]uint32, error) {
	var asns []uint32
	for _, part := range splitList(s) {
		a, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("proxy server asns %q: %w", s, err)
		}
		asns = append(asns, uint32(a))
	}
	return asns, nil
}

// PutProxyServer adds a proxy server to the catalogue or updates the address, country, TLS and places
// of the one with that name. An entry that is already exactly p is left alone, without a version change.
func (db *DB) PutProxyServer(ctx context.Context, p domain.ProxyServer) error {
	p, err := checkProxyServer(p)
	if err != nil {
		return fmt.Errorf("put proxy server: %w", err)
	}
	err = db.write(ctx, func(tx *sql.Tx, _ *changeLog) error { // the accounts view does not read the catalogue
		n, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO proxy_servers (name, address, country, tls, countries, regions, cities, asns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (name) DO UPDATE SET address = excluded.address, country = excluded.country, tls = excluded.tls,
				countries = excluded.countries, regions = excluded.regions, cities = excluded.cities, asns = excluded.asns
			WHERE proxy_servers.address <> excluded.address OR proxy_servers.country <> excluded.country
				OR proxy_servers.tls <> excluded.tls OR proxy_servers.countries <> excluded.countries
				OR proxy_servers.regions <> excluded.regions OR proxy_servers.cities <> excluded.cities
				OR proxy_servers.asns <> excluded.asns`,
			p.Name, p.Address, p.Country, p.TLS, joinList(p.Countries), joinList(p.Regions), joinList(p.Cities), joinASNs(p.ASNs)))
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
		return queryEach(ctx, tx, `SELECT name, address, country, tls, countries, regions, cities, asns FROM proxy_servers`, nil, func(r *sql.Rows) error {
			var p domain.ProxyServer
			var countries, regions, cities, asns string
			if err := r.Scan(&p.Name, &p.Address, &p.Country, &p.TLS, &countries, &regions, &cities, &asns); err != nil {
				return err
			}
			var err error
			p.Countries, p.Regions, p.Cities = splitList(countries), splitList(regions), splitList(cities)
			p.ASNs, err = splitASNs(asns)
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
