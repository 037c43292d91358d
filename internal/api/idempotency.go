package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Idempotent POSTs: a client that sends "Idempotency-Key: K" on a change and retries it with the same
// K (its first answer was lost to a broken connection) gets the first answer again instead of a second
// application of the change — no "IP address is already authorized." for an add that did succeed. The
// key is the account's, bound to the endpoint and a hash of the parameters, and kept in the store for
// domain.IdempotencyTTL, so it holds on every API node and under concurrent retries: the first claims
// it, the others wait for its answer (up to idempotencyWait) and get that answer.

const (
	idempotencyHeader = "Idempotency-Key"
	maxIdempotencyKey = 128
	idempotencyWait   = 10 * time.Second      // how long a retry waits for the first request's answer
	idempotencyPoll   = 50 * time.Millisecond // how often it looks
	idempotencyStore  = 5 * time.Second       // bound on keeping an answer, whatever the client does
)

var (
	errKeyReused = newError(http.StatusUnprocessableEntity,
		"This Idempotency-Key was already used with another request (endpoint or parameters); use a new key for a new request.")
	errKeyBusy = &apiError{Status: http.StatusConflict, RetryAfter: time.Second,
		Message: "A request with this Idempotency-Key is still being processed; retry in a moment to get its answer."}
)

// idempotencyKey returns the request's key, if it is a POST that carries one.
func idempotencyKey(c *call) (domain.IdempotencyKey, bool, error) {
	k := c.r.Header.Get(idempotencyHeader)
	switch {
	case c.r.Method != http.MethodPost || k == "":
		return domain.IdempotencyKey{}, false, nil
	case len(k) > maxIdempotencyKey:
		return domain.IdempotencyKey{}, false, newError(http.StatusBadRequest, "Idempotency-Key must be at most 128 characters.")
	}
	return domain.IdempotencyKey{AccountID: c.caller.Account.ID, Key: k, Route: c.route.path, ParamsHash: paramsHash(c.params)}, true, nil
}

// paramsHash is a hash of the parameters, the same whatever their order or encoding.
func paramsHash(p params) string {
	h := sha256.New()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range p {
			if !yield(k) {
				return
			}
		}
	}) {
		h.Write([]byte(name))
		for _, v := range p[name] {
			h.Write([]byte{0})
			h.Write([]byte(v))
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// claim claims k for this request, or finds the answer to replay: the first request's, waiting while
// it runs.
func (s *Server) claim(c *call, k domain.IdempotencyKey) (replay *domain.IdempotentAnswer, err error) {
	ctx := c.r.Context()
	deadline := time.Now().Add(idempotencyWait)
	for {
		got, err := s.cfg.Store.ClaimIdempotencyKey(ctx, k, s.cfg.Now())
		switch {
		case err != nil:
			return nil, err
		case got.Owned:
			return nil, nil
		case got.Mismatch:
			return nil, errKeyReused
		case got.Answer.Status != 0:
			return &got.Answer, nil
		case time.Now().After(deadline):
			return nil, errKeyBusy
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(idempotencyPoll):
		}
	}
}

// keep stores the answer written for a claimed key; a 5xx is not kept but released, so that the
// retry runs the request again. It runs whether or not the client is still there: a lost answer is
// what the key is for.
func (s *Server) keep(c *call, k domain.IdempotencyKey, rec *recorder) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), idempotencyStore)
	defer cancel()
	var err error
	if rec.status >= http.StatusInternalServerError {
		err = s.cfg.Store.ReleaseIdempotencyKey(ctx, k)
	} else {
		err = s.cfg.Store.FinishIdempotencyKey(ctx, k, domain.IdempotentAnswer{Status: rec.status, Body: rec.body.String()})
	}
	if err != nil {
		s.log.Warn("idempotency key not kept", "request_id", c.id, "err", err)
	}
}

// writeReplay answers with a kept answer.
func writeReplay(w http.ResponseWriter, a *domain.IdempotentAnswer) {
	h := w.Header()
	h.Set("Idempotent-Replayed", "true")
	h.Set("Cache-Control", "no-store")
	if a.Body != "" {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(a.Status)
	w.Write([]byte(a.Body))
}

// recorder passes an answer through and keeps a copy of its status and body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
