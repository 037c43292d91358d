// Package webhooks delivers the network's events (domain.EventTypes) to the operator's webhooks
// (config) and to accounts' own: it routes the store's outbox into deliveries, sends each with an
// HMAC-SHA256 signature, and retries with backoff for domain.WebhookRetention. Delivery is at least
// once; receivers drop repeats by the event id in the body.
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>".
// Signing the time with the body lets receivers refuse a replayed request (see Verify).
const SignatureHeader = "X-Exitmesh-Signature"

// Sign returns the SignatureHeader value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrBadSignature is returned by Verify for a signature that does not match.
var ErrBadSignature = errors.New("webhook signature does not match")

// Verify checks a SignatureHeader value against body and secret, and that it was made within
// tolerance of now (0: any time). It is what a receiver written in Go runs; the docs show the same
// steps for other languages.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if s, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, s)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("webhook signature %q: want t=<unix time>,v1=<hex>", header)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = ok || hmac.Equal(s, want)
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); tolerance > 0 && (d > tolerance || d < -tolerance) {
		return fmt.Errorf("webhook signed at %s, more than %s from now", time.Unix(sec, 0).UTC().Format(time.RFC3339), tolerance)
	}
	return nil
}
