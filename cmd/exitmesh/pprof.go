//go:build pprof

package main

// Built with -tags pprof (bench/run does), exitmesh serves net/http/pprof on the address in
// EXITMESH_PPROF, for the load harness's profiles. The product binary has no such listener.

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("EXITMESH_PPROF")
	if addr == "" {
		return
	}
	go func() { log.Print(http.ListenAndServe(addr, nil)) }()
}
