package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The kinds of API errors, one per status class of API.md §4. Test with errors.Is(err, client.ErrPaymentRequired).
var (
	ErrBadRequest       = kind("bad request")        // 400: the parameters are wrong; see Error.Fields
	ErrUnauthorized     = kind("unauthorized")       // 401: wrong username or password
	ErrPaymentRequired  = kind("payment required")   // 402: a plan limit, or an unconfirmed account
	ErrForbidden        = kind("forbidden")          // 403: not allowed (sub-account, banned IP, wrong method)
	ErrNotFound         = kind("not found")          // 404
	ErrMethodNotAllowed = kind("method not allowed") // 405
	ErrConflict         = kind("conflict")           // 409, 422: an Idempotency-Key still in use, or reused for another request
	ErrServer           = kind("server error")       // 500 after the retries, or the API unreachable
	ErrUnavailable      = kind("unavailable")        // 503 after the retries or the caller's deadline
)

type kindError string

func (k kindError) Error() string { return string(k) }

func kind(s string) error { return kindError(s) }

// Error is an answer of the API other than success.
type Error struct {
	Status     int
	Message    string              // the server's sentence
	Fields     map[string][]string // for a 400 form error: what is wrong with each parameter
	RetryAfter time.Duration       // from Retry-After, when the server sent one
	RequestID  string
	Hint       string // what to do about it
	kind       error
}

func (e *Error) Error() string {
	msg := e.Message
	for f, problems := range e.Fields {
		for _, p := range problems {
			msg += fmt.Sprintf(" %s: %s", f, p)
		}
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Is lets errors.Is match the error's kind.
func (e *Error) Is(target error) bool { return target == e.kind }

var kinds = map[int]struct {
	kind error
	hint string
}{
	400: {ErrBadRequest, "fix the request; it was not applied"},
	401: {ErrUnauthorized, "check the account's username and password; sub-accounts cannot use the API"},
	402: {ErrPaymentRequired, "upgrade the plan, or confirm the account's email address"},
	403: {ErrForbidden, "these credentials may not do this; if the IP is banned, wait for Retry-After"},
	404: {ErrNotFound, "check the name you gave"},
	405: {ErrMethodNotAllowed, "this client and the server disagree on the API; update the client"},
	409: {ErrConflict, "the first attempt of this change is still running; retry in a moment"},
	422: {ErrConflict, "an Idempotency-Key was reused for another request; use a new key"},
	500: {ErrServer, "the service failed; retry later"},
	503: {ErrUnavailable, "the service is temporarily unavailable; retry after Retry-After"},
}

// readError turns an error answer into an *Error.
func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header), RequestID: resp.Header.Get("X-Request-Id")}
	var body struct {
		Error     string              `json:"error"`
		Fields    map[string][]string `json:"fields"`
		RequestID string              `json:"request_id"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.Fields = body.Error, body.Fields
	} else {
		e.Message = fmt.Sprintf("The API answered %s.", resp.Status)
	}
	if k, ok := kinds[resp.StatusCode]; ok {
		e.kind, e.Hint = k.kind, k.hint
	} else if resp.StatusCode >= 500 {
		e.kind, e.Hint = ErrServer, kinds[500].hint
	} else {
		e.kind, e.Hint = ErrBadRequest, kinds[400].hint
	}
	return e
}
