package web

import (
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
		sent = &opsPlanRow{PlanRow: operator.PlanRow{Plan: plan}, Bandwidth: r.PostFormValue("bandwidth")}
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
	}{{"proxies", &p.MaxProxies}, {"subs", &p.MaxSubs}, {"ips", &p.MaxIPs}, {"hostnames", &p.MaxHostnames}, {"tokens", &p.MaxTokens}} {
		n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue(c.name)))
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
	return p, fields
}

// fieldSentence lists field messages in a stable order: "ips must be a whole number, 0 or more."
func fieldSentence(fields map[string][]string) string {
	var parts []string
	for _, name := range []string{"name", "proxies", "subs", "ips", "hostnames", "tokens", "bandwidth"} {
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
		rows[i] = opsPlanRow{PlanRow: pl, Bandwidth: config.Size(pl.MonthlyBandwidth).String()}
		if pl.MonthlyBandwidth == 0 {
			rows[i].Bandwidth = "0"
		}
	}
	if sent == nil {
		sent = &opsPlanRow{Bandwidth: "0"}
	}
	p.Data = struct {
		Plans []opsPlanRow
		New   *opsPlanRow
	}{rows, sent}
	s.render(w, status, "ops_plans", v, p)
}
