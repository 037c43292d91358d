package api

import (
	"net"
	"net/http"
)

// Redirect answers every plain-HTTP request with 302 to the same path and query on the HTTPS
// listener whose port is httpsPort (API.md §4 row 1). It reads no credentials and writes no body
// a client could mistake for an answer.
func Redirect(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if host == "" {
			host = "localhost"
		}
		target := "https://" + net.JoinHostPort(host, httpsPort) + r.URL.RequestURI()
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusFound)
	})
}
