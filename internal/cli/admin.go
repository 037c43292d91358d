package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
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
  plan create NAME --proxies N --subs N --ips N --hostnames N --bandwidth SIZE
  plan edit NAME [--proxies N] [--subs N] [--ips N] [--hostnames N] [--bandwidth SIZE]
  plan list
Accounts:
  account create USERNAME --plan NAME (--password-stdin | --password P) [--proxies NAME,NAME] [--ips IP,IP] [--unconfirmed]
  account list
  account show USERNAME
  account confirm|disable|enable USERNAME
  account set-plan USERNAME PLAN
  account reset-password USERNAME (--password-stdin | --password P)
Proxy servers:
  proxy list
  exits [PROXY]          every node's exits: health, latency, failures, active set
Usage:
  usage [USERNAME] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
      then each account's bandwidth this month (UTC) against its plan's

SIZE is bytes with an optional unit: 10GB, 500MiB (0 = unlimited).
Every command takes --config FILE (default ./exitmesh.yaml, else the defaults: store sqlite:./exitmesh.db).
`

// adminCmd is one operator command: it gets its flag set to declare flags on, and returns the
// function that runs once the flags are parsed.
type adminCmd func(fs *flag.FlagSet) func(a *admin, pos []string) error

var adminCmds = map[string]adminCmd{
	"plan create":            planCreate,
	"plan edit":              planEdit,
	"plan list":              planList,
	"account create":         accountCreate,
	"account list":           accountList,
	"account show":           accountShow,
	"account confirm":        accountFlag(func(u *domain.AccountUpdate) { u.Confirmed = ptr(true) }, "confirmed"),
	"account disable":        accountFlag(func(u *domain.AccountUpdate) { u.Disabled = ptr(true) }, "disabled"),
	"account enable":         accountFlag(func(u *domain.AccountUpdate) { u.Disabled = ptr(false) }, "enabled"),
	"account set-plan":       accountSetPlan,
	"account reset-password": accountResetPassword,
	"proxy list":             proxyList,
	"exits":                  exitList,
	"usage":                  usageReport,
}

// admin is what a running operator command works with.
type admin struct {
	ctx   context.Context
	store domain.Store
	io    IO
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
	return runCmd(&admin{ctx: ctx, store: st, io: stdio}, pos)
}

func ptr[T any](v T) *T { return &v }

// planFlags declares the plan limit flags; set reports which were given.
type planFlags struct {
	proxies, subs, ips, hostnames *int
	bandwidth                     *string
	flagsGiven
}

func declarePlanFlags(fs *flag.FlagSet) *planFlags {
	return &planFlags{
		proxies:    fs.Int("proxies", 0, "proxy servers an account may authorize"),
		subs:       fs.Int("subs", 0, "sub-accounts"),
		ips:        fs.Int("ips", 0, "authorized IPs"),
		hostnames:  fs.Int("hostnames", 0, "authorized hostnames"),
		bandwidth:  fs.String("bandwidth", "0", "monthly bandwidth (0 = unlimited)"),
		flagsGiven: flagsGiven{fs},
	}
}

// apply writes the given flags into p; with onlySet, flags not on the command line are left alone.
func (f *planFlags) apply(p *domain.Plan, onlySet bool) error {
	assign := func(name string, dst *int, v int) {
		if !onlySet || f.given(name) {
			*dst = v
		}
	}
	assign("proxies", &p.MaxProxies, *f.proxies)
	assign("subs", &p.MaxSubs, *f.subs)
	assign("ips", &p.MaxIPs, *f.ips)
	assign("hostnames", &p.MaxHostnames, *f.hostnames)
	if !onlySet || f.given("bandwidth") {
		size, err := config.ParseSize(*f.bandwidth)
		if err != nil {
			return usagef("--bandwidth: %s", err)
		}
		p.MonthlyBandwidth = int64(size)
	}
	return nil
}

func planCreate(fs *flag.FlagSet) func(*admin, []string) error {
	pf := declarePlanFlags(fs)
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "plan create NAME"); err != nil {
			return err
		}
		p := domain.Plan{Name: pos[0]}
		if err := pf.apply(&p, false); err != nil {
			return err
		}
		if err := a.store.CreatePlan(a.ctx, p); err != nil {
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
		p, err := a.store.GetPlan(a.ctx, pos[0])
		if err != nil {
			return err
		}
		if err := pf.apply(&p, true); err != nil {
			return err
		}
		if err := a.store.UpdatePlan(a.ctx, p); err != nil {
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
		plans, err := a.store.ListPlans(a.ctx)
		if err != nil {
			return err
		}
		return table(a.io.Stdout, []string{"PLAN", "PROXIES", "SUBS", "IPS", "HOSTNAMES", "BANDWIDTH"}, len(plans), func(i int) []any {
			p := plans[i]
			return []any{p.Name, p.MaxProxies, p.MaxSubs, p.MaxIPs, p.MaxHostnames, bandwidth(p.MonthlyBandwidth)}
		})
	}
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

// hash returns the argon2id hash of the given password after checking it.
func (f passwordFlags) hash(stdin io.Reader) (string, error) {
	pw, err := f.required(stdin)
	if err != nil {
		return "", err
	}
	return operator.PasswordHash(pw)
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
		var addrs []netip.Addr
		for _, s := range splitList(*ips) {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return usagef("--ips: %q is not an IP address", s)
			}
			addrs = append(addrs, ip)
		}
		hash, err := pw.hash(a.io.Stdin)
		if err != nil {
			return err
		}
		acct, err := a.store.CreateAccount(a.ctx, domain.NewAccount{Username: pos[0], PasswordHash: hash, Plan: *plan,
			Confirmed: !*unconfirmed, Proxies: splitList(*proxies), IPs: addrs})
		if err != nil {
			return err
		}
		fmt.Fprintf(a.io.Stdout, "account %s created (plan %s)\n", acct.Username, acct.Plan)
		return nil
	}
}

func accountList(fs *flag.FlagSet) func(*admin, []string) error {
	prefix := fs.String("prefix", "", "only usernames that start with this, in any case")
	after := fs.String("after", "", "start after this username (the previous page's last)")
	limit := fs.Int("limit", 100, fmt.Sprintf("accounts per page, at most %d", domain.MaxAccountPage))
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 0, "no arguments"); err != nil {
			return err
		}
		if *limit < 1 || *limit > domain.MaxAccountPage {
			return usagef("--limit must be from 1 to %d", domain.MaxAccountPage)
		}
		page, err := a.store.ListAccounts(a.ctx, domain.AccountQuery{Prefix: *prefix, After: *after, Limit: *limit})
		if err != nil {
			return err
		}
		accts := page.Accounts
		err = table(a.io.Stdout, []string{"USERNAME", "PLAN", "STATUS", "PROXIES", "IPS", "CREATED"}, len(accts), func(i int) []any {
			ac := accts[i]
			return []any{ac.Username, ac.Plan, operator.AccountStatus(ac), dash(strings.Join(ac.Proxies, ",")), len(ac.IPs), ac.CreatedAt.UTC().Format(time.DateOnly)}
		})
		if err == nil && page.Next != "" {
			next := "--after " + page.Next
			if *prefix != "" {
				next = "--prefix " + *prefix + " " + next
			}
			fmt.Fprintf(a.io.Stderr, "more accounts follow: exitmesh admin account list %s\n", next)
		}
		return err
	}
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
		ac, err := a.store.GetAccount(a.ctx, pos[0])
		if err != nil {
			return err
		}
		subs, err := a.store.ListSubAccounts(a.ctx, ac.Username)
		if err != nil {
			return err
		}
		ips := make([]string, len(ac.IPs))
		for i, ip := range ac.IPs {
			ips[i] = ip.String()
		}
		subNames := make([]string, len(subs))
		for i, s := range subs {
			subNames[i] = s.Username
		}
		month, err := operator.MonthBandwidth(a.ctx, a.store, time.Now())
		if err != nil {
			return err
		}
		plan, err := a.store.GetPlan(a.ctx, ac.Plan)
		if err != nil {
			return err
		}
		w := a.io.Stdout
		fmt.Fprintf(w, "username:  %s\nplan:      %s\nstatus:    %s\ncreated:   %s\n", ac.Username, ac.Plan, operator.AccountStatus(ac), ac.CreatedAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "proxies:   %s\nips:       %s\nsubs:      %s\n", dash(strings.Join(ac.Proxies, ", ")), dash(strings.Join(ips, ", ")), dash(strings.Join(subNames, ", ")))
		fmt.Fprintf(w, "bandwidth: %s this month (%s, UTC)\n", operator.BandwidthUsed(month.Bytes[ac.ID], plan.MonthlyBandwidth), month.Month)
		return nil
	}
}

// bandwidthReport writes the month's bandwidth of one account, or of every account when username
// is empty.
func (a *admin) bandwidthReport(username string) error {
	month, err := operator.MonthBandwidth(a.ctx, a.store, time.Now())
	if err != nil {
		return err
	}
	plans, err := a.store.ListPlans(a.ctx)
	if err != nil {
		return err
	}
	limits := make(map[string]int64, len(plans))
	for _, p := range plans {
		limits[p.Name] = p.MonthlyBandwidth
	}
	w := a.io.Stdout
	if username != "" {
		ac, err := a.store.GetAccount(a.ctx, username)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\nbandwidth this month (%s, UTC): %s\n", month.Month, operator.BandwidthUsed(month.Bytes[ac.ID], limits[ac.Plan]))
		return nil
	}
	fmt.Fprintf(w, "\nbandwidth this month (%s, UTC):\n", month.Month)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for q := (domain.AccountQuery{}); ; {
		page, err := a.store.ListAccounts(a.ctx, q)
		if err != nil {
			return err
		}
		for _, ac := range page.Accounts {
			fmt.Fprintf(tw, "  %s\t%s\n", ac.Username, operator.BandwidthUsed(month.Bytes[ac.ID], limits[ac.Plan]))
		}
		if q.After = page.Next; q.After == "" {
			break
		}
	}
	return tw.Flush()
}

// accountFlag makes a command that applies one fixed change to an account.
func accountFlag(change func(*domain.AccountUpdate), done string) adminCmd {
	return func(*flag.FlagSet) func(*admin, []string) error {
		return func(a *admin, pos []string) error {
			if err := wantArgs(pos, 1, "USERNAME"); err != nil {
				return err
			}
			var u domain.AccountUpdate
			change(&u)
			return a.updateAccount(pos[0], u, done)
		}
	}
}

func (a *admin) updateAccount(username string, u domain.AccountUpdate, done string) error {
	ac, err := a.store.UpdateAccount(a.ctx, username, u)
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
		return a.updateAccount(pos[0], domain.AccountUpdate{Plan: &pos[1]}, "moved to plan "+pos[1])
	}
}

func accountResetPassword(fs *flag.FlagSet) func(*admin, []string) error {
	pw := declarePasswordFlags(fs, "password", "the password")
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 1, "account reset-password USERNAME"); err != nil {
			return err
		}
		hash, err := pw.hash(a.io.Stdin)
		if err != nil {
			return err
		}
		return a.updateAccount(pos[0], domain.AccountUpdate{PasswordHash: &hash}, "has a new password")
	}
}

func proxyList(*flag.FlagSet) func(*admin, []string) error {
	return func(a *admin, pos []string) error {
		if err := wantArgs(pos, 0, "no arguments"); err != nil {
			return err
		}
		ps, err := a.store.ListProxyServers(a.ctx)
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
		all, err := a.store.ListExitStatuses(a.ctx)
		if err != nil {
			return err
		}
		ex := slices.DeleteFunc(all, func(e domain.ExitStatus) bool { return len(pos) == 1 && e.Proxy != pos[0] })
		now := time.Now()
		return table(a.io.Stdout, []string{"NODE", "PROXY", "EXIT", "VIA", "HEALTH", "ACTIVE", "LATENCY", "CHECKS", "FAILED", "LAST ERROR", "REPORTED"}, len(ex), func(i int) []any {
			e := ex[i]
			return []any{e.Node, e.Proxy, e.IP, dash(e.Via), operator.ExitHealth(e, now), yesNo(e.Active), operator.ExitLatency(e),
				e.Checks, e.Failures, dash(clip(e.LastError, 60)), operator.ReportAge(e, now)}
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
		rows, err := a.store.Usage(a.ctx, f)
		if err != nil {
			return err
		}
		err = table(a.io.Stdout, []string{"DAY", "ACCOUNT", "SUB-ACCOUNT", "PROXY", "BYTES-IN", "BYTES-OUT", "REQUESTS", "TUNNELS"}, len(rows), func(i int) []any {
			r := rows[i]
			return []any{r.Day, r.Username, dash(r.SubAccount), r.Proxy, r.BytesIn, r.BytesOut, r.Requests, r.Tunnels}
		})
		if err != nil {
			return err
		}
		return a.bandwidthReport(f.Username)
	}
}
