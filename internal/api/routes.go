package api

import "net/http"

// route is one endpoint of the account API (API.md §2). Lists are GET, changes are POST.
type route struct {
	path   string
	method string
	handle func(*Server, *call) (any, error) // a nil result answers 204
}

func (r *route) isList() bool { return r.method == http.MethodGet }

// routes is the whole API; the OpenAPI document is checked against it by a test.
var routes = []*route{
	{"/api/ip/", http.MethodGet, (*Server).callerIP},
	{"/api/ips/", http.MethodGet, (*Server).listIPs},
	{"/api/ip/add/", http.MethodPost, (*Server).addIP},
	{"/api/ip/delete/", http.MethodPost, (*Server).deleteIP},
	{"/api/hostnames/", http.MethodGet, (*Server).listHostnames},
	{"/api/hostname/add/", http.MethodPost, (*Server).addHostname},
	{"/api/hostname/delete/", http.MethodPost, (*Server).deleteHostname},
	{"/api/proxies/", http.MethodGet, (*Server).listProxies},
	{"/api/proxies/available/", http.MethodGet, (*Server).availableProxies},
	{"/api/proxy/add/", http.MethodPost, (*Server).addProxy},
	{"/api/proxy/delete/", http.MethodPost, (*Server).deleteProxy},
	{"/api/subs/", http.MethodGet, (*Server).listSubs},
	{"/api/sub/create/", http.MethodPost, (*Server).createSub},
	{"/api/sub/edit/", http.MethodPost, (*Server).editSub},
	{"/api/sub/delete/", http.MethodPost, (*Server).deleteSub},
	{"/api/usage/", http.MethodGet, (*Server).usage},
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
