package domain

// ChangeKind names what a change feed entry says changed.
type ChangeKind string

const (
	// ChangeAccount: an account or one of its sub-accounts changed (created, updated, a sub-account
	// added or deleted, an IP, proxy server or hostname address, an API token). Ref is the account's id.
	ChangeAccount ChangeKind = "account"
	// ChangePlans: a plan was created or its limits changed. Ref is 0.
	ChangePlans ChangeKind = "plans"
)

// Change is one entry of the store's change feed. Seq is the store version of the write that made
// it; one write may make several entries, all with its Seq.
type Change struct {
	Seq  int64
	Kind ChangeKind
	Ref  int64
}

// Delta is what changed in the store after version From up to version To, read in one snapshot:
// the feed entries, and the current state of what they name. An account an entry names that is
// missing from Accounts no longer exists.
type Delta struct {
	From, To int64
	Head     int64 // the store's version when the delta was read: To < Head means more follows
	Changes  []Change
	Accounts []Account    // the accounts named by ChangeAccount entries, as they are at To
	Subs     []SubAccount // every sub-account of those accounts
	Tokens   []Token      // every API token of those accounts and their sub-accounts
	Plans    []Plan       // every plan, when a ChangePlans entry is among Changes; else nil
	// Gap means entries after From are no longer kept (or From is ahead of the store): the reader
	// must load a full Snapshot instead.
	Gap bool
}
