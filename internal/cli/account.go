package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/client"
	"github.com/exitmesh/exitmesh/internal/operator"
)

// The customer commands: the account API through the Go client, for people and scripts.

// accountCmd is a customer command: its synopsis, how many positional arguments it takes (checked
// before the credentials, so a wrong command line is reported as such), and its flags, declared by
// flags, which returns what the command does: the value printed by --json and the text for people.
type accountCmd struct {
	synopsis         string
	minArgs, maxArgs int
	flags            func(fs *flag.FlagSet) accountRun
}

type accountRun func(a *accountCall, pos []string) (out any, text string, err error)

// args makes a command of run that takes between lo and hi positional arguments and no flags.
func args(lo, hi int, synopsis string, run accountRun) accountCmd {
	return accountCmd{synopsis: synopsis, minArgs: lo, maxArgs: hi, flags: func(*flag.FlagSet) accountRun { return run }}
}

var accountCmds = map[string]accountCmd{
	"ip":               args(0, 0, "ip", func(a *accountCall, _ []string) (any, string, error) { return oneIP(a.c.CallerIP(a.ctx)) }),
	"ips":              args(0, 0, "ips", listIPs),
	"ip add":           args(0, 1, "ip add [IP]", ipAdd),
	"ip delete":        args(1, 1, "ip delete IP", ipDelete),
	"hostnames":        args(0, 0, "hostnames", listHostnames),
	"hostname add":     args(1, 1, "hostname add HOSTNAME", hostnameAdd),
	"hostname delete":  args(1, 1, "hostname delete HOSTNAME", hostnameDelete),
	"proxies":          {"proxies [--available]", 0, 0, proxiesCmd},
	"proxy add":        args(1, 1, "proxy add PROXY", proxyAdd),
	"proxy delete":     args(1, 1, "proxy delete PROXY", proxyDelete),
	"subs":             args(0, 0, "subs", listSubs),
	"sub create":       {"sub create USERNAME (--sub-password-stdin | --sub-password P) [--proxies A,B] [--ips A,B] [--email E] [--first-name N] [--last-name N] [--monthly-limit GB] [--total-limit GB]", 1, 1, subCreate},
	"sub edit":         {"sub edit USERNAME [--sub-password-stdin | --sub-password P] [--proxies A,B] [--ips A,B] [--active BOOL] [--email E] [--first-name N] [--last-name N] [--monthly-limit GB] [--total-limit GB]", 1, 1, subEdit},
	"sub delete":       args(1, 1, "sub delete USERNAME", subDelete),
	"usage":            {"usage [--from YYYY-MM-DD] [--to YYYY-MM-DD]", 0, 0, usageCmd},
	"account":          args(0, 0, "account", showAccount),
	"account edit":     {"account edit [--monthly-limit GB] [--total-limit GB]", 0, 0, accountEdit},
	"tokens":           args(0, 0, "tokens", listTokens),
	"token create":     {"token create [--label TEXT] [--expires YYYY-MM-DD|RFC3339]", 0, 0, tokenCreate},
	"token activate":   args(1, 1, "token activate ID", tokenActivate),
	"token deactivate": args(1, 1, "token deactivate ID", tokenDeactivate),
	"token delete":     args(1, 1, "token delete ID", tokenDelete),
	"webhook":          args(0, 0, "webhook", showWebhook),
	"webhook set":      args(1, 1, "webhook set URL (\"\" removes it)", setWebhook),
}

// isAccountCommand reports whether word starts a customer command.
func isAccountCommand(word string) bool {
	for name := range accountCmds {
		if name == word || strings.HasPrefix(name, word+" ") {
			return true
		}
	}
	return false
}

// accountCall is a running customer command.
type accountCall struct {
	ctx context.Context
	c   *client.Client
	io  IO
}

func runAccount(ctx context.Context, args []string, stdio IO) error {
	name, rest := args[0], args[1:]
	if len(args) > 1 {
		if _, ok := accountCmds[args[0]+" "+args[1]]; ok {
			name, rest = args[0]+" "+args[1], args[2:]
		}
	}
	cmd, ok := accountCmds[name]
	if !ok {
		return usagef("unknown command %q", strings.Join(args[:min(2, len(args))], " "))
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	api := fs.String("api", os.Getenv("EXITMESH_API"), "the account API, https://HOST:PORT (env EXITMESH_API)")
	user := fs.String("user", os.Getenv("EXITMESH_USER"), "the account's username (env EXITMESH_USER)")
	password := fs.String("password", os.Getenv("EXITMESH_PASSWORD"), "the account's password (env EXITMESH_PASSWORD)")
	token := fs.String("token", os.Getenv("EXITMESH_TOKEN"), "an API token, instead of --user and --password (env EXITMESH_TOKEN)")
	sub := fs.String("sub", "", "act on this sub-account's IPs, hostnames, proxy servers, tokens or usage")
	cacert := fs.String("cacert", os.Getenv("EXITMESH_CACERT"), "PEM certificates to trust, e.g. a node's exitmesh-api.crt (env EXITMESH_CACERT)")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of text")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long, retries included")
	run := cmd.flags(fs)
	pos, err := parseArgs(fs, rest, stdio.Stdout)
	if err != nil {
		return err
	}
	if len(pos) < cmd.minArgs || len(pos) > cmd.maxArgs {
		return usagef("want %s", cmd.synopsis)
	}
	required := map[string]string{"--api (or EXITMESH_API)": *api}
	if *token == "" {
		required["--user (or EXITMESH_USER)"], required["--password (or EXITMESH_PASSWORD)"] = *user, *password
	}
	for flagName, v := range required {
		if v == "" {
			return usagef("%s is required (or --token)", flagName)
		}
	}
	if *sub != "" && strings.HasPrefix(name, "sub") {
		return usagef("--sub does not apply to %s: it names the sub-account itself", name)
	}
	var opts []client.Option
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return usagef("--cacert %s holds no PEM certificate", *cacert)
		}
		opts = append(opts, client.WithRootCAs(pool))
	}
	var c *client.Client
	if *token != "" {
		c, err = client.NewWithToken(*api, *token, opts...)
	} else {
		c, err = client.New(*api, *user, *password, opts...)
	}
	if err != nil {
		return usagef("%s", err)
	}
	if *sub != "" {
		c = c.ForSubAccount(*sub)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out, text, err := run(&accountCall{ctx: ctx, c: c, io: stdio}, pos)
	if err != nil {
		return err
	}
	if *asJSON {
		if out == nil {
			out = struct{}{}
		}
		enc := json.NewEncoder(stdio.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if text != "" {
		fmt.Fprintln(stdio.Stdout, text)
	}
	return nil
}

func oneIP(ip string, err error) (any, string, error) {
	return map[string]string{"ip": ip}, ip, err
}

func listIPs(a *accountCall, _ []string) (any, string, error) {
	ips, err := a.c.IPs(a.ctx)
	return map[string][]string{"ips": nonNil(ips)}, strings.Join(ips, "\n"), err
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func ipAdd(a *accountCall, pos []string) (any, string, error) {
	ip := ""
	if len(pos) == 1 {
		ip = pos[0]
	}
	added, err := a.c.AddIP(a.ctx, ip)
	return map[string]string{"ip": added}, "authorized " + added, err
}

func ipDelete(a *accountCall, pos []string) (any, string, error) {
	return nil, "deleted " + pos[0], a.c.DeleteIP(a.ctx, pos[0])
}

func listHostnames(a *accountCall, _ []string) (any, string, error) {
	hs, err := a.c.Hostnames(a.ctx)
	var b strings.Builder
	table(&b, []string{"HOSTNAME", "IP"}, len(hs), func(i int) []any { return []any{hs[i].Hostname, dash(hs[i].IP)} })
	return map[string][]client.Hostname{"hostnames": nonNil(hs)}, strings.TrimRight(b.String(), "\n"), err
}

func hostnameAdd(a *accountCall, pos []string) (any, string, error) {
	h, err := a.c.AddHostname(a.ctx, pos[0])
	return h, fmt.Sprintf("authorized %s (%s)", h.Hostname, dash(h.IP)), err
}

func hostnameDelete(a *accountCall, pos []string) (any, string, error) {
	return nil, "deleted " + pos[0], a.c.DeleteHostname(a.ctx, pos[0])
}

func proxiesCmd(fs *flag.FlagSet) accountRun {
	available := fs.Bool("available", false, "list every proxy server of the network")
	return func(a *accountCall, _ []string) (any, string, error) {
		if !*available {
			ps, err := a.c.Proxies(a.ctx)
			return map[string][]string{"proxies": nonNil(ps)}, strings.Join(ps, "\n"), err
		}
		ps, err := a.c.AvailableProxies(a.ctx)
		var b strings.Builder
		table(&b, []string{"NAME", "ADDRESS", "COUNTRY", "EXITS IN", "REGIONS", "CITIES", "ASNS"}, len(ps), func(i int) []any {
			p := ps[i]
			asns := make([]string, len(p.ASNs))
			for j, a := range p.ASNs {
				asns[j] = strconv.FormatUint(uint64(a), 10)
			}
			return []any{p.Name, p.Address, dash(p.Country), commas(p.Countries), commas(p.Regions), commas(p.Cities), commas(asns)}
		})
		return map[string][]client.ProxyServer{"proxies": nonNil(ps)}, strings.TrimRight(b.String(), "\n"), err
	}
}

func proxyAdd(a *accountCall, pos []string) (any, string, error) {
	addr, err := a.c.AddProxy(a.ctx, pos[0])
	return map[string]string{"proxy": addr}, "authorized " + addr, err
}

func proxyDelete(a *accountCall, pos []string) (any, string, error) {
	return nil, "deleted " + pos[0], a.c.DeleteProxy(a.ctx, pos[0])
}

func subsText(subs []client.SubAccount) string {
	var b strings.Builder
	table(&b, []string{"USERNAME", "ACTIVE", "PROXIES", "IPS"}, len(subs), func(i int) []any {
		s := subs[i]
		return []any{s.Username, s.Active, dash(strings.Join(s.Proxies, ",")), dash(strings.Join(s.IPs, ","))}
	})
	return strings.TrimRight(b.String(), "\n")
}

func listSubs(a *accountCall, _ []string) (any, string, error) {
	subs, err := a.c.SubAccounts(a.ctx)
	return map[string][]client.SubAccount{"subs": nonNil(subs)}, subsText(subs), err
}

// subFlags are the flags of sub create and sub edit.
type subFlags struct {
	password                   passwordFlags
	proxies, ips, active       *string
	email, firstName, lastName *string
	limits                     *limitFlags
	flagsGiven
}

func declareSubFlags(fs *flag.FlagSet) *subFlags {
	return &subFlags{
		password:   declarePasswordFlags(fs, "sub-password", "the sub-account's password"),
		proxies:    fs.String("proxies", "", "proxy servers (names or addresses), comma-separated"),
		ips:        fs.String("ips", "", "authorized IPs of the account, comma-separated"),
		active:     fs.String("active", "", "true or false"),
		email:      fs.String("email", "", "the sub-account's email address"),
		firstName:  fs.String("first-name", "", "the sub-account's first name"),
		lastName:   fs.String("last-name", "", "the sub-account's last name"),
		limits:     declareLimitFlags(fs, "the sub-account's"),
		flagsGiven: flagsGiven{fs},
	}
}

// value returns v when the flag name was given, nil when it was not.
func (f flagsGiven) value(name string, v *string) *string {
	if f.given(name) {
		return v
	}
	return nil
}

// limitFlags are the bandwidth limit flags, in GB.
type limitFlags struct {
	monthly, total *float64
	flagsGiven
}

func declareLimitFlags(fs *flag.FlagSet, whose string) *limitFlags {
	return &limitFlags{
		monthly:    fs.Float64("monthly-limit", 0, whose+" bandwidth limit per billing period, in GB (0 = none)"),
		total:      fs.Float64("total-limit", 0, whose+" bandwidth limit in all, in GB (0 = none)"),
		flagsGiven: flagsGiven{fs},
	}
}

// given returns the limits given on the command line.
func (f *limitFlags) given() (monthly, total *float64) {
	if f.flagsGiven.given("monthly-limit") {
		monthly = f.monthly
	}
	if f.flagsGiven.given("total-limit") {
		total = f.total
	}
	return monthly, total
}

func gbText(v float64) string {
	if v == 0 {
		return "none"
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + " GB"
}

func accountText(ac client.Account) string {
	var b strings.Builder
	fmt.Fprintf(&b, "username:       %s\nplan:           %s\n", ac.Username, ac.Plan)
	fmt.Fprintf(&b, "billing period: %s to %s\n", ac.Bandwidth.PeriodStart.UTC().Format(time.DateOnly), ac.Bandwidth.PeriodEnd.UTC().Format(time.DateOnly))
	fmt.Fprintf(&b, "used:           %s GB this period, %s GB in all\n",
		strconv.FormatFloat(ac.Bandwidth.PeriodUsed, 'f', -1, 64), strconv.FormatFloat(ac.Bandwidth.TotalUsed, 'f', -1, 64))
	fmt.Fprintf(&b, "limits:         plan %s per period; the account's own: %s per period, %s in all",
		gbText(ac.Limits.MonthlyBandwidth), gbText(ac.MonthlyBandwidthLimit), gbText(ac.TotalBandwidthLimit))
	return b.String()
}

func showAccount(a *accountCall, _ []string) (any, string, error) {
	ac, err := a.c.GetAccount(a.ctx)
	return ac, accountText(ac), err
}

func accountEdit(fs *flag.FlagSet) accountRun {
	f := declareLimitFlags(fs, "the account's own")
	return func(a *accountCall, _ []string) (any, string, error) {
		monthly, total := f.given()
		if monthly == nil && total == nil {
			return nil, "", usagef("give --monthly-limit or --total-limit")
		}
		ac, err := a.c.EditAccount(a.ctx, client.AccountChange{MonthlyBandwidthLimit: monthly, TotalBandwidthLimit: total})
		return ac, accountText(ac), err
	}
}

func subCreate(fs *flag.FlagSet) accountRun {
	f := declareSubFlags(fs)
	return func(a *accountCall, pos []string) (any, string, error) {
		pw, err := f.password.required(a.io.Stdin)
		if err != nil {
			return nil, "", err
		}
		sub, err := a.c.CreateSubAccount(a.ctx, client.NewSubAccount{Username: pos[0], Password: pw,
			Proxies: splitList(*f.proxies), IPs: splitList(*f.ips), Email: *f.email, FirstName: *f.firstName, LastName: *f.lastName,
			MonthlyBandwidthLimit: *f.limits.monthly, TotalBandwidthLimit: *f.limits.total})
		return sub, subsText([]client.SubAccount{sub}), err
	}
}

func subEdit(fs *flag.FlagSet) accountRun {
	f := declareSubFlags(fs)
	return func(a *accountCall, pos []string) (any, string, error) {
		var ch client.SubAccountChange
		pw, given, err := f.password.read(a.io.Stdin)
		if err != nil {
			return nil, "", err
		}
		if given {
			ch.Password = &pw
		}
		if f.given("proxies") {
			ch.Proxies = ptr(splitList(*f.proxies))
		}
		if f.given("ips") {
			ch.IPs = ptr(splitList(*f.ips))
		}
		if f.given("active") {
			b, err := strconv.ParseBool(*f.active)
			if err != nil {
				return nil, "", usagef("--active takes true or false")
			}
			ch.Active = &b
		}
		ch.Email, ch.FirstName, ch.LastName = f.value("email", f.email), f.value("first-name", f.firstName), f.value("last-name", f.lastName)
		ch.MonthlyBandwidthLimit, ch.TotalBandwidthLimit = f.limits.given()
		sub, err := a.c.EditSubAccount(a.ctx, pos[0], ch)
		return sub, subsText([]client.SubAccount{sub}), err
	}
}

func subDelete(a *accountCall, pos []string) (any, string, error) {
	return nil, "deleted " + pos[0], a.c.DeleteSubAccount(a.ctx, pos[0])
}

func usageCmd(fs *flag.FlagSet) accountRun {
	from := fs.String("from", "", "first day, YYYY-MM-DD")
	to := fs.String("to", "", "last day, YYYY-MM-DD")
	return func(a *accountCall, _ []string) (any, string, error) {
		report, err := a.c.UsageReport(a.ctx, *from, *to)
		rows := report.Usage
		var b strings.Builder
		table(&b, []string{"DAY", "SUB-ACCOUNT", "PROXY", "BYTES-IN", "BYTES-OUT", "REQUESTS", "TUNNELS"}, len(rows), func(i int) []any {
			r := rows[i]
			return []any{r.Day, dash(r.SubAccount), r.Proxy, r.BytesIn, r.BytesOut, r.Requests, r.Tunnels}
		})
		bw := report.Bandwidth
		fmt.Fprintf(&b, "\nbandwidth this month (%s, UTC): %s", bw.Month, operator.BandwidthUsed(bw.Used, bw.Limit))
		report.Usage = nonNil(rows)
		return report, b.String(), err
	}
}

func tokensText(ts []client.Token) string {
	var b strings.Builder
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	table(&b, []string{"ID", "PREFIX", "LABEL", "LOGIN", "ACTIVE", "EXPIRES", "LAST USED"}, len(ts), func(i int) []any {
		t := ts[i]
		return []any{t.ID, t.Prefix, dash(t.Label), t.Username, yesNo(t.Active), when(t.Expires), when(t.LastUsed)}
	})
	return strings.TrimRight(b.String(), "\n")
}

func listTokens(a *accountCall, _ []string) (any, string, error) {
	ts, err := a.c.Tokens(a.ctx)
	return map[string][]client.Token{"tokens": nonNil(ts)}, tokensText(ts), err
}

func tokenCreate(fs *flag.FlagSet) accountRun {
	label := fs.String("label", "", "what the token is for")
	expires := fs.String("expires", "", "when it stops working: a date (the end of that day, UTC) or an RFC 3339 time; default never")
	return func(a *accountCall, _ []string) (any, string, error) {
		var until time.Time
		if *expires != "" {
			var err error
			if until, err = time.Parse(time.RFC3339, *expires); err != nil {
				d, derr := time.Parse(time.DateOnly, *expires)
				if derr != nil {
					return nil, "", usagef("--expires takes YYYY-MM-DD or an RFC 3339 time")
				}
				until = d.AddDate(0, 0, 1)
			}
		}
		t, err := a.c.CreateToken(a.ctx, *label, until)
		text := tokensText([]client.Token{t.Token}) + "\n\n" + t.Secret +
			"\n\nKeep this token: it is shown only once. Use it as Authorization: Bearer on the API, or Proxy-Authorization: Bearer on the proxies."
		return t, text, err
	}
}

// tokenID reads a token id argument.
func tokenID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%q is not a token id (see exitmesh tokens)", s)
	}
	return id, nil
}

func tokenActivate(a *accountCall, pos []string) (any, string, error) {
	return tokenSetActive(a, pos[0], a.c.ActivateToken)
}

func tokenDeactivate(a *accountCall, pos []string) (any, string, error) {
	return tokenSetActive(a, pos[0], a.c.DeactivateToken)
}

func tokenSetActive(a *accountCall, arg string, set func(context.Context, int64) (client.Token, error)) (any, string, error) {
	id, err := tokenID(arg)
	if err != nil {
		return nil, "", err
	}
	t, err := set(a.ctx, id)
	return t, tokensText([]client.Token{t}), err
}

func tokenDelete(a *accountCall, pos []string) (any, string, error) {
	id, err := tokenID(pos[0])
	if err != nil {
		return nil, "", err
	}
	return nil, "deleted token " + pos[0], a.c.DeleteToken(a.ctx, id)
}

func showWebhook(a *accountCall, _ []string) (any, string, error) {
	w, err := a.c.Webhook(a.ctx)
	return w, webhookText(w), err
}

func setWebhook(a *accountCall, pos []string) (any, string, error) {
	w, err := a.c.SetWebhook(a.ctx, pos[0])
	return w, webhookText(w), err
}

// webhookText shows the webhook as a person reads it: the URL, the secret to check signatures
// with, and which events come.
func webhookText(w client.Webhook) string {
	if w.URL == "" {
		return "no webhook (events: " + strings.Join(w.Events, ", ") + ")"
	}
	return fmt.Sprintf("url:    %s\nsecret: %s\nevents: %s", w.URL, w.Secret, strings.Join(w.Events, ", "))
}

// commas joins a list for a table cell, "-" when it is empty.
func commas(list []string) string { return dash(strings.Join(list, ",")) }
