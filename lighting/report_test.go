package lighting_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/store/tsdb"
)

const step = 5 * time.Minute

func loadRegistry(t *testing.T, doc string) *registry.Registry {
	t.Helper()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.LoadBytes(tr, "test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func openStore(t *testing.T) *tsdb.Store {
	t.Helper()
	s, err := tsdb.Open(t.TempDir(), tsdb.Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// write stores readings in time order, as a live fleet would have.
func write(t *testing.T, s hv.Store, rs []hv.Reading) {
	t.Helper()
	slices.SortStableFunc(rs, func(a, b hv.Reading) int { return int(a.Time - b.Time) })
	if err := s.Write(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func parisAt(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, sun.Paris())
}

// controllerReadings simulates a controller reporting every 5 minutes from first to last (both included):
// the level it runs at, its power, and its energy and burning-hours indexes with the deltas ingest derives
// (none at the first reading). level_pct at t is level(t); the deltas at t cover the 5 minutes before t, run
// at level(t − 5 min) (the schedules change on 5-minute marks).
func controllerReadings(reg *registry.Registry, id string, first, last time.Time, level func(time.Time) float64) []hv.Reading {
	dev, site, _ := reg.Device(id)
	nominal := dev.MaxPowerW / 1.1
	base := hv.Reading{Device: id, Site: site.ID, Commune: site.Commune, EPCI: site.EPCI, Fluid: hv.Electricity}
	var out []hv.Reading
	add := func(m hv.Metric, at time.Time, v float64) {
		r := base
		r.Metric, r.Time, r.Value = m, at.UnixMilli(), v
		out = append(out, r)
	}
	energy, hours := 1000.0, 5000.0
	for at := first; !at.After(last); at = at.Add(step) {
		if at.After(first) {
			l := level(at.Add(-step)) // the level held over the interval the reading closes
			de := nominal * l / 100 * step.Hours() / 1000
			dh := 0.0
			if l > 0 {
				dh = step.Hours()
			}
			energy += de
			hours += dh
			add(hv.EnergyKWh.Delta(), at, de)
			add(hv.OperatingHours.Delta(), at, dh)
		}
		add(hv.EnergyKWh, at, energy)
		add(hv.OperatingHours, at, hours)
		add(hv.LevelPct, at, level(at))
		add(hv.PowerW, at, nominal*level(at)/100)
	}
	return out
}

// between returns a level schedule: level in [on, off), 0 elsewhere.
func between(on, off time.Time, level float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		if !t.Before(on) && t.Before(off) {
			return level
		}
		return 0
	}
}

// steps returns a schedule of consecutive levels: levels[i] from starts[i] until starts[i+1] (the last level
// holds forever); 0 before the first start.
func steps(starts []time.Time, levels []float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		l := 0.0
		for i, s := range starts {
			if !t.Before(s) {
				l = levels[i]
			}
		}
		return l
	}
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

const savingsRegistry = `
sites:
  - {id: armoire-a, name: "Armoire A", kind: lighting_cabinet, commune: "02408", lat: 49.5641, lon: 3.6199}
  - {id: armoire-b, name: "Armoire B", kind: lighting_cabinet, commune: "02691", lat: 49.8489, lon: 3.2876}
  - {id: armoire-c, name: "Armoire C", kind: lighting_cabinet, commune: "02408"}
  - {id: armoire-d, name: "Armoire D", kind: lighting_cabinet, commune: "02722"}
  - {id: armoire-e, name: "Armoire E", kind: lighting_cabinet, commune: "02408"}
devices:
  - {id: ctrl-a, site: armoire-a, kind: lighting_controller, fluid: electricity, interval: 5m, max_power_w: 1100}
  - {id: ctrl-b, site: armoire-b, kind: lighting_controller, fluid: electricity, interval: 5m, max_power_w: 2200}
  - {id: ctrl-c, site: armoire-c, kind: lighting_controller, fluid: electricity, interval: 5m, max_power_w: 1100}
  - {id: ctrl-d, site: armoire-d, kind: lighting_controller, fluid: electricity, interval: 5m, max_power_w: 1100}
  - {id: ctrl-e, site: armoire-e, kind: lighting_controller, fluid: electricity, interval: 5m}
`

// savingsGroups puts ctrl-d in group nord, the others in the default group centre.
func savingsGroups(t *testing.T) lighting.GroupFunc {
	return lighting.PlanGroups(newPlan(t, []lighting.Group{{Name: "nord", Program: "nuit", Devices: []string{"ctrl-d"}}}, nil, nil))
}

// darkKWh is the reference energy of a controller of nominal W at lat, lon: full power from the evening's
// sunset to the next sunrise.
func darkKWh(nominal float64, date time.Time, lat, lon float64) float64 {
	set := sun.Compute(date, lat, lon, sun.Paris()).Sunset
	rise := sun.Compute(date.AddDate(0, 0, 1), lat, lon, sun.Paris()).Sunrise
	return nominal * rise.Sub(set).Hours() / 1000
}

func TestSavingsWinterNight(t *testing.T) {
	reg := loadRegistry(t, savingsRegistry)
	store := openStore(t)
	start, end := parisAt(2027, 1, 15, 12, 0), parisAt(2027, 1, 16, 12, 0)
	var rs []hv.Reading
	// A: 100 % 17:00–23:00 then 50 % until 06:00: 6 h × 1 kW + 7 h × 0.5 kW = 9.5 kWh over 13 h lit.
	rs = append(rs, controllerReadings(reg, "ctrl-a", start, end, steps(
		[]time.Time{parisAt(2027, 1, 15, 17, 0), parisAt(2027, 1, 15, 23, 0), parisAt(2027, 1, 16, 6, 0)},
		[]float64{100, 50, 0}))...)
	// B: 100 % 17:00–08:00: 15 h × 2 kW = 30 kWh.
	rs = append(rs, controllerReadings(reg, "ctrl-b", start, end,
		between(parisAt(2027, 1, 15, 17, 0), parisAt(2027, 1, 16, 8, 0), 100))...)
	// C is silent. D stops reporting at midnight: its night is incomplete.
	rs = append(rs, controllerReadings(reg, "ctrl-d", start, parisAt(2027, 1, 16, 0, 0),
		between(parisAt(2027, 1, 15, 17, 0), parisAt(2027, 1, 16, 8, 0), 100))...)
	write(t, store, rs)

	got, err := lighting.Savings(context.Background(), store, reg, savingsGroups(t),
		parisAt(2027, 1, 15, 0, 0), parisAt(2027, 1, 16, 0, 0), 0.2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("nights: got %d, want 2", len(got))
	}
	n := got[0]
	if n.Night != "2027-01-15" || !n.From.Equal(start) || !n.Until.Equal(end) || n.Hours != 24 {
		t.Errorf("night: got %s %s–%s %vh", n.Night, n.From, n.Until, n.Hours)
	}

	date := parisAt(2027, 1, 15, 0, 0)
	refA := darkKWh(1000, date, 49.5641, 3.6199)
	refB := darkKWh(2000, date, 49.8489, 3.2876)
	ref, used := refA+refB, 9.5+30
	if len(n.Groups) != 2 || n.Groups[0].Group != "centre" || n.Groups[1].Group != "nord" {
		t.Fatalf("groups: got %+v", n.Groups)
	}
	centre, nord := n.Groups[0], n.Groups[1]
	if centre.Controllers != 4 || centre.Counted != 2 || centre.Missing != 1 || centre.Incomplete != 0 || centre.NoNominal != 1 {
		t.Errorf("centre counts: got %+v", centre)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"used", centre.UsedKWh, used},
		{"reference", centre.ReferenceKWh, ref},
		{"saved", centre.SavedKWh, ref - used},
		{"saved %", centre.SavedPct, (ref - used) / ref * 100},
		{"saved €", centre.SavedEUR, (ref - used) * 0.2},
		{"lit hours", centre.LitHours, (13 + 15) / 2.0},
		{"controller hours", centre.ControllerHours, 28},
		{"total used", n.Total.UsedKWh, used},
		{"total reference", n.Total.ReferenceKWh, ref},
	}
	for _, c := range checks {
		if !near(c.got, c.want, 0.051) { // results are rounded: 3 decimals, 2 for €, 1 for %
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if nord.Controllers != 1 || nord.Counted != 0 || nord.Incomplete != 1 || nord.UsedKWh != 0 || nord.ReferenceKWh != 0 {
		t.Errorf("nord: got %+v", nord)
	}
	if tot := n.Total; tot.Controllers != 5 || tot.Counted != 2 || tot.Missing != 1 || tot.Incomplete != 1 || tot.NoNominal != 1 || tot.Group != "" {
		t.Errorf("total counts: got %+v", tot)
	}

	// The next night holds only the 12:00 readings: they frame no darkness.
	next := got[1]
	if c := next.Groups[0]; c.Counted != 0 || c.Incomplete != 2 || c.Missing != 1 || c.UsedKWh != 0 {
		t.Errorf("next night centre: got %+v", c)
	}

	var buf bytes.Buffer
	if err := lighting.WriteSavingsCSV(&buf, got); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+2*3 || recs[0][0] != "nuit" || recs[3][1] != "total" || recs[1][1] != "centre" || recs[1][10] != "39.5" {
		t.Errorf("csv: got %q", recs[:4])
	}
}

func TestSavingsDSTNight(t *testing.T) {
	reg := loadRegistry(t, savingsRegistry)
	store := openStore(t)
	// 27 → 28 March 2027: clocks go from 02:00 to 03:00, the night's window is 23 h long.
	start, end := parisAt(2027, 3, 27, 12, 0), parisAt(2027, 3, 28, 12, 0)
	on, off := parisAt(2027, 3, 27, 19, 0), parisAt(2027, 3, 28, 6, 0) // 10 h apart, not 11
	write(t, store, controllerReadings(reg, "ctrl-a", start, end, between(on, off, 100)))

	got, err := lighting.Savings(context.Background(), store, reg, savingsGroups(t), start, start, 0.15)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("nights: got %d", len(got))
	}
	n := got[0]
	if n.Hours != 23 || n.Until.Sub(n.From) != 23*time.Hour {
		t.Errorf("window: got %v h", n.Hours)
	}
	c := n.Groups[0]
	ref := darkKWh(1000, start, 49.5641, 3.6199)
	if c.Counted != 1 || c.Missing != 2 || !near(c.UsedKWh, 10, 0.001) || !near(c.LitHours, 10, 0.001) ||
		!near(c.ReferenceKWh, ref, 0.001) || !near(c.SavedEUR, (ref-10)*0.15, 0.006) {
		t.Errorf("centre: got %+v, want used 10 kWh over 10 h, reference %.3f", c, ref)
	}
	set := sun.Compute(start, 49.5641, 3.6199, sun.Paris()).Sunset
	rise := sun.Compute(end, 49.5641, 3.6199, sun.Paris()).Sunrise
	if !near(c.DarkHours, rise.Sub(set).Hours(), 0.001) {
		t.Errorf("dark hours: got %v, want %v", c.DarkHours, rise.Sub(set).Hours())
	}
}

func TestSavingsBadRange(t *testing.T) {
	reg := loadRegistry(t, savingsRegistry)
	store := openStore(t)
	_, err := lighting.Savings(context.Background(), store, reg, savingsGroups(t), parisAt(2027, 1, 2, 0, 0), parisAt(2027, 1, 1, 0, 0), 0)
	if err == nil || !strings.Contains(err.Error(), "before from") {
		t.Errorf("to before from: got %v", err)
	}
	_, err = lighting.Savings(context.Background(), store, reg, savingsGroups(t), parisAt(2027, 1, 1, 0, 0), parisAt(2028, 1, 3, 0, 0), 0)
	if err == nil {
		t.Error("more than a year of nights: want an error")
	}
}

// newPlan builds and validates a plan with one all-night program and the given groups, decrees and
// categories.
func newPlan(t *testing.T, groups []lighting.Group, decrees []lighting.Decree, categories []lighting.SiteCategory) *lighting.Plan {
	t.Helper()
	p := &lighting.Plan{
		Programs: []lighting.ProgramDef{{Name: "nuit", Start: lighting.Event{Sun: "sunset"},
			End: lighting.Event{Sun: "sunrise"}, Level: 100}},
		Groups:     append([]lighting.Group{{Name: "centre", Program: "nuit", Default: true}}, groups...),
		Decrees:    decrees,
		Categories: categories,
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

const complianceRegistry = `
sites:
  - {id: voirie-ok, name: "Voirie à l'heure", kind: lighting_cabinet, commune: "02408"}
  - {id: voirie-tard, name: "Voirie en retard", kind: lighting_cabinet, commune: "02408"}
  - {id: patrimoine-ok, name: "Cathédrale", kind: lighting_cabinet, commune: "02408"}
  - {id: patrimoine-tard, name: "Remparts", kind: lighting_cabinet, commune: "02408"}
  - {id: batiment-activite, name: "Salle des fêtes", kind: lighting_cabinet, commune: "02408"}
  - {id: parking-sans, name: "Parking sans horaire", kind: lighting_cabinet, commune: "02408"}
  - {id: parking-gare, name: "Parking de la gare", kind: lighting_cabinet, commune: "02408"}
  - {id: voirie-sq, name: "Voirie Saint-Quentin", kind: lighting_cabinet, commune: "02691"}
devices:
  - {id: ctrl-voirie-ok, site: voirie-ok, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-voirie-tard, site: voirie-tard, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-patrimoine-ok, site: patrimoine-ok, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-patrimoine-tard, site: patrimoine-tard, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-batiment, site: batiment-activite, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-parking-sans, site: parking-sans, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-parking-gare, site: parking-gare, kind: lighting_controller, interval: 5m, max_power_w: 1100}
  - {id: ctrl-voirie-sq, site: voirie-sq, kind: lighting_controller, interval: 5m, max_power_w: 1100}
`

func TestCompliance(t *testing.T) {
	reg := loadRegistry(t, complianceRegistry)
	store := openStore(t)
	plan := newPlan(t, nil,
		[]lighting.Decree{{Name: "Laon", Communes: []string{"02408"}, From: "23:00", To: "05:00"}},
		[]lighting.SiteCategory{
			{Category: lighting.CategoryPatrimoine, Sites: []string{"patrimoine-ok", "patrimoine-tard"}},
			{Category: lighting.CategoryBatiment, Sites: []string{"batiment-activite"}, ActivityEnd: "00:30"},
			{Category: lighting.CategoryParking, Sites: []string{"parking-sans"}},
			{Category: lighting.CategoryParking, Sites: []string{"parking-gare"}, ActivityEnd: "19:00"},
		})
	start, end := parisAt(2027, 1, 15, 12, 0), parisAt(2027, 1, 16, 11, 55)
	evening := parisAt(2027, 1, 15, 17, 0)
	var rs []hv.Reading
	night := func(id string, level float64, off time.Time) {
		rs = append(rs, controllerReadings(reg, id, start, end, between(evening, off, level))...)
	}
	night("ctrl-voirie-ok", 100, parisAt(2027, 1, 15, 23, 0))
	night("ctrl-voirie-tard", 50, parisAt(2027, 1, 16, 1, 0))
	night("ctrl-patrimoine-ok", 80, parisAt(2027, 1, 16, 0, 30))
	night("ctrl-patrimoine-tard", 80, parisAt(2027, 1, 16, 2, 0))
	night("ctrl-batiment", 100, parisAt(2027, 1, 16, 1, 15)) // activity ends 00:30: off due at 01:30
	night("ctrl-parking-sans", 100, parisAt(2027, 1, 16, 6, 0))
	night("ctrl-voirie-sq", 100, parisAt(2027, 1, 16, 6, 0))
	// The car park's controller reports power only: 3 % of nominal after 21:00 is off.
	dev, site, _ := reg.Device("ctrl-parking-gare")
	for at := start; !at.After(end); at = at.Add(step) {
		w := 1000.0
		if !at.Before(parisAt(2027, 1, 15, 21, 0)) {
			w = 30
		}
		rs = append(rs, hv.Reading{Device: dev.ID, Metric: hv.PowerW, Value: w, Time: at.UnixMilli(),
			Site: site.ID, Commune: site.Commune, EPCI: site.EPCI})
	}
	write(t, store, rs)

	// Two nights: the second has no readings at all.
	rep, err := lighting.Compliance(context.Background(), store, reg, plan, parisAt(2027, 1, 15, 0, 0), parisAt(2027, 1, 16, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2027-01-15" || rep.To != "2027-01-16" {
		t.Errorf("range: got %s–%s", rep.From, rep.To)
	}
	if len(rep.Violations) != 2 {
		t.Fatalf("violations: got %+v", rep.Violations)
	}
	want := []struct {
		device, category, rule string
		first, last, from, to  time.Time
		minutes, max           float64
	}{
		{"ctrl-patrimoine-tard", lighting.CategoryPatrimoine, "arrêté du 27 décembre 2018 : extinction à 01:00",
			parisAt(2027, 1, 16, 1, 0), parisAt(2027, 1, 16, 1, 55), parisAt(2027, 1, 16, 1, 0), parisAt(2027, 1, 16, 7, 0), 60, 80},
		{"ctrl-voirie-tard", lighting.CategoryVoirie, "arrêté municipal 23:00–05:00",
			parisAt(2027, 1, 15, 23, 0), parisAt(2027, 1, 16, 0, 55), parisAt(2027, 1, 15, 23, 0), parisAt(2027, 1, 16, 5, 0), 120, 50},
	}
	for i, w := range want {
		v := rep.Violations[i]
		if v.Night != "2027-01-15" || v.Commune != "02408" || v.CommuneName != "Laon" || v.Device != w.device ||
			v.Category != w.category || v.Rule != w.rule || !v.First.Equal(w.first) || !v.Last.Equal(w.last) ||
			!v.WindowFrom.Equal(w.from) || !v.WindowTo.Equal(w.to) || v.MinutesLit != w.minutes ||
			v.MaxLevel != w.max || v.Measure != "level_pct" {
			t.Errorf("violation %d: got %+v", i, v)
		}
	}

	wantCommunes := []lighting.CommuneCompliance{
		{Commune: "02408", Name: "Laon", Cabinets: 7, NightsChecked: 1, NightsCompliant: 0, Violations: 2},
		{Commune: "02691", Name: "Saint-Quentin", Cabinets: 1},
	}
	if !slices.Equal(rep.Communes, wantCommunes) {
		t.Errorf("communes:\n got %+v\nwant %+v", rep.Communes, wantCommunes)
	}

	type un struct {
		device, reason string
		nights         int
	}
	var gotUn []un
	for _, u := range rep.Unchecked {
		gotUn = append(gotUn, un{u.Device, u.Reason, u.Nights})
	}
	noData := "aucune mesure pendant la plage d'extinction"
	wantUn := []un{
		{"ctrl-batiment", noData, 1},
		{"ctrl-parking-gare", noData, 1},
		{"ctrl-parking-sans", "parking sans heure de fin d'activité : non vérifiable", 2},
		{"ctrl-patrimoine-ok", noData, 1},
		{"ctrl-patrimoine-tard", noData, 1},
		{"ctrl-voirie-ok", noData, 1},
		{"ctrl-voirie-tard", noData, 1},
		{"ctrl-voirie-sq", "pas d'arrêté municipal d'extinction pour la commune", 2},
	}
	if !slices.Equal(gotUn, wantUn) {
		t.Errorf("unchecked:\n got %v\nwant %v", gotUn, wantUn)
	}

	// The report is served as is: times in local time, every key present.
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"violations":[`, `"first":"2027-01-16T01:00:00+01:00"`, `"minutes_lit":120`, `"nights_checked":1`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("json lacks %s: %s", key, js)
		}
	}

	var buf bytes.Buffer
	if err := lighting.WriteViolationsCSV(&buf, rep.Violations); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"nuit", "commune", "nom_commune", "armoire", "controleur", "categorie", "regle",
		"debut_plage", "fin_plage", "premiere_mesure", "derniere_mesure", "minutes_allumees", "niveau_max", "mesure"}
	wantRow := []string{"2027-01-15", "02408", "Laon", "voirie-tard", "ctrl-voirie-tard", "voirie",
		"arrêté municipal 23:00–05:00", "2027-01-15T23:00:00+01:00", "2027-01-16T05:00:00+01:00",
		"2027-01-15T23:00:00+01:00", "2027-01-16T00:55:00+01:00", "120", "50", "level_pct"}
	if len(recs) != 3 || !slices.Equal(recs[0], wantHeader) || !slices.Equal(recs[2], wantRow) {
		t.Errorf("csv:\n got %q\nwant %q then %q", recs, wantHeader, wantRow)
	}
}

func TestComplianceRules(t *testing.T) {
	reg := loadRegistry(t, complianceRegistry)
	store := openStore(t)
	// A controller lit all night: the window each rule checks shows in the violation.
	var rs []hv.Reading
	start := parisAt(2027, 7, 3, 12, 0)
	for _, id := range []string{"ctrl-voirie-ok", "ctrl-batiment", "ctrl-parking-gare"} {
		rs = append(rs, controllerReadings(reg, id, start, parisAt(2027, 7, 4, 11, 55),
			between(start, parisAt(2027, 7, 4, 12, 0), 100))...)
	}
	write(t, store, rs)
	tests := []struct {
		name       string
		decrees    []lighting.Decree
		categories []lighting.SiteCategory
		device     string
		rule       string
		from, to   time.Time
	}{
		{"decree across midnight", []lighting.Decree{{Name: "a", Communes: []string{"02408"}, From: "22:30", To: "06:00"}}, nil,
			"ctrl-voirie-ok", "arrêté municipal 22:30–06:00", parisAt(2027, 7, 3, 22, 30), parisAt(2027, 7, 4, 6, 0)},
		{"decree after midnight", []lighting.Decree{{Name: "b", Communes: []string{"02408"}, From: "00:30", To: "04:30"}}, nil,
			"ctrl-voirie-ok", "arrêté municipal 00:30–04:30", parisAt(2027, 7, 4, 0, 30), parisAt(2027, 7, 4, 4, 30)},
		{"building, activity ends early", nil, []lighting.SiteCategory{{Category: lighting.CategoryBatiment, Sites: []string{"batiment-activite"}, ActivityEnd: "22:00"}},
			"ctrl-batiment", "arrêté du 27 décembre 2018 : extinction à 01:00", parisAt(2027, 7, 4, 1, 0), parisAt(2027, 7, 4, 7, 0)},
		{"building, activity ends late", nil, []lighting.SiteCategory{{Category: lighting.CategoryBatiment, Sites: []string{"batiment-activite"}, ActivityEnd: "01:30"}},
			"ctrl-batiment", "arrêté du 27 décembre 2018 : extinction à 02:30, 1 h après la fin d'activité", parisAt(2027, 7, 4, 2, 30), parisAt(2027, 7, 4, 7, 0)},
		{"car park", nil, []lighting.SiteCategory{{Category: lighting.CategoryParking, Sites: []string{"parking-gare"}, ActivityEnd: "20:00"}},
			"ctrl-parking-gare", "arrêté du 27 décembre 2018 : extinction à 22:00, 2 h après la fin d'activité", parisAt(2027, 7, 3, 22, 0), parisAt(2027, 7, 4, 7, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := lighting.Compliance(context.Background(), store, reg, newPlan(t, nil, tt.decrees, tt.categories), start, start)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(rep.Violations, func(v lighting.Violation) bool { return v.Device == tt.device })
			if i < 0 {
				t.Fatalf("no violation for %s: %+v", tt.device, rep.Violations)
			}
			v := rep.Violations[i]
			minutes := tt.to.Sub(tt.from).Minutes()
			if v.Rule != tt.rule || !v.WindowFrom.Equal(tt.from) || !v.WindowTo.Equal(tt.to) || v.MinutesLit != minutes ||
				!v.First.Equal(tt.from) || !v.Last.Equal(tt.to.Add(-step)) || v.MaxLevel != 100 {
				t.Errorf("got %+v, want %q over %s–%s (%v min)", v, tt.rule, tt.from, tt.to, minutes)
			}
		})
	}
}
