package api

import (
	_ "embed"
	"net/http"
)

const openAPIPath = "/api/openapi.json"

//go:embed openapi.json
var openAPI []byte

// serveOpenAPI serves the API's OpenAPI 3 document; it needs no credentials.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(openAPI)
}
