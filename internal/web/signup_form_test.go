package web

import (
	"maps"
	"testing"
)

func TestSignupProblems(t *testing.T) {
	tests := []struct {
		email, password, again string
		want                   map[string][]string
	}{
		{"alice@example.com", "alice-password", "alice-password", map[string][]string{}},
		{"a.b-c_d@mail.example.co.uk", "alice-password", "alice-password", map[string][]string{}},
		{"", "", "", map[string][]string{"email": {msgRequired}, "password": {msgRequired}}},
		{"alice", "alice-password", "alice-password", map[string][]string{"email": {msgNotEmail}}},
		{"alice@", "alice-password", "alice-password", map[string][]string{"email": {msgNotEmail}}},
		{"alice@@example.com", "alice-password", "alice-password", map[string][]string{"email": {msgNotEmail}}},
		{"alice@192.0.2.1", "alice-password", "alice-password", map[string][]string{"email": {msgNotEmail}}},
		{"@example.com", "alice-password", "alice-password", map[string][]string{"email": {"Username may contain only letters, digits and . _ @ - and must start with a letter or digit."}}},
		{"a-session-b@example.com", "alice-password", "alice-password", map[string][]string{"email": {`Username may not contain "-session-": it starts a steering parameter.`}}},
		{"alice@example.com", "alice-password", "alice-passw0rd", map[string][]string{"password": {msgPasswordsDiff}}},
		{"alice@example.com", "short", "short", map[string][]string{"password": {"Password must be at least 8 characters long."}}},
	}
	for _, tt := range tests {
		got := signupProblems(tt.email, tt.password, tt.again)
		if !maps.EqualFunc(got, tt.want, func(a, b []string) bool { return len(a) == 1 && len(b) == 1 && a[0] == b[0] }) {
			t.Errorf("signupProblems(%q, %q, %q) = %q, want %q", tt.email, tt.password, tt.again, got, tt.want)
		}
	}
}
