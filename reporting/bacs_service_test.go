package reporting_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/rules"
)

// bacsNow is the clock of the BACS service tests: 10 May 2026, noon in Paris.
var bacsNow = paris(2026, 5, 10, 12, 0)

// bacsRate is the town hall's electricity, kWh an hour: 1, but 1.5 in March and April 2026 (50 % above the
// same months of 2025: a loss of efficiency running into the last complete month, April).
func bacsRate(at time.Time) float64 {
	if at.Year() == 2026 && (at.Month() == time.March || at.Month() == time.April) {
		return 1.5
	}
	return 1
}

// bacsReadings: a reading at half past every hour from 1 January 2025 to now, for the town hall's electricity
// (bacsRate) and gas (0.1 m³ an hour), from from on.
func bacsReadings(t testing.TB, reg *registry.Registry, from time.Time) []hv.Reading {
	var rs []hv.Reading
	for at := date(2025, 1, 1).Add(30 * time.Minute); at.Before(bacsNow); at = at.Add(time.Hour) {
		if at.Before(from) {
			continue
		}
		rs = append(rs, reading(t, reg, "elec-mairie", elecDelta, at, bacsRate(at.In(date(2025, 1, 1).Location()))),
			reading(t, reg, "gaz-mairie", volDelta, at, 0.1))
	}
	return rs
}

func bacsConfig() reporting.Config {
	cfg := reporting.DefaultConfig()
	cfg.Since = date(2025, 1, 1)
	cfg.Now = func() time.Time { return bacsNow }
	return cfg
}

type bacsRig struct {
	reg     *registry.Registry
	store   hv.Store
	rollups *reporting.Rollups
	archive *reporting.MonthlyArchive
	bacs    *reporting.BACS
}

// newBACSRig builds the rollups over a store holding the readings from storeFrom on, and the service with the
// archive at path and the store's retention.
func newBACSRig(t *testing.T, path string, storeFrom time.Time, retention time.Duration) *bacsRig {
	t.Helper()
	cfg := bacsConfig()
	reg := loadRegistry(t, tinyRegistry)
	st := openStore(t)
	backfill(t, st, bacsReadings(t, reg, storeFrom))
	r := reporting.NewRollups(st, cfg, nil)
	if err := r.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, err := reporting.OpenMonthlyArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := reporting.NewBACS(st, r, a, func() *registry.Registry { return reg }, cfg, retention, nil)
	return &bacsRig{reg: reg, store: st, rollups: r, archive: a, bacs: b}
}

// row returns the archived row of a device's metric and month.
func (g *bacsRig) row(t *testing.T, dev string, m hv.Metric, month string) (reporting.MonthRow, bool) {
	t.Helper()
	var ym reporting.YearMonth
	if err := ym.UnmarshalText([]byte(month)); err != nil {
		t.Fatal(err)
	}
	rows, err := g.archive.Rows(context.Background(), []string{dev}, ym, ym)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Metric == m {
			return r, true
		}
	}
	return reporting.MonthRow{}, false
}

func ym(y int, m time.Month) reporting.YearMonth { return reporting.YearMonth{Year: y, Month: m} }

// TestBACSArchiveSurvivesRestartAndRetention: the archive written from a store holding everything comes back
// after a restart on a store whose retention has dropped 2025: those months come from SQLite, the retention's
// half-cut December is not overwritten, and the report compares 2026 with them.
func TestBACSArchiveSurvivesRestartAndRetention(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	g := newBACSRig(t, path, time.Time{}, 0)
	if _, err := g.bacs.Sync(ctx, bacsNow); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dev    string
		metric hv.Metric
		month  string
		value  float64
		hours  int
	}{
		{"elec-mairie", elecDelta, "2025-01", 744, 744},
		{"elec-mairie", elecDelta, "2025-03", 743, 743}, // clocks go forward: 743 hours
		{"elec-mairie", elecDelta, "2025-10", 745, 745}, // and back: 745
		{"elec-mairie", elecDelta, "2026-03", 743 * 1.5, 743},
		{"elec-mairie", elecDelta, "2026-05", 9*24 + 12, 9*24 + 12}, // the current month, up to now
		{"gaz-mairie", volDelta, "2025-12", 74.4, 744},              // m³: converted only when reported
	} {
		r, ok := g.row(t, c.dev, c.metric, c.month)
		if !ok || !near(r.Value, c.value) || r.Hours != c.hours {
			t.Errorf("%s %s: row %+v (found %v), want %v over %d hours", c.dev, c.month, r, ok, c.value, c.hours)
		}
	}
	g.archive.Close()

	// The restart: the store now keeps 140 days (from 21 December 2025, noon), so its first whole month is
	// January 2026.
	retention := 140 * 24 * time.Hour
	g2 := newBACSRig(t, path, bacsNow.Add(-retention), retention)
	if _, err := g2.bacs.Sync(ctx, bacsNow); err != nil {
		t.Fatal(err)
	}
	if r, _ := g2.row(t, "elec-mairie", elecDelta, "2025-12"); !near(r.Value, 744) || r.Hours != 744 {
		t.Errorf("December 2025, half in the store: row %+v, want the archived 744 kWh over 744 hours", r)
	}
	rep, err := g2.bacs.Site(ctx, "mairie-laon", ym(2025, 12), ym(2026, 4), bacsNow)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]reporting.ZoneMonth{}
	for _, m := range rep.Months {
		got[m.Zone+" "+m.Month.String()] = m
	}
	if len(rep.Months) != 10 {
		t.Errorf("%d months, want 5 months × 2 zones: %+v", len(rep.Months), rep.Months)
	}
	dec := got["elec-mairie 2025-12"]
	if !near(dec.KWh, 744) || dec.Hours != 744 || dec.HasReference || dec.Status != reporting.MonthNoReference {
		t.Errorf("December 2025 from the archive, without December 2024 (no data): %+v", dec)
	}
	mar := got["elec-mairie 2026-03"]
	if !near(mar.KWh, 1114.5) || !near(mar.ReferenceKWh, 743) || !near(mar.ExcessPct, 50) || mar.Status != reporting.MonthOver || !mar.Loss {
		t.Errorf("March 2026 against the archived March 2025: %+v", mar)
	}
	gas := got["gaz-mairie 2026-01"]
	if !near(gas.KWh, 74.4*11.2) || !near(gas.ReferenceKWh, 74.4*11.2) || gas.Status != reporting.MonthOK {
		t.Errorf("gas in kWh PCS: %+v", gas)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Zone != "elec-mairie" || rep.Findings[0].From != ym(2026, 3) ||
		rep.Findings[0].To != ym(2026, 4) {
		t.Errorf("findings %+v, want elec-mairie March to April 2026", rep.Findings)
	}
	if len(rep.Zones) != 2 || !strings.Contains(strings.Join(rep.Notes, " "), "conservés") {
		t.Errorf("zones %+v notes %q: want the two meters and a note on archived months", rep.Zones, rep.Notes)
	}
}

// TestBACSLateDataRewritesClosedMonth: a reading arriving late in February (closed, older than the previous
// month) changes its rollups, and the next Sync re-reads that month alone and replaces its row.
func TestBACSLateDataRewritesClosedMonth(t *testing.T) {
	ctx := context.Background()
	g := newBACSRig(t, filepath.Join(t.TempDir(), "state.db"), time.Time{}, 0)
	if _, err := g.bacs.Sync(ctx, bacsNow); err != nil {
		t.Fatal(err)
	}
	st, err := g.bacs.Sync(ctx, bacsNow)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing changed: only the current and previous months of each metric are re-read.
	if st.Reread != 2*len(reporting.RollupMetrics) {
		t.Errorf("second sync re-read %d months, want %d", st.Reread, 2*len(reporting.RollupMetrics))
	}
	late := []hv.Reading{reading(t, g.reg, "elec-mairie", elecDelta, paris(2026, 2, 10, 3, 45), 100)}
	write(t, g.store, late)
	g.rollups.Observe(late)
	if st, err = g.bacs.Sync(ctx, bacsNow); err != nil {
		t.Fatal(err)
	}
	if st.Reread != 2*len(reporting.RollupMetrics)+1 {
		t.Errorf("sync after late data re-read %d months, want %d", st.Reread, 2*len(reporting.RollupMetrics)+1)
	}
	if r, _ := g.row(t, "elec-mairie", elecDelta, "2026-02"); !near(r.Value, 672+100) || r.Hours != 672 {
		t.Errorf("February 2026 after the late reading: %+v, want 772 kWh over 672 hours", r)
	}
}

// TestBACSPrune: rows older than the months kept (60 before the current month) go at Sync.
func TestBACSPrune(t *testing.T) {
	ctx := context.Background()
	g := newBACSRig(t, filepath.Join(t.TempDir(), "state.db"), time.Time{}, 0)
	for _, m := range []reporting.YearMonth{ym(2021, 4), ym(2021, 5)} {
		row := reporting.MonthRow{Device: "elec-mairie", Metric: elecDelta, Month: m, Value: 1, Hours: 1}
		if err := g.archive.ReplaceMonth(ctx, elecDelta, m, []reporting.MonthRow{row}, bacsNow); err != nil {
			t.Fatal(err)
		}
	}
	st, err := g.bacs.Sync(ctx, bacsNow)
	if err != nil {
		t.Fatal(err)
	}
	_, old := g.row(t, "elec-mairie", elecDelta, "2021-04")
	_, kept := g.row(t, "elec-mairie", elecDelta, "2021-05")
	if old || !kept || st.Pruned != 1 {
		t.Errorf("April 2021 kept %v, May 2021 kept %v, pruned %d: want April gone (61 months back), May kept", old, kept, st.Pruned)
	}
}

// TestBACSLossRaisesAlert: the running loss becomes one firing alert of bacs_efficiency_loss through the
// daily rule, labelled with its site, zone and first month, with the months' figures; it stays one alert.
func TestBACSLossRaisesAlert(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g := newBACSRig(t, filepath.Join(dir, "state.db"), time.Time{}, 0)
	db, err := rules.OpenSQLite(filepath.Join(dir, "state.db")) // the shared state database
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mgr, err := rules.NewManager(ctx, db, nil, nil, nil, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	daily, err := rules.NewDaily(reporting.BACSRuleSpec, 6, g.bacs.LossConditions, mgr)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{bacsNow, bacsNow.Add(time.Hour), bacsNow.Add(24 * time.Hour)} {
		if _, err := daily.Eval(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	as, err := mgr.Alerts(ctx, rules.Filter{Rule: reporting.RuleBACSEfficiencyLoss})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 {
		t.Fatalf("%d alerts, want 1: %+v", len(as), as)
	}
	a := as[0]
	laon, _ := g.reg.Site("mairie-laon")
	want := map[string]string{"site": "mairie-laon", "zone": "elec-mairie", "month": "2026-03", "epci": laon.EPCI}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if a.State != hv.AlertFiring || a.Severity != hv.SeverityWarning {
		t.Errorf("state %s severity %s, want a firing warning", a.State, a.Severity)
	}
	if !near(a.Evidence.Value, 743*1.5+720*1.5) || !near(a.Evidence.Baseline, 743+720) ||
		!strings.Contains(a.Evidence.Detail, "2026-04") || !strings.Contains(a.Summary, "Perte d'efficacité") {
		t.Errorf("evidence %+v summary %q", a.Evidence, a.Summary)
	}
	if as, _ := mgr.Alerts(ctx, rules.Filter{EPCI: []string{"200071892"}}); len(as) != 0 {
		t.Errorf("another EPCI's pilote sees %d alerts", len(as))
	}
}

func TestYearMonthAddMonths(t *testing.T) {
	for _, c := range []struct {
		name string
		from reporting.YearMonth
		n    int
		want reporting.YearMonth
	}{
		{"same year", ym(2026, 5), 3, ym(2026, 8)},
		{"into next year", ym(2026, 11), 2, ym(2027, 1)},
		{"back over a year", ym(2026, 5), -60, ym(2021, 5)},
		{"back to December", ym(2026, 1), -1, ym(2025, 12)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.from.AddMonths(c.n); got != c.want {
				t.Errorf("%s + %d = %s, want %s", c.from, c.n, got, c.want)
			}
		})
	}
	if _, err := reporting.AnalyzeBACS(nil, reporting.BACSOptions{ReferenceYear: 2024, PreviousYear: true}); err == nil {
		t.Error("a fixed reference year and the previous year together: no error")
	}
}
