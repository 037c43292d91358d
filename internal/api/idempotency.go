package api

import (
	"net/http"
	"sync"
	"time"
)

// Idempotent POSTs: a client that sends "Idempotency-Key: K" on a change and retries it with the same
// K (its first answer was lost to a broken connection) gets the first answer again instead of a second
// application of the change — no "IP address is already authorized." for an add that did succeed.
// Answers are remembered per account for idempotencyTTL, in the memory of the API node.

const (
	idempotencyHeader = "Idempotency-Key"
	idempotencyTTL    = 24 * time.Hour
	maxIdempotencyKey = 128
	maxRemembered     = 100_000
)

type idemKey struct {
	account int64
	key     string
}

// outcome is a handler's answer as serve returns it.
type outcome struct {
	result any
	err    error
	at     time.Time
}

type idempotency struct {
	mu      sync.Mutex // guards answers
	answers map[idemKey]outcome
}

// key returns the request's idempotency key for account, if it is a POST that carries one.
func idempotencyKey(c *call) (idemKey, bool, error) {
	k := c.r.Header.Get(idempotencyHeader)
	switch {
	case c.r.Method != http.MethodPost || k == "":
		return idemKey{}, false, nil
	case len(k) > maxIdempotencyKey:
		return idemKey{}, false, newError(http.StatusBadRequest, "Idempotency-Key must be at most 128 characters.")
	}
	return idemKey{account: c.caller.Account.ID, key: k}, true, nil
}

func (m *idempotency) lookup(k idemKey, now time.Time) (outcome, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.answers[k]
	if ok && now.Sub(o.at) > idempotencyTTL {
		delete(m.answers, k)
		ok = false
	}
	return o, ok
}

// remember keeps a final answer: a success or a 4xx. A 5xx is not kept, so the retry runs again.
func (m *idempotency) remember(k idemKey, o outcome) {
	if o.err != nil {
		if ae := asAPIError(o.err); ae == nil || ae.Status >= 500 {
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.answers == nil || len(m.answers) >= maxRemembered {
		m.answers = make(map[idemKey]outcome) // forgetting early only costs a replay
	}
	m.answers[k] = o
}
