package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"
)

// releaseVersion is the release's name, set by deploy/release with
// -ldflags "-X github.com/exitmesh/exitmesh/internal/cli.releaseVersion=v1.2.3". A plain go build
// leaves it empty and the main module's version (from the VCS tags) stands in.
var releaseVersion string

// buildFacts is what a binary knows of its own build.
type buildFacts struct {
	Version  string
	Commit   string // "" when built without VCS stamping (go test, -buildvcs=false, no git)
	Time     string // the commit's time, RFC 3339 UTC
	Modified bool   // built from a work tree with uncommitted changes
	Go       string
}

func readBuildFacts() buildFacts {
	f := buildFacts{Version: releaseVersion, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return f.withDefaults()
	}
	if f.Version == "" && info.Main.Version != "(devel)" {
		f.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			f.Commit = s.Value
		case "vcs.time":
			f.Time = s.Value
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				f.Time = t.UTC().Format(time.RFC3339)
			}
		case "vcs.modified":
			f.Modified = s.Value == "true"
		}
	}
	return f.withDefaults()
}

func (f buildFacts) withDefaults() buildFacts {
	if f.Version == "" {
		// Still a semantic version, for scripts that compare them: below every release.
		f.Version = "v0.0.0-devel"
	}
	return f
}

// printVersion writes the version on the first line (what scripts read), then where it came from.
func printVersion(w io.Writer) {
	f := readBuildFacts()
	commit, date := "unknown (built without VCS information)", "unknown"
	if f.Commit != "" {
		commit = f.Commit
		if f.Modified {
			commit += " (with uncommitted changes)"
		}
	}
	if f.Time != "" {
		// The commit's time, not the clock's at build: the same commit builds the same binary.
		date = f.Time
	}
	fmt.Fprintf(w, "exitmesh %s\ncommit:  %s\ndate:    %s\ngo:      %s\n", f.Version, commit, date, f.Go)
}
