// Package domain is exitmesh's vocabulary: plans, accounts, sub-accounts, proxy servers and usage,
// the Store interface every backend implements, and the error kinds callers map to user-facing answers.
// It imports nothing of the project, so every other package can depend on it.
package domain

import (
	"net/netip"
	"time"
)

// Plan is a set of limits an account subscribes to. A zero limit on MonthlyBandwidth means unlimited;
// the other limits are exact counts (0 allows none).
type Plan struct {
	Name             string
	MaxProxies       int
	MaxSubs          int
	MaxIPs           int
	MaxHostnames     int
	MonthlyBandwidth int64 // bytes per calendar month (UTC); 0 = unlimited
	MaxTokens        int   // active API tokens of an account and its sub-accounts together
	// Rate, Speed and Connections are enforced by each node on its own (0 = none): requests and
	// tunnel opens per second per account, bytes per second per account each way, and requests and
	// tunnels in flight per account.
	Rate        int
	Speed       int64
	Connections int
}

// Account is a customer login with everything the proxy needs to authorize it.
type Account struct {
	ID           int64
	Username     string
	PasswordHash string // PHC-formatted argon2id; never the password
	Plan         string
	Confirmed    bool
	Disabled     bool
	CreatedAt    time.Time
	Proxies      []string     // names of authorized proxy servers, sorted
	IPs          []netip.Addr // authorized client IPs, sorted
	Hostnames    []Hostname   // authorized hostnames, sorted by name
	Limits                    // the account's own bandwidth limits, on top of its plan's
	BillingDay   int          // the day (1-28) its billing period starts each month, 00:00 UTC
}

// Limits are bandwidth limits of an account or sub-account, in bytes; 0 = none. Monthly counts the
// account's billing period, Total all time.
type Limits struct {
	MonthlyLimit int64
	TotalLimit   int64
}

// MaxBillingDay is the last day of the month a billing period may start: every month has it.
const MaxBillingDay = 28

// PeriodStart returns the first instant (00:00 UTC) of the billing period holding t of an account
// whose periods start on billingDay (1-28; anything else counts as 1).
func PeriodStart(billingDay int, t time.Time) time.Time {
	if billingDay < 1 || billingDay > MaxBillingDay {
		billingDay = 1
	}
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), billingDay, 0, 0, 0, 0, time.UTC)
	if t.Day() < billingDay {
		start = start.AddDate(0, -1, 0)
	}
	return start
}

// PeriodOf is the billing period (its first day, YYYY-MM-DD) holding the day (YYYY-MM-DD) for an
// account whose periods start on billingDay.
func PeriodOf(billingDay int, day string) string {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return ""
	}
	return PeriodStart(billingDay, t).Format(time.DateOnly)
}

// CurrentPeriods returns the first day (YYYY-MM-DD) of the billing period holding t for each billing
// day 1-28, in that order.
func CurrentPeriods(t time.Time) []string {
	out := make([]string, MaxBillingDay)
	for d := range MaxBillingDay {
		out[d] = PeriodStart(d+1, t).Format(time.DateOnly)
	}
	return out
}

// Hostname is an authorized hostname and the address it last resolved to.
type Hostname struct {
	Name       string
	IP         netip.Addr // invalid (zero) until first resolved
	ResolvedAt time.Time
}

// AccountHostname is a hostname with the account that authorized it, for re-resolution.
type AccountHostname struct {
	Account string // username
	Hostname
}

// Login is an account or a sub-account, found by username.
type Login struct {
	Username     string
	PasswordHash string
	AccountID    int64
	Account      string // the account's username (equal to Username for an account)
	SubID        int64  // 0 for an account
}

// IsSub reports whether the login is a sub-account.
func (l Login) IsSub() bool { return l.SubID != 0 }

// SubAccount is a child login of an account: its own password, a subset of the parent's proxy servers
// and authorized IPs. It can use the proxies but not the account API.
type SubAccount struct {
	ID           int64
	AccountID    int64
	Username     string
	PasswordHash string
	Active       bool
	Proxies      []string
	IPs          []netip.Addr
	Hostnames    []string // names of some of its account's authorized hostnames, sorted
	Profile
	Limits // its own, on top of its account's
}

// Profile is who a sub-account is for, as its account describes it.
type Profile struct {
	Email, FirstName, LastName string
}

// ProxyServer is an entry of the proxy server catalogue: a location customers may authorize.
type ProxyServer struct {
	Name    string
	Address string // host:port customers connect to
	Country string // ISO 3166-1 alpha-2, or empty
	TLS     bool   // its port also takes TLS: https:// proxy URLs work
	Places         // where its exits are, as its node's config says
}

// Places is what a proxy server's exits offer to steering (X-ProxyMesh-Country, -Region, -City,
// -ASN), each list sorted and without repeats; nil when no exit says.
type Places struct {
	Countries []string // ISO 3166-1 alpha-2
	Regions   []string // ISO 3166-2, "US-CA"
	Cities    []string // slugs, "los_angeles"
	ASNs      []uint32
}

// NewAccount is what CreateAccount needs.
type NewAccount struct {
	Username     string
	PasswordHash string
	Plan         string
	Confirmed    bool
	Proxies      []string
	IPs          []netip.Addr
}

// AccountQuery selects a page of accounts, in the order of their usernames ignoring case (then
// exactly, for names that differ only in case).
type AccountQuery struct {
	Prefix string // only usernames that start with it, in any case ("" for all)
	After  string // only usernames after it: the previous page's Next ("" for the first page)
	Limit  int    // at most this many; 0, or more than MaxAccountPage, means MaxAccountPage
}

// MaxAccountPage is the most accounts one page holds.
const MaxAccountPage = 1000

// AccountPage is one page of accounts, and where the next one starts ("" after the last).
type AccountPage struct {
	Accounts []Account
	Next     string
}

// BulkAccount is an account to import with its sub-accounts (Store.ImportAccounts).
type BulkAccount struct {
	Account NewAccount
	Subs    []NewSubAccount
}

// AccountUpdate changes the fields that are non-nil.
type AccountUpdate struct {
	PasswordHash *string
	Plan         *string
	Confirmed    *bool
	Disabled     *bool
	MonthlyLimit *int64
	TotalLimit   *int64
	BillingDay   *int // the account's usage in its new current period is counted again from the days' rows
}

// NewSubAccount is what CreateSubAccount needs.
type NewSubAccount struct {
	Username     string
	PasswordHash string
	Proxies      []string
	IPs          []netip.Addr
	Profile
	Limits
}

// SubAccountUpdate changes the fields that are non-nil.
type SubAccountUpdate struct {
	PasswordHash *string
	Active       *bool
	Proxies      *[]string
	IPs          *[]netip.Addr
	Hostnames    *[]string // each one of the account's
	Email        *string
	FirstName    *string
	LastName     *string
	MonthlyLimit *int64
	TotalLimit   *int64
}

// UsageKey identifies one usage counter: who, through which proxy server, on which UTC day, and
// through which exit in which hour. The store keeps the day's counters per login and proxy server
// (summing the exits) and, apart, the exit's counters per hour for abuse attribution (WhoUsedExit);
// a key without an exit counts toward the day only.
type UsageKey struct {
	AccountID int64
	SubID     int64 // 0 when the account itself was used
	Proxy     string
	Day       string     // YYYY-MM-DD, UTC
	Exit      netip.Addr // the exit used; invalid when unknown
	Hour      int64      // the Unix time of the hour's start, UTC, with Exit
}

// ExitUse is what one login did through one exit of a proxy server in one hour: the answer to an
// abuse complaint that names the exit's IP and a time.
type ExitUse struct {
	Hour       time.Time // the hour's start, UTC
	Exit       netip.Addr
	Proxy      string
	Username   string // the account
	SubAccount string // "" for the account's own traffic; "(deleted #ID)" for a sub-account since deleted
	UsageCounts
}

// UsageCounts are the counters kept per UsageKey. BytesIn flows from the client towards the origin,
// BytesOut from the origin back to the client.
type UsageCounts struct {
	BytesIn  int64
	BytesOut int64
	Requests int64
	Tunnels  int64
}

// Add adds o to c.
func (c *UsageCounts) Add(o UsageCounts) {
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
	c.Requests += o.Requests
	c.Tunnels += o.Tunnels
}

// UsageRow is one line of a usage report.
type UsageRow struct {
	Username   string // the account
	SubAccount string // empty for the account's own traffic
	Proxy      string
	Day        string
	UsageCounts
}

// UsageFilter narrows a usage report. Empty fields do not filter; From and To are inclusive dates.
type UsageFilter struct {
	Username string
	From, To string
}

// MonthBandwidth is the bandwidth every account used in one calendar month (UTC), as one snapshot
// of the store. Bandwidth is bytes in plus bytes out, the account's sub-accounts included.
type MonthBandwidth struct {
	Month   string          // YYYY-MM
	Bytes   map[int64]int64 // account id → bytes; accounts without traffic are absent
	Applied bool            // the usage batch asked about is part of Bytes
}

// MonthOf returns the month (YYYY-MM) of a day (YYYY-MM-DD).
func MonthOf(day string) string { return day[:min(len(day), 7)] }

// BandwidthKey names one login's bytes in one period: an account's own traffic (SubID 0) or a
// sub-account's, in a billing period (Period: its first day, YYYY-MM-DD) or for all time (Period "").
type BandwidthKey struct {
	AccountID int64
	SubID     int64
	Period    string
}

// AccountBandwidth is what an account and each of its sub-accounts used (bytes in + out) in the
// account's current billing period and for all time. Sub 0 is the account's own traffic; a deleted
// sub-account's bytes stay in the account's figures.
type AccountBandwidth struct {
	PeriodStart time.Time // 00:00 UTC on the account's billing day; the period ends a month later
	Logins      map[int64]Used
}

// Used is one login's bytes in the current period and for all time.
type Used struct {
	Period, Total int64
}

// Sum is the account's figures, every sub-account included.
func (b AccountBandwidth) Sum() Used {
	var u Used
	for _, l := range b.Logins {
		u.Period += l.Period
		u.Total += l.Total
	}
	return u
}

// BandwidthFigures are logins' bytes (in + out) as one snapshot of the store; logins without traffic
// are absent. Applied reports whether the usage batch asked about is part of them.
type BandwidthFigures struct {
	Bytes   map[BandwidthKey]int64
	Applied bool
}

// Ban is a temporary ban of a client IP, shared by the nodes.
type Ban struct {
	IP     netip.Addr
	Until  time.Time
	Reason string    // what earned it, e.g. "auth-failure"
	Since  time.Time // when the node decided it; zero when unknown (PutBan takes it as now)
}

// BanQuery selects a page of the bans in force, in the byte order of their IPs' text ("192.0.2.10"
// before "192.0.2.2"): the order in which a typed prefix of an address is one range of an index.
type BanQuery struct {
	Prefix string // only IPs whose text starts with it, e.g. "203.0.113." or "2001:db8:" ("" for all)
	After  string // only IPs after it: the previous page's Next ("" for the first page)
	Limit  int    // at most this many; 0, or more than MaxBanPage, means MaxBanPage
}

// MaxBanPage is the most bans one page holds.
const MaxBanPage = 1000

// MaxBanPrefix is the longest prefix a BanQuery takes (the longest IP text is 45 characters).
const MaxBanPrefix = 64

// BanPage is one page of bans, and where the next one starts ("" after the last).
type BanPage struct {
	Bans []Ban
	Next string
}

// WebSession is a dashboard sign-in. ID is the hash of the secret in the browser's cookie; CSRF is
// the token every form of the session must carry.
type WebSession struct {
	ID       string
	Username string
	CSRF     string
	Expires  time.Time
}

// ConfirmToken is a single-use email confirmation link of an account. ID is the hash of the secret
// in the link, so the store never holds a usable link.
type ConfirmToken struct {
	ID       string
	Username string // the account
	Expires  time.Time
}

// ConfirmTokenKept is how long a confirmation link is kept after it expires, used or not, so that
// following it says "expired" or "already used" rather than "not valid".
const ConfirmTokenKept = 7 * 24 * time.Hour

// ExitStatus is one exit's health as the node hosting it last reported it.
type ExitStatus struct {
	Node, Proxy string
	IP          netip.Addr
	Via         string // the upstream proxy, password removed; "" for a local address
	Healthy     bool   // in rotation as far as health checks go
	Active      bool   // in the active set of pool turnover
	Latency     time.Duration
	Checks      int64
	Failures    int64
	LastError   string
	Since       time.Time // when it last entered or left rotation; zero if it never did
	Updated     time.Time // when the node reported it
}

// Token is an API token (API.md §2.2) of an account or of one of its sub-accounts. The token itself
// is never stored: Hash is the hex SHA-256 of it, Prefix its first characters, to tell tokens apart.
type Token struct {
	ID        int64
	AccountID int64
	SubID     int64  // 0: the account's own
	Login     string // the username of the account or sub-account it authenticates as
	Label     string
	Prefix    string
	Hash      string
	Created   time.Time
	Expires   time.Time // zero: never
	LastUsed  time.Time // zero: never used (as far as the nodes have reported)
	Active    bool
}

// Usable reports whether the token authenticates at now: active and not expired.
func (t Token) Usable(now time.Time) bool {
	return t.Active && (t.Expires.IsZero() || now.Before(t.Expires))
}

// NewToken is what CreateToken needs.
type NewToken struct {
	Sub     string // the sub-account it is for; "" for the account itself
	Label   string
	Prefix  string
	Hash    string
	Expires time.Time // zero: never
}

// MaxTokenLabel is the longest label a token takes.
const MaxTokenLabel = 100

// IdempotencyKey is a POST's Idempotency-Key, bound to its account, route and parameters.
type IdempotencyKey struct {
	AccountID  int64
	Key        string
	Route      string
	ParamsHash string
}

// IdempotentAnswer is the answer kept for a key: an HTTP status and its body.
type IdempotentAnswer struct {
	Status int
	Body   string
}

// Claim is what claiming a key found. Owned: the caller holds the key and must run its request, then
// finish or release it. Otherwise Answer is the kept answer (Status 0 while the first request still
// runs), and Mismatch says the key was used with another route or parameters.
type Claim struct {
	Owned    bool
	Mismatch bool
	Answer   IdempotentAnswer
}

// Idempotency keys are kept IdempotencyTTL, and a pending claim (its request running) at most
// IdempotencyPending: a claim older than that is taken for one whose node died, and may be claimed
// again.
const (
	IdempotencyTTL     = 24 * time.Hour
	IdempotencyPending = time.Minute
)

// Snapshot is everything the proxy's in-memory authorization view is built from, read in one
// consistent transaction. Accounts and Subs come in no particular order (sorting a million of them
// would only slow a full load down).
type Snapshot struct {
	Version  int64
	Plans    []Plan
	Accounts []Account
	Subs     []SubAccount
	Tokens   []Token
}
