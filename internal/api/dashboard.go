package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Error is an endpoint's refusal as the dashboard shows it: the status and the contract's sentence,
// with the form fields' messages for a 400.
type Error struct {
	Status  int
	Message string
	Fields  map[string][]string
}

func (e *Error) Error() string { return e.Message }

// Do runs the endpoint at path for the account username, whom the caller (the dashboard, through its
// session) has already authenticated, with params as the request's parameters. It takes the same
// path as a request to the API from the account checks on (API.md §4 rows 7–17): the same unconfirmed
// allowance, the same validation, the same store calls, the same error sentences. out, when not nil,
// receives the result as the API would have encoded it in JSON.
func (s *Server) Do(r *http.Request, username, path string, params url.Values, out any) *Error {
	c := &call{id: requestID(), route: lookupRoute(path)}
	if c.route == nil {
		return &Error{Status: http.StatusNotFound, Message: errNotFound.Message}
	}
	// Showing a page reads several endpoints; only changes count toward an unconfirmed account's
	// allowance, or browsing alone would use it up.
	c.free = c.route.isList()
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.ip = ap.Addr().Unmap()
	}
	c.r = r.Clone(r.Context())
	// The clone carries the page's own form if the dashboard has parsed it: the endpoint must read
	// params, and only them.
	c.r.Form, c.r.PostForm, c.r.MultipartForm = nil, nil, nil
	c.r.Method = c.route.method
	c.r.URL = &url.URL{Path: c.route.path}
	c.r.Header = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if c.route.isList() {
		c.r.URL.RawQuery = params.Encode()
		c.r.Body = http.NoBody
	} else {
		c.r.Body = readCloser{strings.NewReader(params.Encode())}
	}
	c.w = discard{}
	result, err := s.dashboardCall(c, username)
	if err != nil {
		return s.dashboardError(c, err)
	}
	if out != nil && result != nil {
		b, err := json.Marshal(result)
		if err == nil {
			err = json.Unmarshal(b, out)
		}
		if err != nil {
			return s.dashboardError(c, err)
		}
	}
	return nil
}

func (s *Server) dashboardCall(c *call, username string) (any, error) {
	login, err := s.cfg.Store.GetLogin(c.r.Context(), username)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if login.IsSub() {
		return nil, errSubAccount
	}
	if err := s.loadAccount(c, login); err != nil {
		return nil, err
	}
	return s.handle(c)
}

// dashboardError turns err into what the dashboard shows, logging an internal error as the API does.
func (s *Server) dashboardError(c *call, err error) *Error {
	ae := asAPIError(err)
	if ae == nil {
		s.log.Error("internal error", "request_id", c.id, "path", c.route.path, "via", "dashboard", "err", err)
		ae = newError(http.StatusInternalServerError, "Internal error (request id "+c.id+"). Please retry.")
	}
	return &Error{Status: ae.Status, Message: ae.Message, Fields: ae.Fields}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// discard is the ResponseWriter of a dashboard call: the dashboard renders the result itself.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
