package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
)

const testPlan = `
programs:
  - name: nuit
    label: Extinction cœur de nuit
    start: {sun: sunset}
    end: {sun: sunrise}
    steps:
      - {at: {at: "23:00"}, level: 0}
      - {at: {at: "05:00"}, level: 100}
calendars:
  - {name: standard, default: nuit}
groups:
  - {name: laon, communes: ["02408"], calendar: standard}
  - {name: saint-quentin, communes: ["02691"], calendar: standard}
tariff_eur_kwh: 0.2
`

// sink is a lighting.Publisher keeping the topics it was given.
type sink struct {
	mu     sync.Mutex
	topics []string
}

func (s *sink) Publish(_ context.Context, topic string, _ bool, _ []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics = append(s.topics, topic)
	return nil
}

func (s *sink) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.topics)
}

// newLightingFixture serves a registry of two controllers (Laon, Saint-Quentin) with a real lighting service
// (state database in a temp dir) and a real alert manager holding a lamp failure on each controller.
func newLightingFixture(t *testing.T) (*fixture, *lighting.Service, *sink) {
	t.Helper()
	var svc *lighting.Service
	pub := &sink{}
	f := newFixtureWith(t, "testdata/registry-lighting.yaml", func(reg *registry.Registry, st *live.State, d *Deps) {
		plan, err := lighting.ParsePlan("plan.yaml", []byte(testPlan))
		if err != nil {
			t.Fatal(err)
		}
		db, err := lighting.OpenDB(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		svc, err = lighting.New(db, pub, reg, plan, st.LastSeen, lighting.Options{Offline: 2 * time.Hour, Now: func() time.Time { return now }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.Lighting = svc
		adb, err := rules.OpenSQLite(filepath.Join(t.TempDir(), "alerts.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { adb.Close() })
		m, err := rules.NewManager(context.Background(), adb, nil, nil, nil, rules.Options{})
		if err != nil {
			t.Fatal(err)
		}
		conds := []rules.Condition{
			{Labels: map[string]string{"device": "ctrl-laon", "site": "armoire-laon", "epci": epciLaon}, Value: 1, Summary: "Lampe en panne"},
			{Labels: map[string]string{"device": "ctrl-sq", "site": "armoire-sq", "epci": epciSQ}, Value: 1, Summary: "Lampe en panne"},
		}
		if err := m.Update(context.Background(), now.Add(-time.Hour), rules.RuleSpec{Name: "lamp_failure", Severity: hv.SeverityWarning}, conds); err != nil {
			t.Fatal(err)
		}
		d.Alerts = m
	})
	return f, svc, pub
}

// TestLightingAccess runs the lighting routes for every role: staff command, everyone reads, and a scoped
// principal never sees or commands another EPCI's controllers.
func TestLightingAccess(t *testing.T) {
	f, _, _ := newLightingFixture(t)
	roles := []string{"admin", "technicien", "pilote", "lecteur", "lecteur-sq", ""}
	for _, tt := range []struct {
		method, target string
		body           any
		want           []int // per role, in the order above
	}{
		{"GET", "/api/v1/lighting/groups", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/groups/laon", nil, []int{200, 200, 200, 200, 404, 401}},
		{"GET", "/api/v1/lighting/groups/saint-quentin", nil, []int{200, 200, 404, 200, 200, 401}},
		{"GET", "/api/v1/lighting/groups/nope", nil, []int{404, 404, 404, 404, 404, 401}},
		{"GET", "/api/v1/lighting/devices/ctrl-sq", nil, []int{200, 200, 404, 200, 200, 401}},
		{"GET", "/api/v1/lighting/programs", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/programs/nuit/preview?commune=02408&date=2027-03-27", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/programs/nuit/preview?commune=99999", nil, []int{400, 400, 400, 400, 400, 401}},
		{"PUT", "/api/v1/lighting/programs/nuit", map[string]any{"name": "nuit", "start": map[string]any{"sun": "sunset"},
			"end": map[string]any{"sun": "sunrise"}}, []int{200, 200, 403, 403, 403, 401}},
		{"POST", "/api/v1/lighting/overrides", map[string]any{"device": "ctrl-sq", "level": 100,
			"until": now.Add(time.Hour), "reason": "test"}, []int{201, 201, 403, 403, 403, 401}},
		{"GET", "/api/v1/lighting/overrides", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/commands", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/maintenance", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/savings?from=2025-01-14", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/savings?from=yesterday", nil, []int{400, 400, 400, 400, 400, 401}},
		{"GET", "/api/v1/lighting/compliance?from=2025-01-14", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/lighting/life", nil, []int{200, 200, 200, 200, 200, 401}},
		{"GET", "/api/v1/audit", nil, []int{200, 200, 403, 403, 403, 401}},
	} {
		for i, who := range roles {
			t.Run(tt.method+" "+tt.target+"/"+who, func(t *testing.T) {
				var code int
				var body map[string]any
				if tt.body != nil {
					code, body = f.send(t, tt.method, tt.target, who, tt.body)
				} else {
					code, body, _ = f.do(t, tt.method, tt.target, who)
				}
				if code != tt.want[i] {
					t.Fatalf("got %d %v, want %d", code, body, tt.want[i])
				}
			})
		}
	}
}

func TestLightingScope(t *testing.T) {
	f, _, _ := newLightingFixture(t)
	// An override of Saint-Quentin by the admin: the pilote of Laon sees neither it nor its commands.
	if code, body := f.send(t, "POST", "/api/v1/lighting/overrides", "admin",
		map[string]any{"group": "saint-quentin", "level": 80, "until": now.Add(time.Hour), "reason": "braderie"}); code != 201 {
		t.Fatalf("override: %d %v", code, body)
	}
	for _, c := range []struct{ target, key string }{
		{"/api/v1/lighting/overrides", "overrides"}, {"/api/v1/lighting/commands", "commands"}, {"/api/v1/lighting/maintenance", "items"},
	} {
		_, all, _ := f.do(t, "GET", c.target, "admin")
		_, mine, _ := f.do(t, "GET", c.target, "pilote")
		nAll, nMine := len(all[c.key].([]any)), len(mine[c.key].([]any))
		if nAll == 0 || (c.key != "items" && nMine != 0) || (c.key == "items" && nMine != 1) {
			t.Errorf("%s: admin sees %d, pilote of Laon %d", c.target, nAll, nMine)
		}
	}
	_, body, _ := f.do(t, "GET", "/api/v1/lighting/groups", "pilote")
	groups := body["groups"].([]any)
	if len(groups) != 1 || groups[0].(map[string]any)["name"] != "laon" {
		t.Errorf("pilote of Laon sees groups %v", groups)
	}
}

func TestOverrideThroughAPI(t *testing.T) {
	f, _, pub := newLightingFixture(t)
	code, body := f.send(t, "POST", "/api/v1/lighting/overrides", "technicien",
		map[string]any{"device": "ctrl-laon", "level": 40, "until": now.Add(2 * time.Hour), "reason": "travaux rue de la Herse"})
	if code != 201 {
		t.Fatalf("override: %d %v", code, body)
	}
	if got := pub.sent(); !slices.Contains(got, lighting.CommandTopic("ctrl-laon")) {
		t.Fatalf("published on %v, want %s at once", got, lighting.CommandTopic("ctrl-laon"))
	}
	o := body["override"].(map[string]any)
	cmd := body["commands"].([]any)[0].(map[string]any)
	code, detail, _ := f.do(t, "GET", "/api/v1/lighting/commands/"+cmd["id"].(string), "pilote")
	if code != 200 || detail["command"].(map[string]any)["state"] != lighting.StateSent {
		t.Fatalf("command: %d %v", code, detail)
	}
	var actions []string
	for _, e := range detail["audit"].([]any) {
		e := e.(map[string]any)
		actions = append(actions, e["action"].(string)+" by "+e["actor"].(string))
	}
	if want := []string{"command.create by technicien", "command.sent by programme"}; !slices.Equal(actions, want) {
		t.Errorf("command audit %v, want %v", actions, want)
	}
	// Bad requests say why.
	code, bad := f.send(t, "POST", "/api/v1/lighting/overrides", "admin", map[string]any{"device": "ctrl-laon", "level": 40, "until": now.Add(time.Hour)})
	if msg, _ := bad["error"].(string); code != 400 || !strings.Contains(msg, "reason") {
		t.Errorf("override without reason: %d %v", code, bad)
	}
	// Cancelled by the admin: audited.
	req := httptest.NewRequest("DELETE", "/api/v1/lighting/overrides/"+o["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["admin"])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", rec.Code, rec.Body)
	}
	_, audit, _ := f.do(t, "GET", "/api/v1/audit?action=override.", "admin")
	var got []string
	for _, e := range audit["entries"].([]any) {
		e := e.(map[string]any)
		got = append(got, e["action"].(string)+" by "+e["actor"].(string))
	}
	if want := []string{"override.cancel by admin", "override.create by technicien"}; !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
}

func TestProgramEditAPI(t *testing.T) {
	f, svc, _ := newLightingFixture(t)
	// Invalid: the error names the key.
	code, body := f.send(t, "PUT", "/api/v1/lighting/programs/nuit", "admin",
		map[string]any{"name": "nuit", "start": map[string]any{"sun": "midi"}, "end": map[string]any{"sun": "sunrise"}})
	if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, "sun") {
		t.Fatalf("invalid program: %d %v", code, body)
	}
	// A new program, then used nowhere: it can be deleted; "nuit" is used by the calendar: it cannot.
	code, body = f.send(t, "PUT", "/api/v1/lighting/programs/fete", "admin", map[string]any{"name": "fete", "label": "Fête",
		"start": map[string]any{"sun": "sunset", "offset": "-15m"}, "end": map[string]any{"sun": "sunrise"}, "ramp": "5m"})
	if code != 200 || body["ramp"] != "5m0s" {
		t.Fatalf("new program: %d %v", code, body)
	}
	if _, ok := svc.Plan().Program("fete"); !ok {
		t.Fatal("the new program is not in the plan in force")
	}
	code, body, _ = f.do(t, "GET", "/api/v1/lighting/programs/fete/preview?commune=02408&date=2027-06-21", "lecteur")
	if code != 200 {
		t.Fatalf("preview: %d %v", code, body)
	}
	night := body["night"].(map[string]any)
	on, _ := time.Parse(time.RFC3339, night["on"].(string))
	sunset, _ := time.Parse(time.RFC3339, night["sunset"].(string))
	if d := sunset.Sub(on); d != 15*time.Minute {
		t.Errorf("preview: on %s, sunset %s: want on 15 min before sunset", on, sunset)
	}
	for _, c := range []struct {
		name string
		want int
	}{{"nuit", 400}, {"fete", 204}, {"fete", 404}} {
		req := httptest.NewRequest("DELETE", "/api/v1/lighting/programs/"+c.name, nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens["admin"])
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("DELETE %s: %d %s, want %d", c.name, rec.Code, rec.Body, c.want)
		}
	}
}

func TestMaintenanceAPI(t *testing.T) {
	f, _, _ := newLightingFixture(t)
	_, body, _ := f.do(t, "GET", "/api/v1/lighting/maintenance", "admin")
	items := body["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("work list %v, want the two lamp failures", items)
	}
	first := items[0].(map[string]any)
	if first["commune"] != "02408" || first["commune_name"] != "Laon" || first["site_name"] != "Armoire A1 Laon" {
		t.Errorf("work item %v", first)
	}
	req := httptest.NewRequest("GET", "/api/v1/lighting/maintenance?format=csv&commune=02691", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["lecteur"])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != 200 || len(lines) != 2 || !strings.HasPrefix(lines[0], "id,commune,nom_commune") || !strings.Contains(lines[1], "Saint-Quentin") {
		t.Fatalf("csv %d:\n%s", rec.Code, rec.Body)
	}
	id := first["id"].(string)
	if code, b := f.send(t, "POST", "/api/v1/lighting/maintenance/"+id+"/close", "lecteur", map[string]any{"comment": "x"}); code != 403 {
		t.Errorf("lecteur closed a work item: %d %v", code, b)
	}
	if code, b := f.send(t, "POST", "/api/v1/lighting/maintenance/"+id+"/close", "technicien", map[string]any{"comment": "lampe remplacée"}); code != 200 {
		t.Fatalf("close: %d %v", code, b)
	}
	_, body, _ = f.do(t, "GET", "/api/v1/lighting/maintenance", "admin")
	if n := len(body["items"].([]any)); n != 1 {
		t.Errorf("%d work items after closing one, want 1", n)
	}
	_, audit, _ := f.do(t, "GET", "/api/v1/audit?ref="+id, "admin")
	entries := audit["entries"].([]any)
	if len(entries) != 1 || entries[0].(map[string]any)["actor"] != "technicien" || !strings.Contains(entries[0].(map[string]any)["detail"].(string), "lampe remplacée") {
		t.Errorf("audit of the close: %v", entries)
	}
}
