package web

import (
	"cmp"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/operator"
)

// opsPlanRow is a plan as the plans page shows and edits it.
type opsPlanRow struct {
	operator.PlanRow
	Bandwidth string // the limit as the form takes it back: "10GB", "0" for unlimited
	Speed     string // likewise, bytes a second each way per account and node: "5MB", "0" for none
}

func (s *Server) opsPlansPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showOpsPlans(w, r, v, page{}, http.StatusOK, nil)
}

// opsPlansChange creates a plan or replaces an existing plan's limits, as exitmesh admin plan
// create|edit does.
func (s *Server) opsPlansChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var p page
	status := http.StatusOK
	action := r.PostFormValue("action")
	plan, fields := planFromForm(r)
	var sent *opsPlanRow // the create form as sent, when refused
	switch {
	case action != "create" && action != "edit":
		p.Error, status = "Unknown action.", http.StatusBadRequest
	case len(fields) > 0:
		p.Fields, status = fields, http.StatusBadRequest
		p.Error = "Plan " + plan.Name + " not saved: " + fieldSentence(fields)
	default:
		var err error
		if action == "create" {
			err = s.cfg.Operator.CreatePlan(r.Context(), plan)
		} else {
			_, err = s.cfg.Operator.EditPlan(r.Context(), plan.Name, operator.LimitsOf(plan))
		}
		if err != nil {
			status = s.opsFailed(&p, err)
			break
		}
		verb := "created"
		if action == "edit" {
			verb = "updated: accounts on it get its limits within a sync interval"
		}
		s.opsDone(&p, v, action+"-plan", plan.Name, fmt.Sprintf("Plan %s %s.", plan.Name, verb))
	}
	if action == "create" && p.Error != "" {
		sent = &opsPlanRow{PlanRow: operator.PlanRow{Plan: plan}, Bandwidth: r.PostFormValue("bandwidth"), Speed: r.PostFormValue("speed")}
	}
	s.showOpsPlans(w, r, v, p, status, sent)
}

// planFromForm reads a plan's name and limits; fields holds a message for each value that is not
// a count (a whole number, 0 or more) or a size (10GB, 500MiB, 0 for unlimited).
func planFromForm(r *http.Request) (domain.Plan, map[string][]string) {
	p := domain.Plan{Name: strings.TrimSpace(r.PostFormValue("name"))}
	fields := map[string][]string{}
	for _, c := range []struct {
		name string
		dst  *int
	}{{"proxies", &p.MaxProxies}, {"subs", &p.MaxSubs}, {"ips", &p.MaxIPs}, {"hostnames", &p.MaxHostnames}, {"tokens", &p.MaxTokens},
		{"rate", &p.Rate}, {"connections", &p.Connections}} {
		v := strings.TrimSpace(r.PostFormValue(c.name))
		if v == "" && (c.name == "rate" || c.name == "connections") {
			v = "0" // none: these came after the others, and a blank one means no limit
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fields[c.name] = append(fields[c.name], "must be a whole number, 0 or more.")
		}
		*c.dst = n
	}
	size, err := config.ParseSize(r.PostFormValue("bandwidth"))
	if err != nil {
		fields["bandwidth"] = append(fields["bandwidth"], "must be a size such as 10GB or 500MiB, 0 for unlimited.")
	}
	p.MonthlyBandwidth = int64(size)
	speed, err := config.ParseSize(cmp.Or(strings.TrimSpace(r.PostFormValue("speed")), "0"))
	if err != nil {
		fields["speed"] = append(fields["speed"], "must be a size a second such as 5MB, 0 for none.")
	}
	p.Speed = int64(speed)
	return p, fields
}

// fieldSentence lists field messages in a stable order: "ips must be a whole number, 0 or more."
func fieldSentence(fields map[string][]string) string {
	var parts []string
	for _, name := range []string{"name", "proxies", "subs", "ips", "hostnames", "tokens", "bandwidth", "rate", "speed", "connections"} {
		for _, m := range fields[name] {
			parts = append(parts, name+" "+m)
		}
	}
	return strings.Join(parts, " ")
}

func (s *Server) showOpsPlans(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, sent *opsPlanRow) {
	p.Title, p.Nav = "Plans", "ops-plans"
	plans, err := s.cfg.Operator.Plans(r.Context())
	if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	rows := make([]opsPlanRow, len(plans))
	for i, pl := range plans {
		rows[i] = opsPlanRow{PlanRow: pl, Bandwidth: formSize(pl.MonthlyBandwidth), Speed: formSize(pl.Speed)}
	}
	if sent == nil {
		sent = &opsPlanRow{Bandwidth: "0", Speed: "0"}
	}
	p.Data = struct {
		Plans []opsPlanRow
		New   *opsPlanRow
	}{rows, sent}
	s.render(w, status, "ops_plans", v, p)
}

// formSize is a size as the form takes it back: "10GB", or "0".
func formSize(n int64) string {
	if n == 0 {
		return "0"
	}
	return config.Size(n).String()
}
