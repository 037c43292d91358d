package benchdoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSectionKeepsTheRestOfTheDocument(t *testing.T) {
	s := Section{Key: "soak", Writer: "bench/soak/run", Title: "Soak"}
	path := filepath.Join(t.TempDir(), "SOAK.md")
	if err := s.Write(path, "first run\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "# Soak\n\n## Results\n\n<!-- soak:results:begin (written by bench/soak/run; edits here are lost) -->\nfirst run\n") {
		t.Fatalf("new document:\n%s", b)
	}
	os.WriteFile(path, []byte("# Soak\n\nBy hand.\n\n"+string(b)[len("# Soak\n\n"):]+"\n## After\n\nBy hand too.\n"), 0o644)
	if err := s.Write(path, "second run\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"By hand.", "second run", "By hand too."} {
		if !strings.Contains(got, want) {
			t.Errorf("document lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "first run") || strings.Count(got, "soak:results:begin") != 1 {
		t.Errorf("the results section was not replaced:\n%s", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
