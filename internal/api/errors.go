package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/httperr"
)

// apiError is an answer other than success: status, headers and the JSON body of API.md §3.
type apiError struct {
	Status     int
	Message    string
	Fields     map[string][]string // form errors, by parameter
	RetryAfter time.Duration
	Allow      string
	Unauth     bool // add WWW-Authenticate
}

func (e *apiError) Error() string { return e.Message }

func newError(status int, msg string) *apiError { return &apiError{Status: status, Message: msg} }

const planErrorRetry = 2 * time.Minute

var (
	errNotFound       = newError(http.StatusNotFound, "Not found.")
	errUnauthorized   = &apiError{Status: http.StatusUnauthorized, Message: "Authentication required: use HTTP Basic with your account's username and password, or an API token as Authorization: Bearer.", Unauth: true}
	errSubAccount     = newError(http.StatusForbidden, "Sub-accounts cannot use the API; use the account's username and password.")
	errBearerOnTokens = newError(http.StatusForbidden, "API tokens are managed with the account's username and password (HTTP Basic), not with a token.")
	errPlan           = &apiError{Status: http.StatusServiceUnavailable, Message: account.PlanErrorMessage, RetryAfter: planErrorRetry}
	errUnavailable    = &apiError{Status: http.StatusServiceUnavailable, Message: "The service is temporarily unavailable. Please try again in a few minutes.", RetryAfter: planErrorRetry}
)

// asAPIError maps any error of a handler or the store to its answer (API.md §4); this is the one
// place where domain error codes become statuses. Anything unknown is a 500.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, account.ErrPlan) {
		return errPlan
	}
	status, de, ok := httperr.Status(err)
	switch {
	case !ok:
		return nil // internal: the caller answers 500 with a request id
	case de.Code == domain.EUNAVAILABLE:
		return errUnavailable
	}
	return &apiError{Status: status, Message: de.Message, Fields: de.Fields, RetryAfter: de.RetryAfter}
}
