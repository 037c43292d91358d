package domain

import (
	"slices"
	"time"
)

// Webhook event types. The store records an event in the same transaction as the change it reports,
// so an event is neither lost nor recorded twice, whichever node made the change.
const (
	EventBandwidth80     = "bandwidth.80"     // a login's use crossed 80% of one of its limits
	EventBandwidth100    = "bandwidth.100"    // … reached the limit
	EventTokenExpiring   = "token.expiring"   // an API token expires within TokenExpiryNotice
	EventExitDown        = "exit.down"        // an exit left rotation (operator only)
	EventExitUp          = "exit.up"          // an exit came back into rotation (operator only)
	EventAccountCreated  = "account.created"  // (operator only)
	EventAccountDisabled = "account.disabled" // (operator only)
	EventAccountEnabled  = "account.enabled"  // (operator only)
)

// EventTypes lists every event type, in the order documentation shows them.
var EventTypes = []string{EventBandwidth80, EventBandwidth100, EventTokenExpiring, EventExitDown, EventExitUp,
	EventAccountCreated, EventAccountDisabled, EventAccountEnabled}

// CustomerEvents are the types an account's own webhook receives (about that account only).
var CustomerEvents = []string{EventBandwidth80, EventBandwidth100, EventTokenExpiring}

// IsCustomerEvent reports whether an account's webhook receives events of type t.
func IsCustomerEvent(t string) bool { return slices.Contains(CustomerEvents, t) }

// TokenExpiryNotice is how long before an API token expires its token.expiring event is sent.
const TokenExpiryNotice = 7 * 24 * time.Hour

// WebhookRetention is how long a delivery is retried; after it the delivery is given up (and kept,
// marked failed, for the operator to see until WebhookKept).
const WebhookRetention = 24 * time.Hour

// WebhookKept is how long finished deliveries (delivered or given up) stay in the store.
const WebhookKept = 7 * 24 * time.Hour

// MaxWebhookURL is the longest webhook URL accepted.
const MaxWebhookURL = 2048

// WebhookRoute is one operator webhook from the config: where events of the listed types go.
type WebhookRoute struct {
	URL    string
	Events []string
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // given up after WebhookRetention
)

// WebhookDelivery is one event on its way to one webhook URL.
type WebhookDelivery struct {
	ID        int64
	EventID   string // the event's id, the same in every delivery of the event
	Event     string // its type
	Account   string // the account it is about ("" for exit events)
	Operator  bool   // to an operator webhook (URL from the config); else the account's own
	URL       string
	Body      []byte
	Secret    string // the account's signing secret (customer deliveries, filled by Claim)
	Created   time.Time
	State     string
	Attempts  int
	NextAt    time.Time
	LastAt    time.Time        // the last attempt; zero before the first
	LastError string           // the last attempt's outcome: "" when it succeeded
	History   []WebhookAttempt // every attempt, newest first (Next unset); filled by ListWebhookDeliveries
}

// WebhookAttempt is the outcome of one delivery attempt.
type WebhookAttempt struct {
	At    time.Time
	Error string    // "" when the receiver answered 2xx
	Next  time.Time // when to try again after a failure; zero: give up
}

// AccountWebhook is an account's own webhook: its URL and the secret its deliveries are signed with.
type AccountWebhook struct {
	URL     string
	Secret  string
	Updated time.Time
}
