package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
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
	var de *domain.Error
	if !errors.As(err, &de) {
		return nil // internal: the caller answers 500 with a request id
	}
	status, ok := statusOf[de.Code]
	switch {
	case !ok:
		return nil
	case de.Code == domain.EUNAVAILABLE:
		return errUnavailable
	}
	return &apiError{Status: status, Message: de.Message, Fields: de.Fields, RetryAfter: de.RetryAfter}
}

// Refusal is how an error of the account rules is answered over HTTP: the status, the sentence and
// the form fields' messages. It is nil for an internal error, which is answered 500 with a request
// id and logged. The dashboard shows refusals with the same statuses and words as the API.
func Refusal(err error) (status int, message string, fields map[string][]string, ok bool) {
	ae := asAPIError(err)
	if ae == nil {
		return http.StatusInternalServerError, "", nil, false
	}
	return ae.Status, ae.Message, ae.Fields, true
}

// statusOf is the status of each domain error code.
var statusOf = map[string]int{
	domain.EINVALID:     http.StatusBadRequest,
	domain.ECONFLICT:    http.StatusBadRequest, // "already authorized" is row 13's 400
	domain.EFORBIDDEN:   http.StatusForbidden,
	domain.ENOTFOUND:    http.StatusNotFound,
	domain.ELIMIT:       http.StatusPaymentRequired,
	domain.EUNAVAILABLE: http.StatusServiceUnavailable,
}
