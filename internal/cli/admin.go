package cli

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/operator"
	"github.com/exitmesh/exitmesh/internal/store"
)

const adminUsage = `Usage: exitmesh admin COMMAND [--config FILE] ...

Plans:
  plan create NAME --proxies N --subs N --ips N --hostnames N --bandwidth SIZE [--tokens N]
                   [--rate N] [--speed SIZE] [--connections N]   per account and node, 0 = none
  plan edit NAME [--proxies N] [--subs N] [--ips N] [--hostnames N] [--bandwidth SIZE] [--tokens N]
                 [--rate N] [--speed SIZE] [--connections N]
  plan list
Accounts:
  account create USERNAME --plan NAME (--password-stdin | --password P) [--proxies NAME,NAME] [--ips IP,IP] [--unconfirmed]
  account list
  account show USERNAME
  account confirm|disable|enable USERNAME
  account set-plan USERNAME PLAN
  account set-billing-day USERNAME DAY   billing periods start on DAY (1-28) of each month, 00:00 UTC
  account reset-password USERNAME (--password-stdin | --password P)
Proxy servers:
  proxy list
  exits [PROXY]          every node's exits: health, latency, failures, active set
Usage:
  usage [USERNAME] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
      then each account's bandwidth this month (UTC) against its plan's
  who --exit IP --at TIME [--window 1h]
      who used the exit IP in the hours around TIME (RFC 3339, or YYYY-MM-DD HH:MM in UTC)
Bans (client IPs banned after too many failures, on every node; the operator page's Bans):
  ban list [--prefix TEXT] [--after IP] [--limit N]   the bans in force, in the order of the IPs' text
  ban lift IP            every node accepts IP again within a sync interval
Webhooks (events to the operator's webhooks and accounts'; the operator page's Webhooks):
  webhooks               the newest deliveries: event, id, to, URL, state, attempts, last attempt

SIZE is bytes with an optional unit: 10GB, 500MiB (0 = unlimited).
Every command takes --config FILE (default ./exitmesh.yaml, else the defaults: store sqlite:./exitmesh.db).
`

// adminCmd is one operator command: it gets its flag set to declare flags on, and returns the
// function that runs once the flags are parsed.
type adminCmd func(fs *flag.FlagSet) func(a *admin, pos []string) error

var adminCmds = map[string]adminCmd{
	"plan create":             planCreate,
	"plan edit":               planEdit,
	"plan list":               planList,
	"account create":          accountCreate,
	"account list":            accountList,
	"account show":            accountShow,
	"account confirm":         accountChange((*operator.Service).Confirm, "confirmed"),
	"account disable":         accountChange((*operator.Service).Disable, "disabled"),
	"account enable":          accountChange((*operator.Service).Enable, "enabled"),
	"account set-plan":        accountSetPlan,
	"account set-billing-day": accountSetBillingDay,
	"account reset-password":  accountResetPassword,
	"proxy list":              proxyList,
	"exits":                   exitList,
	"usage":                   usageReport,
	"who":                     whoUsedExit,
	"ban list":                banList,
	"ban lift":                banLift,
	"webhooks":                webhookList,
}

// admin is what a running operator command works with.
type admin struct {
	ctx context.Context
	ops *operator.Service
	io  IO
	cfg *config.Config
}

func runAdmin(ctx context.Context, args []string, stdio IO) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stdio.Stdout, adminUsage)
		if len(args) == 0 {
			return usagef("no admin command given")
		}
		return nil
	}
	// --config may come before the command words too: "admin --config F account list".
	var cfgPath string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, value, ok := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if name != "config" {
			return usagef("unknown admin flag %q before the command", args[0])
		}
		if !ok {
			if len(args) < 2 {
				return usagef("--config needs a file")
			}
			value, args = args[1], args[1:]
		}
		cfgPath, args = value, args[1:]
	}
	if len(args) == 0 {
		return usagef("no admin command given")
	}
	name, rest := args[0], args[1:]
	if _, ok := adminCmds[name]; !ok && len(args) > 1 {
		name, rest = args[0]+" "+args[1], args[2:]
	}
	cmd, ok := adminCmds[name]
	if !ok {
		return usagef("unknown admin command %q", strings.Join(args[:min(2, len(args))], " "))
	}
	fs := flag.NewFlagSet("admin "+name, flag.ContinueOnError)
	fs.StringVar(&cfgPath, "config", cfgPath, "config file")
	runCmd := cmd(fs)
	pos, err := parseArgs(fs, rest, stdio.Stdout)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	// The config's plans and proxy servers exist before any command that names them; what exists
	// already is left as it is (serve applies the config's values at its start).
	if err := node.ProvisionMissing(ctx, st, cfg); err != nil {
		return err
	}
	// Nothing to tell of a change: no node's view lives in this process.
	return runCmd(&admin{ctx: ctx, ops: operator.New(operator.Config{Store: st}), io: stdio, cfg: cfg}, pos)
}

func ptr[T any](v T) *T { return &v }

// planFlags declares the plan limit flags; set reports which were given.
type planFlags struct {
	proxies, subs, ips, hostnames, tokens, rate, connections *int
	bandwidth, speed                                         *string
	flagsGiven
}

func declarePlanFlags(fs *flag.FlagSet) *planFlags {
	return &planFlags{
		proxies:     fs.Int("proxies", 0, "proxy servers an account may authorize"),
		subs:        fs.Int("subs", 0, "sub-accounts"),
		ips:         fs.Int("ips", 0, "authorized IPs"),
		hostnames:   fs.Int("hostnames", 0, "authorized hostnames"),
		tokens:      fs.Int("tokens", 0, "active API tokens of an account and its sub-accounts (0 = none)"),
		bandwidth:   fs.String("bandwidth", "0", "monthly bandwidth (0 = unlimited)"),
		rate:        fs.Int("rate", 0, "requests and tunnel opens a second per account, on each node (0 = none)"),
		speed:       fs.String("speed", "0", "bytes a second each way per account, on each node, e.g. 5MB (0 = none)"),
		connections: fs.Int("connections", 0, "requests and tunnels in flight per account, on each node (0 = none)"),
		flagsGiven:  flagsGiven{fs},
	}
}

// change returns the limits given on the command line or, with all, every limit (a flag not
// given has its default).
func (f *planFlags) change(all bool) (operator.PlanChange, error) {
	count := func(name string, v *int) *int {
		if all || f.given(name) {
			return v
		}
		return nil
	}
	c := operator.PlanChange{MaxProxies: count("proxies", f.proxies), MaxSubs: count("subs", f.subs),
		MaxIPs: count("ips", f.ips), MaxHostnames: count("hostnames", f.hostnames), MaxTokens: count("tokens", f.tokens),
		Rate: count("rate", f.rate), Connections: count("connections", f.connections)}
	for _, sz := range []struct {
		name  string
		value *string
		dst   **int64
	}{{"bandwidth", f.bandwidth, &c.MonthlyBandwidth}, {"speed", f.speed, &c.Speed}} {
		if all || f.given(sz.name) {
			size, err := config.ParseSize(*sz.value)
			if err != nil {
				return c, usagef("--%s: %s", sz.name, err)
			}
			*sz.dst = ptr(int64(size))
		}
	}
	return c, nil
}

func planCreate(fs *flag.FlagSet) func(*admin, []string) error {
	pf := declarePlanFlags(fs)
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "plan create NAME"); err != nil {
			return err
		}
		limits, err := pf.change(true)
		if err != nil {
			return err
		}
		p := domain.Plan{Name: pos[0]}
		limits.Apply(&p)
		if err := a.ops.CreatePlan(a.ctx, p); err != nil {
			return err
		}
		fmt.Fprintf(a.io.Stdout, "plan %s created\n", p.Name)
		return nil
	}
}

func planEdit(fs *flag.FlagSet) func(*admin, []string) error {
	pf := declarePlanFlags(fs)
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "plan edit NAME"); err != nil {
			return err
		}
		limits, err := pf.change(false)
		if err != nil {
			return err
		}
		p, err := a.ops.EditPlan(a.ctx, pos[0], limits)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.io.Stdout, "plan %s updated\n", p.Name)
		return nil
	}
}

func planList(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 0, "no arguments"); err != nil {
			return err
		}
		plans, err := a.ops.Plans(a.ctx)
		if err != nil {
			return err
		}
		return table(a.io.Stdout, []string{"PLAN", "PROXIES", "SUBS", "IPS", "HOSTNAMES", "TOKENS", "BANDWIDTH", "RATE", "SPEED", "CONNECTIONS"}, len(plans), func(i int) []any {
			p := plans[i]
			return []any{p.Name, p.MaxProxies, p.MaxSubs, p.MaxIPs, p.MaxHostnames, p.MaxTokens, bandwidth(p.MonthlyBandwidth),
				perNode(int64(p.Rate), "/s"), perNode(p.Speed, "B/s"), perNode(int64(p.Connections), "")}
		})
	}
}

// perNode shows a per-node limit: "-" for none.
func perNode(v int64, unit string) string {
	switch {
	case v == 0:
		return "-"
	case unit == "B/s":
		return config.Size(v).String() + "/s"
	}
	return fmt.Sprint(v) + unit
}

func bandwidth(b int64) string {
	if b == 0 {
		return "unlimited"
	}
	return config.Size(b).String() + "/month"
}

// table writes aligned columns.
func table(w io.Writer, head []string, n int, row func(i int) []any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for i := range n {
		cells := row(i)
		for j, c := range cells {
			sep := "\t"
			if j == len(cells)-1 {
				sep = "\n"
			}
			fmt.Fprint(tw, c, sep)
		}
	}
	return tw.Flush()
}

// passwordFlags reads a password from --NAME or, with --NAME-stdin, the first line of stdin.
type passwordFlags struct {
	name      string
	value     *string
	fromStdin *bool
}

func declarePasswordFlags(fs *flag.FlagSet, name, whose string) passwordFlags {
	return passwordFlags{
		name:      name,
		value:     fs.String(name, "", whose+" (visible to other local users: prefer --"+name+"-stdin)"),
		fromStdin: fs.Bool(name+"-stdin", false, "read "+whose+" from the first line of standard input"),
	}
}

// read returns the password given, if one was.
func (f passwordFlags) read(stdin io.Reader) (pw string, given bool, err error) {
	switch {
	case *f.fromStdin && *f.value != "":
		return "", false, usagef("give either --%s or --%s-stdin, not both", f.name, f.name)
	case *f.fromStdin:
		pw, err = readLine(stdin)
		return pw, err == nil, err
	}
	return *f.value, *f.value != "", nil
}

// required returns the password given, or says that one is required.
func (f passwordFlags) required(stdin io.Reader) (string, error) {
	pw, given, err := f.read(stdin)
	if err == nil && !given {
		err = usagef("a password is required: --%s-stdin or --%s P", f.name, f.name)
	}
	return pw, err
}

// readLine reads a password from the first line of r.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// flagsGiven tells a flag given on the command line from one left alone, so --ips "" clears a list
// where no --ips keeps it.
type flagsGiven struct{ fs *flag.FlagSet }

func (g flagsGiven) given(name string) bool {
	found := false
	g.fs.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func accountCreate(fs *flag.FlagSet) func(*admin, []string) error {
	plan := fs.String("plan", "", "plan name (required)")
	proxies := fs.String("proxies", "", "proxy servers to authorize, comma-separated")
	ips := fs.String("ips", "", "client IPs to authorize, comma-separated")
	unconfirmed := fs.Bool("unconfirmed", false, "create the account unconfirmed")
	pw := declarePasswordFlags(fs, "password", "the password")
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "account create USERNAME"); err != nil {
			return err
		}
		if *plan == "" {
			return usagef("--plan is required")
		}
		password, err := pw.required(a.io.Stdin)
		if err != nil {
			return err
		}
		acct, err := a.ops.CreateAccount(a.ctx, operator.NewAccount{Username: pos[0], Password: password, Plan: *plan,
			Confirmed: !*unconfirmed, Proxies: splitList(*proxies), IPs: splitList(*ips)})
		if err != nil {
			return flagErrors(err)
		}
		fmt.Fprintf(a.io.Stdout, "account %s created (plan %s)\n", acct.Username, acct.Plan)
		return nil
	}
}

func accountList(fs *flag.FlagSet) func(*admin, []string) error {
	pf := declarePageFlags(fs, "accounts", "account list", domain.MaxAccountPage,
		"only usernames that start with this, in any case", "start after this username (the previous page's last)")
	return func(a *admin, pos []string) error {
		if err := pf.check(pos); err != nil {
			return err
		}
		page, err := a.ops.AccountsPage(a.ctx, domain.AccountQuery{Prefix: *pf.prefix, After: *pf.after, Limit: *pf.limit})
		if err != nil {
			return err
		}
		accts := page.Accounts
		err = table(a.io.Stdout, []string{"USERNAME", "PLAN", "STATUS", "PROXIES", "IPS", "CREATED"}, len(accts), func(i int) []any {
			ac := accts[i]
			return []any{ac.Username, ac.Plan, ac.Status, dash(strings.Join(ac.Proxies, ",")), len(ac.IPs), ac.CreatedAt.UTC().Format(time.DateOnly)}
		})
		if err == nil {
			pf.next(a.io.Stderr, page.Next)
		}
		return err
	}
}

// pageFlags are the --prefix, --after and --limit of a list command that prints a page at a time.
type pageFlags struct {
	what, cmd     string // "bans", "ban list"
	most          int
	prefix, after *string
	limit         *int
}

func declarePageFlags(fs *flag.FlagSet, what, cmd string, most int, prefixHelp, afterHelp string) *pageFlags {
	return &pageFlags{what: what, cmd: cmd, most: most,
		prefix: fs.String("prefix", "", prefixHelp),
		after:  fs.String("after", "", afterHelp),
		limit:  fs.Int("limit", 100, fmt.Sprintf("%s per page, at most %d", what, most)),
	}
}

// check refuses positional arguments and a --limit out of range.
func (f *pageFlags) check(pos []string) error {
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *f.limit < 1 || *f.limit > f.most {
		return usagef("--limit must be from 1 to %d", f.most)
	}
	return nil
}

// next tells, on stderr so that stdout stays one table, the command that lists the page after the
// one printed; next is "" after the last page.
func (f *pageFlags) next(w io.Writer, next string) {
	if next == "" {
		return
	}
	args := "--after " + next
	if *f.prefix != "" {
		args = "--prefix " + *f.prefix + " " + args
	}
	fmt.Fprintf(w, "more %s follow: exitmesh admin %s %s\n", f.what, f.cmd, args)
}

// limitText is a bandwidth limit in bytes as people read it: "none" for 0.
func limitText(n int64) string {
	if n == 0 {
		return "none"
	}
	return config.Size(n).Human()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func accountShow(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "account show USERNAME"); err != nil {
			return err
		}
		ac, err := a.ops.Account(a.ctx, pos[0])
		if err != nil {
			return err
		}
		ips := make([]string, len(ac.IPs))
		for i, ip := range ac.IPs {
			ips[i] = ip.String()
		}
		subNames := make([]string, len(ac.Subs))
		for i, s := range ac.Subs {
			subNames[i] = s.Username
		}
		w := a.io.Stdout
		fmt.Fprintf(w, "username:  %s\nplan:      %s\nstatus:    %s\ncreated:   %s\n", ac.Username, ac.Plan, ac.Status, ac.CreatedAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "proxies:   %s\nips:       %s\nsubs:      %s\n", dash(strings.Join(ac.Proxies, ", ")), dash(strings.Join(ips, ", ")), dash(strings.Join(subNames, ", ")))
		fmt.Fprintf(w, "bandwidth: %s this month (%s, UTC)\n", ac.Bandwidth, ac.Month)
		fmt.Fprintf(w, "billing:   from day %d of each month (00:00 UTC)\nlimits:    %s monthly, %s in all (the account's own, beside the plan's)\n",
			ac.BillingDay, limitText(ac.MonthlyLimit), limitText(ac.TotalLimit))
		return nil
	}
}

// accountChange makes a command that applies one fixed change to an account.
func accountChange(change func(*operator.Service, context.Context, string) (domain.Account, error), done string) adminCmd {
	return func(*flag.FlagSet) func(*admin, []string) error {
		return func(a *admin, pos []string) error {
			if err := wantArgs(pos, 1, "USERNAME"); err != nil {
				return err
			}
			ac, err := change(a.ops, a.ctx, pos[0])
			return a.reportChange(ac, err, done)
		}
	}
}

// reportChange reports the outcome of a change of an account.
func (a *admin) reportChange(ac domain.Account, err error, done string) error {
	if err != nil {
		return err
	}
	fmt.Fprintf(a.io.Stdout, "account %s %s\n", ac.Username, done)
	return nil
}

func accountSetPlan(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 2, "account set-plan USERNAME PLAN"); err != nil {
			return err
		}
		ac, err := a.ops.SetPlan(a.ctx, pos[0], pos[1])
		return a.reportChange(ac, err, "moved to plan "+pos[1])
	}
}

func accountSetBillingDay(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 2, "account set-billing-day USERNAME DAY"); err != nil {
			return err
		}
		day, err := strconv.Atoi(pos[1])
		if err != nil {
			return usagef("DAY must be a number from 1 to %d, not %q", domain.MaxBillingDay, pos[1])
		}
		ac, err := a.ops.SetBillingDay(a.ctx, pos[0], day)
		return a.reportChange(ac, err, fmt.Sprintf("bills from day %d of each month", day))
	}
}

func accountResetPassword(fs *flag.FlagSet) func(*admin, []string) error {
	pw := declarePasswordFlags(fs, "password", "the password")
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "account reset-password USERNAME"); err != nil {
			return err
		}
		password, err := pw.required(a.io.Stdin)
		if err != nil {
			return err
		}
		ac, err := a.ops.ResetPassword(a.ctx, pos[0], password)
		return a.reportChange(ac, err, "has a new password")
	}
}

// flagErrors turns the service's field errors, inputs it could not read, into a wrong command line
// naming the flags: "--ips: "999.1.1.1" is not an IP address."
func flagErrors(err error) error {
	fields := domain.ErrorFields(err)
	if len(fields) == 0 {
		return err
	}
	var msgs []string
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		for _, m := range fields[name] {
			msgs = append(msgs, "--"+name+": "+m)
		}
	}
	return usagef("%s", strings.Join(msgs, " "))
}

func proxyList(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 0, "no arguments"); err != nil {
			return err
		}
		ps, err := a.ops.ProxyServers(a.ctx)
		if err != nil {
			return err
		}
		return table(a.io.Stdout, []string{"PROXY", "ADDRESS", "COUNTRY"}, len(ps), func(i int) []any {
			return []any{ps[i].Name, ps[i].Address, dash(ps[i].Country)}
		})
	}
}

func exitList(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if len(pos) > 1 {
			return usagef("want exits [PROXY]")
		}
		var proxy string // "": every proxy server's
		if len(pos) == 1 {
			proxy = pos[0]
		}
		ex, err := a.ops.Exits(a.ctx, proxy)
		if err != nil {
			return err
		}
		return table(a.io.Stdout, []string{"NODE", "PROXY", "EXIT", "VIA", "HEALTH", "ACTIVE", "LATENCY", "CHECKS", "FAILED", "LAST ERROR", "REPORTED"}, len(ex), func(i int) []any {
			e := ex[i]
			return []any{e.Node, e.Proxy, e.IP, dash(e.Via), e.Health, yesNo(e.Active), e.Latency,
				e.Checks, e.Failures, dash(clip(e.LastError, 60)), e.Reported}
		})
	}
}

// clip shortens s to n characters for a table cell.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func usageReport(fs *flag.FlagSet) func(*admin, []string) error {
	from := fs.String("from", "", "first day, YYYY-MM-DD (inclusive)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (inclusive)")
	return func(a *admin, pos []string) error {
		if len(pos) > 1 {
			return usagef("want usage [USERNAME]")
		}
		f := domain.UsageFilter{From: *from, To: *to}
		if len(pos) == 1 {
			f.Username = pos[0]
		}
		report, err := a.ops.UsageReport(a.ctx, f)
		if err != nil {
			return err
		}
		rows := report.Rows
		err = table(a.io.Stdout, []string{"DAY", "ACCOUNT", "SUB-ACCOUNT", "PROXY", "BYTES-IN", "BYTES-OUT", "REQUESTS", "TUNNELS"}, len(rows), func(i int) []any {
			r := rows[i]
			return []any{r.Day, r.Username, dash(r.SubAccount), r.Proxy, r.BytesIn, r.BytesOut, r.Requests, r.Tunnels}
		})
		if err != nil {
			return err
		}
		return bandwidthReport(a.io.Stdout, report, f.Username != "")
	}
}

// bandwidthReport writes the month's bandwidth of the report's accounts: on the heading's line for
// the one account asked about, else one line each.
func bandwidthReport(w io.Writer, report operator.UsageReport, one bool) error {
	heading := "\nbandwidth this month (" + report.Month + ", UTC):"
	if one {
		_, err := fmt.Fprintf(w, "%s %s\n", heading, report.Accounts[0].Bandwidth)
		return err
	}
	fmt.Fprintln(w, heading)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ac := range report.Accounts {
		fmt.Fprintf(tw, "  %s\t%s\n", ac.Username, ac.Bandwidth)
	}
	return tw.Flush()
}

// whoUsedExit answers an abuse complaint from the hourly exit records of every node.
func whoUsedExit(fs *flag.FlagSet) func(*admin, []string) error {
	exit := fs.String("exit", "", "the exit IP the complaint names")
	at := fs.String("at", "", "when: RFC 3339 (2026-12-03T14:32:00Z), or YYYY-MM-DD HH:MM[:SS] in UTC")
	window := fs.Duration("window", time.Hour, "the span around --at to search")
	return func(a *admin, pos []string) error {
		if len(pos) > 0 || *exit == "" || *at == "" {
			return usagef("want who --exit IP --at TIME [--window 1h]")
		}
		when, err := parseWhen(*at)
		if err != nil {
			return err
		}
		uses, err := a.ops.WhoUsedExit(a.ctx, *exit, when, *window)
		if err != nil {
			return err
		}
		if len(uses) == 0 {
			_, err := fmt.Fprintf(a.io.Stdout, "nobody used exit %s between %s and %s (UTC)\n", *exit,
				when.Add(-*window/2).UTC().Format(time.DateTime), when.Add(*window/2).UTC().Format(time.DateTime))
			return err
		}
		err = table(a.io.Stdout, []string{"HOUR (UTC)", "PROXY", "ACCOUNT", "SUB-ACCOUNT", "REQUESTS", "TUNNELS", "BYTES-IN", "BYTES-OUT"}, len(uses), func(i int) []any {
			u := uses[i]
			return []any{u.Hour.Format("2006-01-02 15:04"), u.Proxy, u.Username, dash(u.SubAccount), u.Requests, u.Tunnels, u.BytesIn, u.BytesOut}
		})
		if err != nil || a.cfg.AccessLog.Path == "" || a.cfg.AccessLog.Path == "-" {
			return err
		}
		// The hours' lines in this node's access log (other nodes keep their own).
		hours := make([]string, 0, len(uses))
		for _, u := range uses {
			if h := u.Hour.Format("2006-01-02T15"); !slices.Contains(hours, h) {
				hours = append(hours, h)
			}
		}
		_, err = fmt.Fprintf(a.io.Stdout, "\nthe requests themselves, in this node's access log:\n  grep -h '\"exit_ip\":\"%s\"' %s* | grep -E '\"time\":\"(%s)'\n",
			uses[0].Exit, a.cfg.AccessLog.Path, strings.Join(hours, "|"))
		return err
	}
}

func banList(fs *flag.FlagSet) func(*admin, []string) error {
	pf := declarePageFlags(fs, "bans", "ban list", domain.MaxBanPage,
		"only IPs whose text starts with this, e.g. 203.0.113.", "start after this IP (the previous page's last)")
	return func(a *admin, pos []string) error {
		if err := pf.check(pos); err != nil {
			return err
		}
		page, err := a.ops.BansPage(a.ctx, domain.BanQuery{Prefix: *pf.prefix, After: *pf.after, Limit: *pf.limit})
		if err != nil {
			return err
		}
		bans := page.Bans
		err = table(a.io.Stdout, []string{"IP", "REASON", "SINCE (UTC)", "UNTIL (UTC)", "LEFT"}, len(bans), func(i int) []any {
			b := bans[i]
			since := "unknown"
			if !b.Since.IsZero() {
				since = b.Since.UTC().Format(time.DateTime)
			}
			return []any{b.IP, b.Reason, since, b.Until.UTC().Format(time.DateTime), b.Left}
		})
		if err == nil {
			pf.next(a.io.Stderr, page.Next)
		}
		return err
	}
}

// parseWhen reads the time of a complaint: RFC 3339, or a date and time without a zone, read as UTC.
func parseWhen(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--at %q: want RFC 3339 (2026-12-03T14:32:00Z) or YYYY-MM-DD HH:MM in UTC", s)
}

func banLift(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "ban lift IP"); err != nil {
			return err
		}
		ip, err := a.ops.LiftBan(a.ctx, pos[0])
		if len(domain.ErrorFields(err)) > 0 {
			return usagef("%q is not an IP address", pos[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(a.io.Stdout, "ban of %s lifted: every node accepts it again within a sync interval\n", ip)
		return nil
	}
}

// webhookList shows the newest webhook deliveries and how each is going.
func webhookList(fs *flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if len(pos) > 0 {
			return usagef("want webhooks")
		}
		ds, err := a.ops.WebhookDeliveries(a.ctx)
		if err != nil {
			return err
		}
		return table(a.io.Stdout, []string{"CREATED (UTC)", "EVENT", "ID", "TO", "URL", "STATE", "ATTEMPTS", "LAST ATTEMPT"}, len(ds), func(i int) []any {
			d := ds[i]
			to := "operator"
			if !d.Operator {
				to = d.Account
			}
			last := "-"
			if !d.LastAt.IsZero() {
				last = d.LastAt.UTC().Format(time.DateTime) + " " + cmp.Or(d.LastError, "delivered")
			}
			return []any{d.Created.UTC().Format(time.DateTime), d.Event, d.EventID, to, d.URL, d.State, d.Attempts, last}
		})
	}
}
