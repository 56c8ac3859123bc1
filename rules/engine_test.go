package rules

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/store/tsdb"
)

const engineRules = `
rules:
  - name: puissance-mairie
    kind: threshold
    severity: critical
    scope: {devices: [elec-mairie]}
    metric: power_w
    above: 30000
    clear: 25000
`

// noQuery is the engine's querier when only streaming rules run: a window rule would fail loudly.
type noQuery struct{}

func (noQuery) Query(context.Context, hv.Query) ([]hv.Series, error) {
	return nil, hv.ErrUnavailable
}

// newEngineManager is an alert manager on a fresh SQLite file, closed with the test.
func newEngineManager(t *testing.T) *Manager {
	t.Helper()
	db, err := OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mgr, err := NewManager(context.Background(), db, nil, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// TestEngine: a streaming rule fed through the engine raises its alert at the next evaluation; an invalid
// reload is refused with its line and the running rules keep evaluating; a reload without the rule resolves
// its alert; per-rule metrics count the evaluations.
func TestEngine(t *testing.T) {
	ctx := context.Background()
	src := engineRules
	load := func() (*RuleSet, error) { return LoadRules([]byte(src), "engine.yaml", testReg, Deps{}) }
	set, err := load()
	if err != nil {
		t.Fatal(err)
	}
	mgr := newEngineManager(t)
	promReg := prometheus.NewRegistry()
	e, err := NewEngine(EngineConfig{Every: time.Minute, Registerer: promReg}, set, load, mgr, noQuery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	firing := func() []Alert {
		t.Helper()
		as, err := mgr.Alerts(ctx, Filter{State: hv.AlertFiring})
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	t0 := ruleNow
	if st, _ := e.Status(); len(st) != 1 || st[0].Health != "unknown" {
		t.Fatalf("status before any evaluation: %+v", st)
	}
	e.Observe([]hv.Reading{{Device: "elec-mairie", Metric: hv.PowerW, Value: 34000, Time: t0.UnixMilli(), Site: "mairie-laon", EPCI: "200043495"}})
	e.EvalAll(ctx, t0.Add(time.Minute))
	if as := firing(); len(as) != 1 || as[0].Rule != "puissance-mairie" || as[0].Labels["device"] != "elec-mairie" {
		t.Fatalf("firing after 34 kW: %+v", as)
	}
	st, _ := e.Status()
	if st[0].Health != "ok" || st[0].Conditions != 1 || !st[0].LastEval.Equal(t0.Add(time.Minute)) {
		t.Fatalf("status: %+v", st[0])
	}

	src = strings.Replace(engineRules, "above: 30000", "abov: 30000", 1)
	err = e.Reload(ctx, t0.Add(2*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "line 8") || !strings.Contains(err.Error(), `"abov"`) {
		t.Fatalf("invalid reload: %v, want the line and the key", err)
	}
	if _, rl := e.Status(); rl.Error == "" {
		t.Fatal("the refused reload is not reported")
	}
	e.EvalAll(ctx, t0.Add(3*time.Minute)) // the previous rules still run
	if len(firing()) != 1 {
		t.Fatal("the alert went away with a refused reload")
	}

	src = "rules: []\n"
	if err := e.Reload(ctx, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if as := firing(); len(as) != 0 {
		t.Fatalf("alerts of a removed rule still firing: %+v", as)
	}
	if st, rl := e.Status(); len(st) != 0 || rl.Error != "" {
		t.Fatalf("status after reload: %+v %+v", st, rl)
	}
	if n := testutil.ToFloat64(e.m.evals.WithLabelValues("puissance-mairie")); n != 2 {
		t.Fatalf("%g evaluations counted, want 2", n)
	}
	if n := testutil.ToFloat64(e.m.reloads.WithLabelValues("error")); n != 1 {
		t.Fatalf("%g refused reloads counted, want 1", n)
	}
}

// TestEngineWarm: after a restart, the streaming rules rebuild their state from the store, so a meter reset
// seen before the restart and a power still above the threshold keep their alerts.
func TestEngineWarm(t *testing.T) {
	ctx := context.Background()
	store, err := tsdb.Open(t.TempDir(), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t0 := ruleNow
	lbl := func(r hv.Reading) hv.Reading {
		r.Site, r.Commune, r.EPCI, r.Fluid = "mairie-laon", "02408", "200043495", hv.Electricity
		return r
	}
	if err := store.Write(ctx, []hv.Reading{
		lbl(hv.Reading{Device: "elec-mairie", Metric: hv.PowerW, Value: 34000, Time: t0.Add(-30 * time.Minute).UnixMilli()}),
		lbl(hv.Reading{Device: "elec-mairie", Metric: hv.CounterEvent, Value: float64(hv.FlagReset), Time: t0.Add(-2 * time.Hour).UnixMilli()}),
		lbl(hv.Reading{Device: "elec-ecole", Metric: hv.PowerW, Value: 34000, Time: t0.Add(-48 * time.Hour).UnixMilli()}), // older than a day
	}); err != nil {
		t.Fatal(err)
	}
	src := engineRules + `
  - name: index
    kind: counter
    severity: info
    hold: 24h
  - name: puissance-ecole
    kind: threshold
    scope: {devices: [elec-ecole]}
    metric: power_w
    above: 30000
`
	set, err := LoadRules([]byte(src), "warm.yaml", testReg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	mgr := newEngineManager(t)
	e, err := NewEngine(EngineConfig{}, set, nil, mgr, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.Warm(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	e.EvalAll(ctx, t0)
	as, err := mgr.Alerts(ctx, Filter{State: hv.AlertFiring})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range as {
		got = append(got, a.Rule+"/"+a.Labels["device"])
	}
	slices.Sort(got)
	if want := []string{"index/elec-mairie", "puissance-mairie/elec-mairie"}; !slices.Equal(got, want) || n != 3 { // power_w replayed to both threshold rules
		t.Fatalf("after warm-up (%d readings replayed): firing %v, want %v", n, got, want)
	}
}
