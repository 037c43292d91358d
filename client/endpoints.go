package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/webhooks"
)

// Hostname is an authorized hostname and the address it resolves to ("" while it does not).
type Hostname struct {
	Hostname string `json:"hostname"`
	IP       string `json:"ip"`
}

// ProxyServer is a proxy server of the network.
type ProxyServer struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Country string `json:"country"`
	// Where its exits are: what steering by country, region, city and ASN can ask for.
	Countries []string `json:"countries"`
	Regions   []string `json:"regions"`
	Cities    []string `json:"cities"`
	ASNs      []uint32 `json:"asns"`
}

// SubAccount is a sub-account as the API shows it (never its password). Bandwidth limits are in GB
// (10^9 bytes); 0 is no limit.
type SubAccount struct {
	Username              string   `json:"username"`
	Proxies               []string `json:"proxies"` // addresses
	IPs                   []string `json:"ips"`
	Active                bool     `json:"active"`
	Email                 string   `json:"email"`
	FirstName             string   `json:"first_name"`
	LastName              string   `json:"last_name"`
	MonthlyBandwidthLimit float64  `json:"monthly_bandwidth_limit"`
	TotalBandwidthLimit   float64  `json:"total_bandwidth_limit"`
	// Bandwidth is what it used, in GB, in its account's billing period and in all (SubAccounts only).
	Bandwidth *SubBandwidth `json:"bandwidth,omitempty"`
}

// SubBandwidth is what a sub-account used, in GB.
type SubBandwidth struct {
	PeriodUsed float64 `json:"period_used"`
	TotalUsed  float64 `json:"total_used"`
}

// NewSubAccount is what CreateSubAccount sends. Proxies are names or addresses; limits are in GB.
type NewSubAccount struct {
	Username, Password         string
	Proxies, IPs               []string
	Email, FirstName, LastName string
	MonthlyBandwidthLimit      float64
	TotalBandwidthLimit        float64
}

// SubAccountChange is what EditSubAccount sends: the non-nil fields change.
type SubAccountChange struct {
	Password                   *string
	Proxies                    *[]string
	IPs                        *[]string
	Active                     *bool
	Email, FirstName, LastName *string
	MonthlyBandwidthLimit      *float64 // GB; 0 removes the limit
	TotalBandwidthLimit        *float64
}

// Account is the account as GET /api/account/ shows it; sizes are in GB.
type Account struct {
	Username string `json:"username"`
	Plan     string `json:"plan"`
	Limits   struct {
		Proxies          int     `json:"proxies"`
		Subs             int     `json:"subs"`
		IPs              int     `json:"ips"`
		Hostnames        int     `json:"hostnames"`
		Tokens           int     `json:"tokens"`
		MonthlyBandwidth float64 `json:"monthly_bandwidth"`
	} `json:"limits"`
	MonthlyBandwidthLimit float64 `json:"monthly_bandwidth_limit"`
	TotalBandwidthLimit   float64 `json:"total_bandwidth_limit"`
	BillingDay            int     `json:"billing_day"`
	Bandwidth             struct {
		PeriodStart time.Time `json:"period_start"`
		PeriodEnd   time.Time `json:"period_end"`
		PeriodUsed  float64   `json:"period_used"`
		TotalUsed   float64   `json:"total_used"`
	} `json:"bandwidth"`
}

// AccountChange is what EditAccount sends: the non-nil limits change (GB; 0 removes a limit).
type AccountChange struct {
	MonthlyBandwidthLimit, TotalBandwidthLimit *float64
}

// GetAccount returns the account: its plan's limits, its own limits, billing day and bandwidth used.
func (c *Client) GetAccount(ctx context.Context) (Account, error) {
	var out Account
	err := c.get(ctx, "/api/account/", nil, &out)
	return out, err
}

// EditAccount changes the account's own bandwidth limits.
func (c *Client) EditAccount(ctx context.Context, ch AccountChange) (Account, error) {
	params := url.Values{}
	setGB(params, "monthly_bandwidth_limit", ch.MonthlyBandwidthLimit)
	setGB(params, "total_bandwidth_limit", ch.TotalBandwidthLimit)
	var out Account
	err := c.post(ctx, "/api/account/edit/", params, &out)
	return out, err
}

// setGB sets a size parameter in GB when v is not nil.
func setGB(params url.Values, name string, v *float64) {
	if v != nil {
		params.Set(name, strconv.FormatFloat(*v, 'f', -1, 64))
	}
}

// setString sets a parameter when v is not nil.
func setString(params url.Values, name string, v *string) {
	if v != nil {
		params.Set(name, *v)
	}
}

// UsageRow is the traffic of the account (SubAccount "") or a sub-account through one proxy server on
// one day.
type UsageRow struct {
	Day        string `json:"day"`
	Proxy      string `json:"proxy"`
	SubAccount string `json:"sub_account"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	Requests   int64  `json:"requests"`
	Tunnels    int64  `json:"tunnels"`
}

func (c *Client) get(ctx context.Context, path string, params url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, params, out)
}

func (c *Client) post(ctx context.Context, path string, params url.Values, out any) error {
	return c.do(ctx, http.MethodPost, path, params, out)
}

// CallerIP returns the source IP the API sees for this client.
func (c *Client) CallerIP(ctx context.Context) (string, error) {
	var out struct{ IP string }
	err := c.get(ctx, "/api/ip/", nil, &out)
	return out.IP, err
}

// IPs returns the account's authorized IPs.
func (c *Client) IPs(ctx context.Context) ([]string, error) {
	var out struct{ IPs []string }
	err := c.get(ctx, "/api/ips/", nil, &out)
	return out.IPs, err
}

// AddIP authorizes ip ("" for the caller's own) and returns the address authorized.
func (c *Client) AddIP(ctx context.Context, ip string) (string, error) {
	params := url.Values{}
	if ip != "" {
		params.Set("ip", ip)
	}
	var out struct{ IP string }
	err := c.post(ctx, "/api/ip/add/", params, &out)
	return out.IP, err
}

// DeleteIP withdraws an authorized IP.
func (c *Client) DeleteIP(ctx context.Context, ip string) error {
	return c.post(ctx, "/api/ip/delete/", url.Values{"ip": {ip}}, nil)
}

// Hostnames returns the account's authorized hostnames.
func (c *Client) Hostnames(ctx context.Context) ([]Hostname, error) {
	var out struct{ Hostnames []Hostname }
	err := c.get(ctx, "/api/hostnames/", nil, &out)
	return out.Hostnames, err
}

// AddHostname authorizes a hostname; its current address comes back.
func (c *Client) AddHostname(ctx context.Context, hostname string) (Hostname, error) {
	var out Hostname
	err := c.post(ctx, "/api/hostname/add/", url.Values{"hostname": {hostname}}, &out)
	return out, err
}

// DeleteHostname withdraws an authorized hostname.
func (c *Client) DeleteHostname(ctx context.Context, hostname string) error {
	return c.post(ctx, "/api/hostname/delete/", url.Values{"hostname": {hostname}}, nil)
}

// Proxies returns the addresses of the account's authorized proxy servers.
func (c *Client) Proxies(ctx context.Context) ([]string, error) {
	var out struct{ Proxies []string }
	err := c.get(ctx, "/api/proxies/", nil, &out)
	return out.Proxies, err
}

// AvailableProxies returns every proxy server of the network.
func (c *Client) AvailableProxies(ctx context.Context) ([]ProxyServer, error) {
	var out struct{ Proxies []ProxyServer }
	err := c.get(ctx, "/api/proxies/available/", nil, &out)
	return out.Proxies, err
}

// AddProxy authorizes a proxy server (by name or address) and returns its address.
func (c *Client) AddProxy(ctx context.Context, proxy string) (string, error) {
	var out struct{ Proxy string }
	err := c.post(ctx, "/api/proxy/add/", url.Values{"proxy": {proxy}}, &out)
	return out.Proxy, err
}

// DeleteProxy withdraws a proxy server (by name or address).
func (c *Client) DeleteProxy(ctx context.Context, proxy string) error {
	return c.post(ctx, "/api/proxy/delete/", url.Values{"proxy": {proxy}}, nil)
}

// SubAccounts returns the account's sub-accounts.
func (c *Client) SubAccounts(ctx context.Context) ([]SubAccount, error) {
	var out struct{ Subs []SubAccount }
	err := c.get(ctx, "/api/subs/", nil, &out)
	return out.Subs, err
}

// CreateSubAccount creates a sub-account.
func (c *Client) CreateSubAccount(ctx context.Context, s NewSubAccount) (SubAccount, error) {
	params := url.Values{"username": {s.Username}, "password": {s.Password},
		"proxies": {strings.Join(s.Proxies, ",")}, "ips": {strings.Join(s.IPs, ",")},
		"email": {s.Email}, "first_name": {s.FirstName}, "last_name": {s.LastName}}
	setGB(params, "monthly_bandwidth_limit", &s.MonthlyBandwidthLimit)
	setGB(params, "total_bandwidth_limit", &s.TotalBandwidthLimit)
	var out SubAccount
	err := c.post(ctx, "/api/sub/create/", params, &out)
	return out, err
}

// EditSubAccount changes a sub-account.
func (c *Client) EditSubAccount(ctx context.Context, username string, ch SubAccountChange) (SubAccount, error) {
	params := url.Values{"username": {username}}
	if ch.Password != nil {
		params.Set("password", *ch.Password)
	}
	if ch.Proxies != nil {
		params.Set("proxies", strings.Join(*ch.Proxies, ","))
	}
	if ch.IPs != nil {
		params.Set("ips", strings.Join(*ch.IPs, ","))
	}
	if ch.Active != nil {
		params.Set("active", strconv.FormatBool(*ch.Active))
	}
	setString(params, "email", ch.Email)
	setString(params, "first_name", ch.FirstName)
	setString(params, "last_name", ch.LastName)
	setGB(params, "monthly_bandwidth_limit", ch.MonthlyBandwidthLimit)
	setGB(params, "total_bandwidth_limit", ch.TotalBandwidthLimit)
	var out SubAccount
	err := c.post(ctx, "/api/sub/edit/", params, &out)
	return out, err
}

// DeleteSubAccount deletes a sub-account.
func (c *Client) DeleteSubAccount(ctx context.Context, username string) error {
	return c.post(ctx, "/api/sub/delete/", url.Values{"username": {username}}, nil)
}

// Usage returns the traffic per day and proxy server, of the account and each sub-account, between
// from and to (YYYY-MM-DD, inclusive; "" for no bound).
func (c *Client) Usage(ctx context.Context, from, to string) ([]UsageRow, error) {
	r, err := c.UsageReport(ctx, from, to)
	return r.Usage, err
}

// UsageReport is the answer of /api/usage/: the usage rows and the account's bandwidth this month.
type UsageReport struct {
	Usage     []UsageRow `json:"usage"`
	Bandwidth Bandwidth  `json:"bandwidth"`
}

// Bandwidth is the account's traffic in the current calendar month (UTC) against its plan's monthly
// bandwidth. Once Used reaches a non-zero Limit, proxy requests are refused with 509 until the month ends.
type Bandwidth struct {
	Month string `json:"month"` // YYYY-MM
	Used  int64  `json:"used"`  // bytes in + bytes out, sub-accounts included
	Limit int64  `json:"limit"` // 0 = unlimited
}

// UsageReport returns the usage rows between the days from and to (YYYY-MM-DD, either may be "")
// and the account's bandwidth this month.
func (c *Client) UsageReport(ctx context.Context, from, to string) (UsageReport, error) {
	params := url.Values{}
	if from != "" {
		params.Set("from", from)
	}
	if to != "" {
		params.Set("to", to)
	}
	var out UsageReport
	err := c.get(ctx, "/api/usage/", params, &out)
	return out, err
}

// Token is an API token as the lists show it: never the token itself, which only CreateToken returns.
type Token struct {
	ID       int64      `json:"id"`
	Username string     `json:"username"` // the account or sub-account it authenticates as
	Label    string     `json:"label"`
	Prefix   string     `json:"prefix"` // the token's first characters
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires"`   // nil: never
	LastUsed *time.Time `json:"last_used"` // nil: never (the nodes report uses within a minute or so)
	Active   bool       `json:"active"`
}

// CreatedToken is a token just created, with the token itself: keep it, it is shown only this once.
type CreatedToken struct {
	Token
	Secret string `json:"token"`
}

// Tokens returns the API tokens of the account (or of the sub-account of ForSubAccount).
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out struct{ Tokens []Token }
	err := c.get(ctx, "/api/tokens/", nil, &out)
	return out.Tokens, err
}

// CreateToken creates an API token with an optional label, expiring at expires (zero: never).
func (c *Client) CreateToken(ctx context.Context, label string, expires time.Time) (CreatedToken, error) {
	params := url.Values{}
	if label != "" {
		params.Set("label", label)
	}
	if !expires.IsZero() {
		params.Set("expires", expires.UTC().Format(time.RFC3339))
	}
	var out CreatedToken
	err := c.post(ctx, "/api/token/create/", params, &out)
	return out, err
}

// ActivateToken activates a token (within the plan's tokens limit).
func (c *Client) ActivateToken(ctx context.Context, id int64) (Token, error) {
	var out Token
	err := c.post(ctx, "/api/token/activate/", url.Values{"id": {strconv.FormatInt(id, 10)}}, &out)
	return out, err
}

// DeactivateToken deactivates a token: it stops working on every node within a second.
func (c *Client) DeactivateToken(ctx context.Context, id int64) (Token, error) {
	var out Token
	err := c.post(ctx, "/api/token/deactivate/", url.Values{"id": {strconv.FormatInt(id, 10)}}, &out)
	return out, err
}

// DeleteToken deletes a token.
func (c *Client) DeleteToken(ctx context.Context, id int64) error {
	return c.post(ctx, "/api/token/delete/", url.Values{"id": {strconv.FormatInt(id, 10)}}, nil)
}

// Webhook is the account's webhook: where its events go and the secret that signs them (URL ""
// when it has none), and the event types an account's webhook receives.
type Webhook struct {
	URL    string   `json:"url"`
	Secret string   `json:"secret"`
	Events []string `json:"events"`
}

// Webhook returns the account's webhook.
func (c *Client) Webhook(ctx context.Context) (Webhook, error) {
	var out Webhook
	err := c.get(ctx, "/api/webhook/", nil, &out)
	return out, err
}

// SetWebhook sends the account's events to rawURL (which must pass the network's egress policy);
// "" stops them. The signing secret comes back; it is kept when the URL changes.
func (c *Client) SetWebhook(ctx context.Context, rawURL string) (Webhook, error) {
	var out Webhook
	err := c.post(ctx, "/api/webhook/set/", url.Values{"url": {rawURL}}, &out)
	return out, err
}

// VerifyWebhook checks a delivery's X-Exitmesh-Signature header against its raw body and the
// webhook's secret, refusing one signed more than tolerance from now (a replay; 0: no check). A
// receiver calls it before trusting a delivery, then drops repeats by the event's id.
func VerifyWebhook(secret, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	return webhooks.Verify(secret, signature, body, now, tolerance)
}
