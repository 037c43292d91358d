package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Error codes. Each maps to exactly one user-facing answer (an HTTP status in the API, an exit status
// and message in the CLI); anything that is not an *Error is internal.
const (
	ECONFLICT    = "conflict"    // already exists
	EINVALID     = "invalid"     // the input is wrong
	ENOTFOUND    = "not_found"   // the thing does not exist
	ELIMIT       = "limit"       // a plan limit would be exceeded
	EFORBIDDEN   = "forbidden"   // the caller may not do this to that (another account's sub-account)
	EUNAVAILABLE = "unavailable" // a dependency (the store) cannot be reached
	EINTERNAL    = "internal"
)

// Error is an application error whose Message is written for the person who caused it. Fields,
// when set, holds one or more messages per input field of a refused form (Code EINVALID).
type Error struct {
	Code    string
	Message string
	Fields  map[string][]string
	// RetryAfter, when set, is how long the caller should wait before trying again.
	RetryAfter time.Duration
}

// Error is the message, followed by each field's messages when there are any.
func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	names := make([]string, 0, len(e.Fields))
	for name := range e.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + ": " + strings.Join(e.Fields[name], " ")
	}
	return e.Message + ": " + strings.Join(parts, "; ")
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for other errors and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the message of the first *Error in err's chain, or "Internal error." so that
// no internal detail ever reaches a user.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// FormErrors collects per-field messages while input is validated; Err returns them as one EINVALID
// error ("Invalid form data" with the fields), or nil when there are none.
type FormErrors map[string][]string

// Add records msg against field.
func (f FormErrors) Add(field, msg string) { f[field] = append(f[field], msg) }

// Err is the EINVALID error of the collected messages, or nil.
func (f FormErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "Invalid form data", Fields: f}
}

// FieldError is a form error of one field.
func FieldError(field, msg string) error {
	return &Error{Code: EINVALID, Message: "Invalid form data", Fields: map[string][]string{field: {msg}}}
}

// ErrorFields returns the per-field messages of the first *Error in err's chain, if any.
func ErrorFields(err error) map[string][]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
