package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// proxyServer is an entry of the catalogue with the name people read: "us-ca (US)".
type proxyServer struct {
	domain.ProxyServer
	Label string
}

// Offers says where the proxy server's exits are, as steering can ask for them:
// "countries US · regions US-CA · cities los_angeles, san_jose · ASNs 64500"; "" when no exit says.
func (p proxyServer) Offers() string {
	var parts []string
	add := func(kind string, values []string) {
		if len(values) > 0 {
			parts = append(parts, kind+" "+strings.Join(values, ", "))
		}
	}
	add("countries", p.Countries)
	add("regions", p.Regions)
	add("cities", p.Cities)
	asns := make([]string, len(p.ASNs))
	for i, a := range p.ASNs {
		asns[i] = strconv.FormatUint(uint64(a), 10)
	}
	add("ASNs", asns)
	return strings.Join(parts, " · ")
}

// proxyServers splits the catalogue into the account's proxy servers and the others.
func (s *Server) proxyServers(ctx context.Context, c *account.Caller) (mine, others []proxyServer, _ error) {
	cat, err := s.cfg.Accounts.Catalogue(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range cat {
		ps := proxyServer{p, p.Name}
		if p.Country != "" {
			ps.Label += " (" + p.Country + ")"
		}
		if slices.Contains(c.Account.Proxies, p.Name) {
			mine = append(mine, ps)
		} else {
			others = append(others, ps)
		}
	}
	return mine, others, nil
}

func (s *Server) proxiesPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showProxies(w, r, v, page{}, http.StatusOK)
}

// proxiesChange adds a proxy server from the catalogue to the account, or removes one.
func (s *Server) proxiesChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	name := r.PostFormValue("proxy")
	status := s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
		if r.PostFormValue("action") == "delete" {
			return name + " is no longer on your account.", s.cfg.Accounts.RemoveProxy(ctx, c, "", name)
		}
		added, err := s.cfg.Accounts.AddProxy(ctx, c, "", name)
		return name + " is on your account: connect to " + added.Address + ".", err
	})
	s.showProxies(w, r, v, p, status)
}

// authorizedProxy is one of the account's proxy servers with what a customer pastes to use it.
type authorizedProxy struct {
	proxyServer
	URLs, Examples []snippet
}

func (s *Server) showProxies(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Proxy servers", "proxies"
	var mine, others []proxyServer
	c, status := s.read(r, v, &p, status)
	if c != nil {
		var err error
		mine, others, err = s.proxyServers(r.Context(), c)
		status = s.shown(&p, status, err)
	}
	authorized := make([]authorizedProxy, len(mine))
	for i, ps := range mine {
		urls := urlFormats
		if ps.TLS { // its https:// URL too
			urls = append(slices.Clip(urlFormats), tlsFormat)
		}
		authorized[i] = authorizedProxy{ps, snippets(urls, ps, v.account.Username), snippets(exampleFormats, ps, v.account.Username)}
	}
	p.Data = struct {
		Mine      []authorizedProxy
		Available []proxyServer
	}{authorized, others}
	s.render(w, status, "proxies", v, p)
}

// snippet is a piece of text to copy: a proxy URL or a code example. ID is unique on the page.
type snippet struct {
	ID, Label, Code string
}

// snippetFormat makes a snippet of a proxy server: in format, %[1]s is its proxy URL and %[2]s the
// URL of a sticky session. The password is a placeholder: the dashboard never knows it.
type snippetFormat struct{ kind, label, format string }

var urlFormats = []snippetFormat{
	{"url", "Proxy URL", "%[1]s"},
	{"session", "With a sticky session: every request with the id abc123 leaves through the same IP", "%[2]s"},
	{"socks", "SOCKS5 on the same port (socks5h: the proxy resolves names; curl --socks5-hostname)", "%[3]s"},
}

// tlsFormat is the snippet of a proxy server that takes TLS.
var tlsFormat = snippetFormat{"https", "TLS to the proxy on the same port (https:// proxy URL: your credentials travel encrypted)", "%[4]s"}

var exampleFormats = []snippetFormat{
	{"curl", "curl", `curl -x %[1]s https://api.ipify.org`},
	{"python", "Python (requests)", `import requests

proxy = "%[1]s"
r = requests.get("https://api.ipify.org", proxies={"http": proxy, "https": proxy}, timeout=30)
print(r.text)`},
	{"node", "Node (undici: npm install undici@7)", `const { ProxyAgent, fetch } = require("undici");

const agent = new ProxyAgent("%[1]s");
fetch("https://api.ipify.org", { dispatcher: agent }).then((r) => r.text()).then(console.log);`},
	{"go", "Go (net/http)", `package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
)

func main() {
	proxy, err := url.Parse("%[1]s")
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	resp, err := client.Get("https://api.ipify.org")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
}`},
}

// snippets fills formats in for ps and username (docs/STEERING.md explains the -session- parameter).
func snippets(formats []snippetFormat, ps proxyServer, username string) []snippet {
	creds := username + ":PASSWORD@" + ps.Address
	args := []any{"http://" + creds, "http://" + username + "-session-abc123:PASSWORD@" + ps.Address, "socks5h://" + creds, "https://" + creds}
	out := make([]snippet, len(formats))
	for i, f := range formats {
		out[i] = snippet{ID: "snippet-" + ps.Name + "-" + f.kind, Label: f.label, Code: fmt.Sprintf(f.format, args...)}
	}
	return out
}
