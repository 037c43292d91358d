// Package origin is a small web server that reports what it saw of each request — above all the
// client's source address — so the demo and the tests check rotation against what an origin really
// sees, not against the proxy's own claim.
package origin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxBytes bounds /bytes/N and /delay/S answers.
const (
	MaxBytes = 4 << 30
	MaxDelay = 5 * time.Minute
)

// Seen is what the origin reports for a request.
type Seen struct {
	IP      string              `json:"ip"`
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

// Handler serves:
//
//	/ip          the client's IP as plain text
//	/ , /headers JSON Seen: IP, method, host, path and request headers
//	/bytes/N     N bytes of a fixed pseudo-random stream (seed 1), chunked (no Content-Length)
//	/sha256      the hex SHA-256 and length of the request body
//	/delay/S     waits S seconds (fractions allowed), then answers like /
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, ClientIP(r))
	})
	mux.HandleFunc("/", writeSeen)
	mux.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > MaxBytes {
			http.Error(w, "want /bytes/N with 0 <= N <= 4 GiB", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(NewStream(), n))
	})
	mux.HandleFunc("/sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d\n", hex.EncodeToString(h.Sum(nil)), n)
	})
	mux.HandleFunc("/delay/{s}", func(w http.ResponseWriter, r *http.Request) {
		s, err := strconv.ParseFloat(r.PathValue("s"), 64)
		if err != nil || s < 0 || s > MaxDelay.Seconds() {
			http.Error(w, "want /delay/S with 0 <= S <= 300", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(s * float64(time.Second))):
			writeSeen(w, r)
		case <-r.Context().Done():
		}
	})
	return mux
}

func writeSeen(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(Seen{IP: ClientIP(r), Method: r.Method, Host: r.Host, Path: r.URL.Path, Headers: r.Header})
}

// ClientIP is the source address of the connection that carried r.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return strings.TrimPrefix(host, "::ffff:")
}

// NewStream returns the endless pseudo-random byte stream /bytes/N serves, so a client can check
// what it received without the origin sending a hash.
func NewStream() io.Reader { return &stream{rng: rand.NewChaCha8([32]byte{1})} }

type stream struct{ rng *rand.ChaCha8 }

func (s *stream) Read(p []byte) (int, error) { return s.rng.Read(p) }
