// Package benchstore seeds the stores that the load harness (bench/harness) and the scale benchmark
// (bench/scale) measure, through the store's own bulk path.
package benchstore

import (
	"context"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/store"
)

// chunk is how many accounts are built in memory and imported at a time.
const chunk = 50_000

// Seed opens the store of the config at cfgPath, provisions the config's plans and proxy servers, and
// imports n accounts, account(i, hash) for i from 0 to n-1, all with password, hashed once (argon2id
// takes a tenth of a second).
func Seed(ctx context.Context, cfgPath, password string, n int, account func(i int, hash string) domain.BulkAccount) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := node.ProvisionMissing(ctx, st, cfg); err != nil {
		return err
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	for start := 0; start < n; start += chunk {
		batch := make([]domain.BulkAccount, 0, min(chunk, n-start))
		for i := start; i < min(start+chunk, n); i++ {
			batch = append(batch, account(i, hash))
		}
		if err := st.ImportAccounts(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}
