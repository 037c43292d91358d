package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVersionShowsCommit builds exitmesh as a person does in a git checkout, with VCS stamping
// (go test's own builds have none, and the environment may turn it off: -buildvcs=true overrides
// GOFLAGS), and requires that "exitmesh version" names the commit, its time, and whether the work
// tree had changes.
func TestVersionShowsCommit(t *testing.T) {
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", args...).Output()
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("git %v: %v", args, err)
			}
			t.Skipf("needs git and a git checkout: git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	root := git("rev-parse", "--show-toplevel")
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		// The go command looks for a .git directory; a linked worktree has a .git file.
		t.Skipf("%s is not a plain checkout (a git worktree?): go build stamps no VCS information there; deploy/release builds from a clone", root)
	}
	head := git("rev-parse", "HEAD")
	commitTime, err := time.Parse(time.RFC3339, git("show", "-s", "--format=%cI", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	dirty := git("status", "--porcelain") != ""

	bin := filepath.Join(t.TempDir(), "exitmesh")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("exitmesh version: %v\n%s", err, out)
	}
	commit := head
	if dirty {
		commit += " (with uncommitted changes)"
	}
	want := `^exitmesh v\S+\ncommit:  ` + regexp.QuoteMeta(commit) + `\ndate:    ` +
		regexp.QuoteMeta(commitTime.UTC().Format(time.RFC3339)) + `\ngo:      go\S+ \w+/\w+\n$`
	if !regexp.MustCompile(want).Match(out) {
		t.Errorf("exitmesh version:\n%s\nwant a match of %s", out, want)
	}
}
