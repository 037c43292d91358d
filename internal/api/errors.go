package api

import (
	"errors"
	"net/http"
	"time"

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

// formError is the 400 of API.md §4 row 12: one message per invalid parameter.
func formError(fields map[string][]string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: "Invalid form data", Fields: fields}
}

func fieldError(field, msg string) *apiError { return formError(map[string][]string{field: {msg}}) }

const planErrorRetry = 2 * time.Minute

var (
	errNotFound     = newError(http.StatusNotFound, "Not found.")
	errUnauthorized = &apiError{Status: http.StatusUnauthorized, Message: "Authentication required: use HTTP Basic with your account's username and password.", Unauth: true}
	errSubAccount   = newError(http.StatusForbidden, "Sub-accounts cannot use the API; use the account's username and password.")
	errDisabled     = newError(http.StatusForbidden, "This account is disabled; contact support.")
	errSubNotFound  = newError(http.StatusNotFound, "Sub-account not found.")
	errPlan         = &apiError{Status: http.StatusServiceUnavailable, Message: "Plan error: Unable to lookup subscription plan. Please try again in a few minutes.", RetryAfter: planErrorRetry}
	errUnavailable  = &apiError{Status: http.StatusServiceUnavailable, Message: "The service is temporarily unavailable. Please try again in a few minutes.", RetryAfter: planErrorRetry}
)

// asAPIError maps any error of a handler or the store to its answer (API.md §4); this is the one
// place where domain error codes become statuses. Anything unknown is a 500.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := domain.ErrorMessage(err)
	switch domain.ErrorCode(err) {
	case domain.EINVALID, domain.ECONFLICT:
		return newError(http.StatusBadRequest, msg)
	case domain.ELIMIT:
		return newError(http.StatusPaymentRequired, msg)
	case domain.ENOTFOUND:
		return newError(http.StatusNotFound, msg)
	case domain.EUNAVAILABLE:
		return errUnavailable
	}
	return nil // internal: the caller answers 500 with a request id
}
