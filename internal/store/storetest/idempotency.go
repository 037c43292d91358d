package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testIdempotencyKeys(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now()
	k := domain.IdempotencyKey{AccountID: 1, Key: "k-1", Route: "/api/ip/add/", ParamsHash: "h1"}
	claim := func(k domain.IdempotencyKey, at time.Time) domain.Claim {
		t.Helper()
		c, err := s.ClaimIdempotencyKey(ctx, k, at)
		must(t, err)
		return c
	}
	if c := claim(k, now); !c.Owned {
		t.Fatalf("the first claim: %+v, want it owned", c)
	}
	if c := claim(k, now); c.Owned || c.Mismatch || c.Answer.Status != 0 {
		t.Errorf("a claim while the first runs: %+v, want pending", c)
	}
	other := k
	other.ParamsHash = "h2"
	if c := claim(other, now); c.Owned || !c.Mismatch {
		t.Errorf("the key with other parameters: %+v, want a mismatch", c)
	}
	must(t, s.FinishIdempotencyKey(ctx, k, domain.IdempotentAnswer{Status: 200, Body: `{"ip":"192.0.2.1"}`}))
	if c := claim(k, now); c.Owned || c.Answer != (domain.IdempotentAnswer{Status: 200, Body: `{"ip":"192.0.2.1"}`}) {
		t.Errorf("a claim after the answer: %+v, want the answer", c)
	}
	otherAccount := k
	otherAccount.AccountID = 2
	if c := claim(otherAccount, now); !c.Owned {
		t.Errorf("the same key of another account: %+v, want it owned", c)
	}
	must(t, s.ReleaseIdempotencyKey(ctx, otherAccount))
	if c := claim(otherAccount, now); !c.Owned {
		t.Errorf("a released key: %+v, want it owned again", c)
	}
	// A pending claim whose node died is taken over after IdempotencyPending; answers are forgotten
	// after IdempotencyTTL.
	if c := claim(otherAccount, now.Add(domain.IdempotencyPending+time.Second)); !c.Owned {
		t.Errorf("a stale pending claim: %+v, want it owned", c)
	}
	if c := claim(k, now.Add(domain.IdempotencyTTL+time.Minute)); !c.Owned {
		t.Errorf("a key a day old: %+v, want it forgotten and owned", c)
	}

	// Concurrent claims of one key: exactly one owns it.
	race := domain.IdempotencyKey{AccountID: 3, Key: "race", Route: "/api/ip/add/", ParamsHash: "h"}
	var owned atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c, err := s.ClaimIdempotencyKey(ctx, race, now)
			if err != nil {
				t.Error(err)
				return
			}
			if c.Owned {
				owned.Add(1)
			}
		})
	}
	wg.Wait()
	if owned.Load() != 1 {
		t.Errorf("%d concurrent claims owned the key, want 1", owned.Load())
	}
}
