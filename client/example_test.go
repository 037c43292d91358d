package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/exitmesh/exitmesh/client"
)

// exampleAPI stands in for an exitmesh node in the examples: it answers like the account API.
func exampleAPI() *httptest.Server {
	mux := http.NewServeMux()
	answer := func(code int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("/api/ip/add/", answer(200, `{"ip":"203.0.113.7"}`))
	mux.HandleFunc("/api/ips/", answer(200, `{"ips":["203.0.113.7"]}`))
	mux.HandleFunc("/api/proxy/add/", answer(402, `{"error":"Your plan \"starter\" allows 3 proxy servers; upgrade your plan to add more."}`))
	return httptest.NewTLSServer(mux)
}

// A script authorizes the machine it runs on, then lists the account's IPs.
func Example() {
	api := exampleAPI() // in real use: https://your-node:8443
	defer api.Close()
	c, err := client.New(api.URL, "alice", "alice-password", client.WithHTTPClient(api.Client()))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // bounds every retry too
	defer cancel()
	if _, err := c.AddIP(ctx, "203.0.113.7"); err != nil {
		panic(err)
	}
	ips, err := c.IPs(ctx)
	fmt.Println(ips, err)
	// Output: [203.0.113.7] <nil>
}

// Errors carry the server's sentence and a hint; errors.Is tells their kind.
func ExampleError() {
	api := exampleAPI()
	defer api.Close()
	c, _ := client.New(api.URL, "alice", "alice-password", client.WithHTTPClient(api.Client()))
	_, err := c.AddProxy(context.Background(), "eu")
	if errors.Is(err, client.ErrPaymentRequired) {
		fmt.Println("upgrade needed:", err)
	}
	// Output: upgrade needed: Your plan "starter" allows 3 proxy servers; upgrade your plan to add more. (upgrade the plan, or confirm the account's email address)
}
