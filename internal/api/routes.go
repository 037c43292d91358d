package api

import "net/http"

// route is one endpoint of the account API (API.md §2). Lists are GET, changes are POST.
type route struct {
	path   string
	method string
	handle func(*Server, *call) (any, error) // a nil result answers 204
	tokens bool                              // manages API tokens: Basic only (API.md §4 row 6b)
}

func (r *route) isList() bool { return r.method == http.MethodGet }

// routes is the whole API; the OpenAPI document is checked against it by a test.
var routes = []*route{
	{"/api/ip/", http.MethodGet, (*Server).callerIP, false},
	{"/api/ips/", http.MethodGet, (*Server).listIPs, false},
	{"/api/ip/add/", http.MethodPost, (*Server).addIP, false},
	{"/api/ip/delete/", http.MethodPost, (*Server).deleteIP, false},
	{"/api/hostnames/", http.MethodGet, (*Server).listHostnames, false},
	{"/api/hostname/add/", http.MethodPost, (*Server).addHostname, false},
	{"/api/hostname/delete/", http.MethodPost, (*Server).deleteHostname, false},
	{"/api/proxies/", http.MethodGet, (*Server).listProxies, false},
	{"/api/proxies/available/", http.MethodGet, (*Server).availableProxies, false},
	{"/api/proxy/add/", http.MethodPost, (*Server).addProxy, false},
	{"/api/proxy/delete/", http.MethodPost, (*Server).deleteProxy, false},
	{"/api/subs/", http.MethodGet, (*Server).listSubs, false},
	{"/api/sub/create/", http.MethodPost, (*Server).createSub, false},
	{"/api/sub/edit/", http.MethodPost, (*Server).editSub, false},
	{"/api/sub/delete/", http.MethodPost, (*Server).deleteSub, false},
	{"/api/usage/", http.MethodGet, (*Server).usage, false},
	{"/api/account/", http.MethodGet, (*Server).showAccount, false},
	{"/api/account/edit/", http.MethodPost, (*Server).editAccount, false},
	{"/api/webhook/", http.MethodGet, (*Server).showWebhook, false},
	{"/api/webhook/set/", http.MethodPost, (*Server).setWebhook, false},
	{"/api/tokens/", http.MethodGet, (*Server).listTokens, true},
	{"/api/token/create/", http.MethodPost, (*Server).createToken, true},
	{"/api/token/activate/", http.MethodPost, (*Server).activateToken, true},
	{"/api/token/deactivate/", http.MethodPost, (*Server).deactivateToken, true},
	{"/api/token/delete/", http.MethodPost, (*Server).deleteToken, true},
}

var routeByPath = func() map[string]*route {
	m := make(map[string]*route, len(routes))
	for _, r := range routes {
		m[r.path] = r
	}
	return m
}()

// lookupRoute finds the endpoint for path; a path without the trailing slash is the same endpoint.
func lookupRoute(path string) *route {
	if r, ok := routeByPath[path]; ok {
		return r
	}
	return routeByPath[path+"/"]
}
