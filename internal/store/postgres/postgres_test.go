package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store/pgtest"
	"github.com/exitmesh/exitmesh/internal/store/postgres"
	"github.com/exitmesh/exitmesh/internal/store/storetest"
)

func open(t *testing.T, url string) domain.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.Store { return open(t, pgtest.URL(t)) })
}

// Nodes starting together migrate one database once, and then see each other's changes.
func TestNodesShareOneDatabase(t *testing.T) {
	url := pgtest.URL(t)
	stores := make([]domain.Store, 4)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Error(err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s == nil {
			t.FailNow()
		}
		defer s.Close()
	}
	ctx := context.Background()
	v0, _ := stores[1].Version(ctx)
	if err := stores[0].PutPlan(ctx, domain.Plan{Name: "p", MaxProxies: 1}); err != nil {
		t.Fatal(err)
	}
	v1, err := stores[1].Version(ctx)
	if err != nil || v1 != v0+1 {
		t.Errorf("another node's version: %d → %d (%v), want +1", v0, v1, err)
	}
	if p, err := stores[3].GetPlan(ctx, "p"); err != nil || p.MaxProxies != 1 {
		t.Errorf("another node reads %+v, %v", p, err)
	}
}
