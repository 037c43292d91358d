// Package storetest is the conformance suite every domain.Store backend must pass: each backend's
// tests call Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Run runs the suite. open must return a new, empty store for each call and close it when the test
// ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) domain.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s domain.Store)
	}{
		{"Plans", testPlans},
		{"PlanErrors", testPlanErrors},
		{"ProxyServers", testProxyServers},
		{"CreateAccount", testCreateAccount},
		{"CreateAccountErrors", testCreateAccountErrors},
		{"GetListAccounts", testGetListAccounts},
		{"UpdateAccount", testUpdateAccount},
		{"PlanDowngrade", testPlanDowngrade},
		{"AuthorizeRevokeProxy", testAuthorizeRevokeProxy},
		{"AddRemoveIP", testAddRemoveIP},
		{"CreateSubAccount", testCreateSubAccount},
		{"UpdateSubAccount", testUpdateSubAccount},
		{"DeleteSubAccount", testDeleteSubAccount},
		{"Usage", testUsage},
		{"UsageErrors", testUsageErrors},
		{"MonthBandwidth", testMonthBandwidth},
		{"ConcurrentUsage", testConcurrentUsage},
		{"ExitUsage", testExitUsage},
		{"Snapshot", testSnapshot},
		{"VersionPerChange", testVersionPerChange},
		{"ConcurrentLimits", testConcurrentLimits},
		{"AddRemoveHostname", testAddRemoveHostname},
		{"SetHostnameIP", testSetHostnameIP},
		{"ListAllHostnames", testListAllHostnames},
		{"ConcurrentHostnames", testConcurrentHostnames},
		{"GetLogin", testGetLogin},
		{"Bans", testBans},
		{"LiftBan", testLiftBan},
		{"BansPage", testBansPage},
		{"BansPageMax", testBansPageMax},
		{"ExitStatuses", testExitStatuses},
		{"WebSessions", testWebSessions},
		{"ConfirmTokens", testConfirmTokens},
		{"ConcurrentConfirm", testConcurrentConfirm},
		{"ChangeFeed", testChangeFeed},
		{"PruneChanges", testPruneChanges},
		{"ConcurrentFeed", testConcurrentFeed},
		{"ImportAccounts", testImportAccounts},
		{"Tokens", testTokens},
		{"LimitsAndProfile", testLimitsAndProfile},
		{"BandwidthLedger", testBandwidthLedger},
		{"IdempotencyKeys", testIdempotencyKeys},
		{"SubAccountHostnames", testSubAccountHostnames},
		{"TokensFollowThePlan", testTokensFollowThePlan},
		{"WebhookEvents", testWebhookEvents},
		{"WebhookExitAndTokenEvents", testWebhookExitAndTokenEvents},
		{"WebhookDeliveryQueue", testWebhookDeliveryQueue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// The fixture: two plans, four proxy servers, alice on the small plan and bob on the big one.
var (
	small = domain.Plan{Name: "small", MaxProxies: 2, MaxSubs: 1, MaxIPs: 2, MaxHostnames: 1, MonthlyBandwidth: 1 << 30, MaxTokens: 2}
	big   = domain.Plan{Name: "big", MaxProxies: 10, MaxSubs: 10, MaxIPs: 10, MaxHostnames: 10, MaxTokens: 5}

	proxyServers = []domain.ProxyServer{
		{Name: "us-ca", Address: "us-ca.example.net:31280", Country: "US"},
		{Name: "de", Address: "de.example.net:31280", Country: "DE"},
		{Name: "fr", Address: "fr.example.net:31280", Country: "FR"},
		{Name: "world", Address: "world.example.net:31280"},
	}
)

const hash = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// seed fills s with the fixture and returns alice and bob.
func seed(t *testing.T, s domain.Store) (alice, bob domain.Account) {
	t.Helper()
	ctx := t.Context()
	for _, p := range []domain.Plan{small, big} {
		must(t, s.CreatePlan(ctx, p))
	}
	for _, p := range proxyServers {
		must(t, s.PutProxyServer(ctx, p))
	}
	alice = mustAccount(t, s, domain.NewAccount{Username: "alice", PasswordHash: hash, Plan: "small", Confirmed: true,
		Proxies: []string{"us-ca"}, IPs: []netip.Addr{ip("192.0.2.1")}})
	bob = mustAccount(t, s, domain.NewAccount{Username: "bob", PasswordHash: hash, Plan: "big", Confirmed: true,
		Proxies: []string{"us-ca", "de"}, IPs: []netip.Addr{ip("198.51.100.1")}})
	return alice, bob
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustAccount(t *testing.T, s domain.Store, a domain.NewAccount) domain.Account {
	t.Helper()
	acc, err := s.CreateAccount(t.Context(), a)
	must(t, err)
	return acc
}

func mustGet(t *testing.T, s domain.Store, username string) domain.Account {
	t.Helper()
	acc, err := s.GetAccount(t.Context(), username)
	must(t, err)
	return acc
}

func mustSub(t *testing.T, s domain.Store, account string, n domain.NewSubAccount) domain.SubAccount {
	t.Helper()
	sub, err := s.CreateSubAccount(t.Context(), account, n)
	must(t, err)
	return sub
}

func version(t *testing.T, s domain.Store) int64 {
	t.Helper()
	v, err := s.Version(t.Context())
	must(t, err)
	return v
}

// errCase is a call that must fail with code, with a user message containing msg.
type errCase struct {
	name string
	call func(ctx context.Context, s domain.Store) error
	code string
	msg  string
}

// runErrCases checks each case, and that a failed call changes nothing (the version stays).
func runErrCases(t *testing.T, s domain.Store, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := version(t, s)
			err := c.call(t.Context(), s)
			wantError(t, err, c.code, c.msg)
			if after := version(t, s); after != before {
				t.Errorf("version after failed call = %d, want %d", after, before)
			}
		})
	}
}

// wantError checks err's code and that its user message contains msg and no internal detail.
func wantError(t *testing.T, err error, code, msg string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("error = %v; code %q, want %q", err, got, code)
	}
	m := domain.ErrorMessage(err)
	if !strings.Contains(m, msg) {
		t.Errorf("message = %q, want it to contain %q", m, msg)
	}
	for _, internal := range []string{"SQL", "sql", "constraint", "UNIQUE", "INSERT", "SELECT"} {
		if strings.Contains(m, internal) {
			t.Errorf("message %q reveals internal detail %q", m, internal)
		}
	}
}
