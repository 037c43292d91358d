// Package httperr is the one table from the domain's error codes to HTTP statuses, which the account
// API and the dashboard answer alike: a refusal of the account rules reads the same in a script and
// in a browser.
package httperr

import (
	"errors"
	"net/http"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// statusOf is the status of each domain error code.
var statusOf = map[string]int{
	domain.EINVALID:     http.StatusBadRequest,
	domain.ECONFLICT:    http.StatusBadRequest, // "already authorized" is API.md §4 row 13's 400
	domain.EFORBIDDEN:   http.StatusForbidden,
	domain.ENOTFOUND:    http.StatusNotFound,
	domain.ELIMIT:       http.StatusPaymentRequired,
	domain.EUNAVAILABLE: http.StatusServiceUnavailable,
}

// Status returns the status of err's first *domain.Error and that error; ok is false for anything
// else, which is internal (500, never shown as it is).
func Status(err error) (status int, de *domain.Error, ok bool) {
	if !errors.As(err, &de) {
		return http.StatusInternalServerError, nil, false
	}
	status, ok = statusOf[de.Code]
	if !ok {
		return http.StatusInternalServerError, nil, false
	}
	return status, de, true
}
