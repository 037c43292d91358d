package domain

import (
	"context"
	"net/netip"
	"time"
)

// Store is the persistent state of an exitmesh network. Implementations must be safe for concurrent
// use by many goroutines and many processes sharing one database. Every method that changes what
// Snapshot returns increments the Version in the same transaction, which is how other processes learn
// that their in-memory view is stale.
//
// Methods addressing an account take its username and return an *Error with code ENOTFOUND when it
// does not exist. Plan limits are enforced inside the same transaction as the change (ELIMIT).
type Store interface {
	// Plans.
	CreatePlan(ctx context.Context, p Plan) error
	UpdatePlan(ctx context.Context, p Plan) error
	PutPlan(ctx context.Context, p Plan) error // create or replace
	GetPlan(ctx context.Context, name string) (Plan, error)
	ListPlans(ctx context.Context) ([]Plan, error)

	// Accounts.
	CreateAccount(ctx context.Context, a NewAccount) (Account, error)
	// ImportAccounts creates many accounts and their sub-accounts, in batches of a thousand per
	// transaction, each within its plan's limits; the batches before a failing one stay.
	ImportAccounts(ctx context.Context, accounts []BulkAccount) error
	GetAccount(ctx context.Context, username string) (Account, error)
	// ListAccounts returns a page of accounts (see AccountQuery); nothing lists every account at
	// once.
	ListAccounts(ctx context.Context, q AccountQuery) (AccountPage, error)
	CountAccountsByPlan(ctx context.Context) (map[string]int, error)
	UpdateAccount(ctx context.Context, username string, u AccountUpdate) (Account, error)
	AuthorizeProxy(ctx context.Context, username, proxy string) error
	RevokeProxy(ctx context.Context, username, proxy string) error
	AddIP(ctx context.Context, username string, ip netip.Addr) error
	RemoveIP(ctx context.Context, username string, ip netip.Addr) error

	// Hostnames. ip is the address the hostname resolved to (invalid if it did not resolve);
	// SetHostnameIP records a re-resolution and changes the Version only when the address changed.
	AddHostname(ctx context.Context, username, hostname string, ip netip.Addr) error
	RemoveHostname(ctx context.Context, username, hostname string) error
	SetHostnameIP(ctx context.Context, username, hostname string, ip netip.Addr) error
	ListAllHostnames(ctx context.Context) ([]AccountHostname, error)

	// GetLogin finds an account or sub-account by username (ENOTFOUND if neither).
	GetLogin(ctx context.Context, username string) (Login, error)

	// Sub-accounts. Sub-account usernames share one namespace with account usernames.
	CreateSubAccount(ctx context.Context, account string, s NewSubAccount) (SubAccount, error)
	ListSubAccounts(ctx context.Context, account string) ([]SubAccount, error)
	UpdateSubAccount(ctx context.Context, account, sub string, u SubAccountUpdate) (SubAccount, error)
	DeleteSubAccount(ctx context.Context, account, sub string) error

	// API tokens, of an account or of one of its sub-accounts (sub "" for the account's own).
	// CreateToken enforces the plan's MaxTokens over the active tokens of the account and its
	// sub-accounts (ELIMIT), as SetTokenActive does when it activates one; a token id that is not the
	// account's (or its sub-accounts') is ENOTFOUND. FindToken finds a token by its hash, for
	// authentication. TouchTokens records when tokens were last used (never moving a time back) and,
	// like it, changes no Version. Moving an account to a plan with a smaller MaxTokens deactivates its
	// newest active tokens beyond the limit.
	CreateToken(ctx context.Context, account string, t NewToken) (Token, error)
	ListTokens(ctx context.Context, account, sub string) ([]Token, error)
	GetToken(ctx context.Context, account string, id int64) (Token, error)
	SetTokenActive(ctx context.Context, account string, id int64, active bool) (Token, error)
	DeleteToken(ctx context.Context, account string, id int64) error
	FindToken(ctx context.Context, hash string) (Token, error)
	TouchTokens(ctx context.Context, used map[int64]time.Time) error

	// Idempotency keys of the account API, shared by every node. ClaimIdempotencyKey claims k at now
	// in one atomic step, or reports what the key holds (see Claim); it forgets keys older than
	// IdempotencyTTL. FinishIdempotencyKey keeps the answer of a claimed key; ReleaseIdempotencyKey
	// gives up a claim whose request failed, so that a retry runs again.
	ClaimIdempotencyKey(ctx context.Context, k IdempotencyKey, now time.Time) (Claim, error)
	FinishIdempotencyKey(ctx context.Context, k IdempotencyKey, a IdempotentAnswer) error
	ReleaseIdempotencyKey(ctx context.Context, k IdempotencyKey) error

	// Proxy server catalogue.
	PutProxyServer(ctx context.Context, p ProxyServer) error
	ListProxyServers(ctx context.Context) ([]ProxyServer, error)

	// Usage.
	// AddUsage applies a batch of usage deltas once: a batch id seen before is skipped, so a flush
	// retried after an unknown commit outcome is not counted twice.
	AddUsage(ctx context.Context, batch string, deltas map[UsageKey]UsageCounts) error
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)
	// WhoUsedExit returns what each login did through exit in the hours that overlap [from, to),
	// in hour order; PruneExitUsage deletes the hours that ended before before, and says how many
	// rows went.
	WhoUsedExit(ctx context.Context, exit netip.Addr, from, to time.Time) ([]ExitUse, error)
	PruneExitUsage(ctx context.Context, before time.Time) (int64, error)
	// MonthBandwidth reads every account's bandwidth in month (YYYY-MM, UTC) and, in the same
	// snapshot, whether the usage batch with id batch ("" for none) has been applied, so that the
	// process that wrote the batch knows whether the totals include it.
	MonthBandwidth(ctx context.Context, month, batch string) (MonthBandwidth, error)
	// Bandwidth reads, as one snapshot, every login's bytes in the billing periods that start on the
	// days in periods (YYYY-MM-DD; the current ones, CurrentPeriods) and for all time, and whether the
	// usage batch batch ("" for none) has been applied.
	Bandwidth(ctx context.Context, periods []string, batch string) (BandwidthFigures, error)
	// AccountBandwidth reads one account's figures in its current billing period (as of now) and
	// for all time.
	AccountBandwidth(ctx context.Context, account string, now time.Time) (AccountBandwidth, error)

	// Bans. PutBan keeps the later end when ip is banned already; ListBans returns the bans still
	// in force, all of them (a node's ban sharing needs them all); ListBansPage returns one page of
	// them (see BanQuery), for lists a person reads. LiftBan ends ip's ban for the whole network
	// (ENOTFOUND if none is in force), and PutBan then ignores a ban of ip decided (Since) before
	// the lift, one a node wrote late. None changes the Version.
	PutBan(ctx context.Context, b Ban) error
	ListBans(ctx context.Context) ([]Ban, error)
	ListBansPage(ctx context.Context, q BanQuery) (BanPage, error)
	LiftBan(ctx context.Context, ip netip.Addr) error

	// Dashboard sessions. GetWebSession returns ENOTFOUND for an unknown or expired session;
	// CreateWebSession also forgets expired ones. None changes the Version.
	CreateWebSession(ctx context.Context, s WebSession) error
	GetWebSession(ctx context.Context, id string) (WebSession, error)
	DeleteWebSession(ctx context.Context, id string) error

	// Email confirmation links. CreateConfirmToken records one for an account (ENOTFOUND if there is
	// none) and forgets the links that expired more than ConfirmTokenKept ago. ConfirmAccount uses a
	// link: in one transaction it marks the link used and the account confirmed, and returns the
	// account. An unknown (or forgotten) link is ENOTFOUND, a used one ECONFLICT, an expired one
	// EINVALID. Only ConfirmAccount changes the Version.
	CreateConfirmToken(ctx context.Context, t ConfirmToken) error
	ConfirmAccount(ctx context.Context, id string) (Account, error)

	// Exit health. PutExitStatuses replaces everything node reported before; neither changes the
	// Version.
	PutExitStatuses(ctx context.Context, node string, s []ExitStatus) error
	ListExitStatuses(ctx context.Context) ([]ExitStatus, error)

	// Webhooks. The writes that cause events record them in their own transaction (account created,
	// disabled, enabled; an exit's health changing in PutExitStatuses; a usage batch crossing 80% or
	// 100% of a limit in AddUsage), as NoteExpiringTokens does for tokens that expire within
	// TokenExpiryNotice (once per token, limit at a time). RouteWebhookEvents turns up to limit
	// recorded events into deliveries, one per operator route that wants the type and one to the
	// account's own webhook for customer events, each event once across nodes.
	// ClaimWebhookDeliveries leases due deliveries for lease; FinishWebhookDelivery records an
	// attempt. None changes the Version.
	RouteWebhookEvents(ctx context.Context, routes []WebhookRoute, limit int) (int, error)
	ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookDelivery, error)
	FinishWebhookDelivery(ctx context.Context, id int64, a WebhookAttempt) error
	ListWebhookDeliveries(ctx context.Context, limit int) ([]WebhookDelivery, error)
	NoteExpiringTokens(ctx context.Context, now time.Time, limit int) (int, error)
	SetAccountWebhook(ctx context.Context, username string, w AccountWebhook) error // URL "": remove
	GetAccountWebhook(ctx context.Context, username string) (AccountWebhook, error)

	// Change tracking for in-memory views. Every write that changes what Snapshot returns records
	// entries in the change feed under the version it sets; ChangesSince reads them in order with the
	// state they name (at most limit versions at a time), and PruneChanges forgets those written
	// before a time (returning how many). Snapshot's Version is where a reader of the feed starts.
	Version(ctx context.Context) (int64, error)
	Snapshot(ctx context.Context) (Snapshot, error)
	ChangesSince(ctx context.Context, after int64, limit int) (Delta, error)
	PruneChanges(ctx context.Context, before time.Time) (int64, error)

	Close() error
}
