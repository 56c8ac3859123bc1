package rules

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// ruleNow is the simulated evaluation time of the rule tests, a Wednesday noon in Paris: no test reads the
// clock.
var ruleNow = time.Date(2025, 1, 15, 12, 0, 0, 0, parisLoc())

// testRegistryYAML is a small fleet over Laon (02408, CA du Pays de Laon 200043495) and Soissons (02722).
const testRegistryYAML = `
sites:
  - {id: mairie-laon, name: Mairie de Laon, kind: building, usage: mairie, commune: "02408", surface_m2: 1000, subscribed_kva: 36}
  - {id: ecole-laon, name: École de Laon, kind: building, usage: école, commune: "02408", surface_m2: 2000, subscribed_kva: 48}
  - {id: armoire-laon, name: Armoire A1 Laon, kind: lighting_cabinet, usage: éclairage public, commune: "02408", subscribed_kva: 12}
  - {id: station-laon, name: Station météo de Laon, kind: weather_station, commune: "02408"}
  - {id: gymnase-soissons, name: Gymnase de Soissons, kind: building, usage: gymnase, commune: "02722", surface_m2: 1500, subscribed_kva: 36}
devices:
  - {id: elec-mairie, site: mairie-laon, kind: meter, fluid: electricity, interval: 10m, max_power_w: 36000}
  - {id: gaz-mairie, site: mairie-laon, kind: meter, fluid: gas, interval: 1h}
  - {id: eau-mairie, site: mairie-laon, kind: meter, fluid: water, interval: 1h}
  - {id: elec-ecole, site: ecole-laon, kind: meter, fluid: electricity, interval: 10m, max_power_w: 48000}
  - {id: eau-ecole, site: ecole-laon, kind: meter, fluid: water, interval: 1h}
  - {id: ctrl-laon, site: armoire-laon, kind: lighting_controller, interval: 5m, max_power_w: 11000}
  - {id: meteo-laon, site: station-laon, kind: weather, interval: 10m}
  - {id: elec-gymnase, site: gymnase-soissons, kind: meter, fluid: electricity, interval: 10m, max_power_w: 36000}
`

// testReg is the test registry for helpers without a testing.TB.
var testReg = func() *registry.Registry {
	tr, err := registry.DefaultTerritory()
	if err != nil {
		panic(err)
	}
	reg, err := registry.LoadBytes(tr, "test registry", []byte(testRegistryYAML))
	if err != nil {
		panic(err)
	}
	return reg
}()

func testRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.LoadBytes(tr, "test registry", []byte(testRegistryYAML))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// reading is a reading of a registered device, labelled from the registry as ingest labels it.
func regReading(reg *registry.Registry, device string, m hv.Metric, at time.Time, v float64) hv.Reading {
	d, s, _ := reg.Lookup(device)
	return hv.Reading{Device: device, Metric: m, Value: v, Time: at.UnixMilli(), Site: s.ID, Commune: s.Commune, EPCI: s.EPCI, Fluid: d.Fluid}
}

// openStore is an embedded TSDB holding rs, written as history (hv.Backfill) so any span of the past goes in.
func tsdbWith(t testing.TB, rs []hv.Reading) *tsdb.Store {
	t.Helper()
	st, err := tsdb.Open(t.TempDir(), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if len(rs) == 0 {
		return st
	}
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b hv.Reading) int { return cmpInt(a.Time, b.Time) })
	// History goes in as tsdb blocks (hv.Backfill), as the simulator's does: Write would leave weeks of
	// data in the head, which tsdb then compacts into hundreds of 2-hour blocks.
	from, to := rs[0].Time, rs[len(rs)-1].Time+1
	err = hv.Backfill(context.Background(), st, from, to, func(_ context.Context, from, to int64, worker, _ int, emit func([]hv.Reading) error) error {
		if worker != 0 {
			return nil
		}
		i, _ := slices.BinarySearchFunc(rs, from, func(r hv.Reading, t int64) int { return cmpInt(r.Time, t) })
		j, _ := slices.BinarySearchFunc(rs, to, func(r hv.Reading, t int64) int { return cmpInt(r.Time, t) })
		if i == j {
			return nil
		}
		return emit(rs[i:j])
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// memQuerier answers queries from readings in memory with the store's own definition of windows and
// aggregates (hv.Aggregate, which every engine's conformance suite checks against): the fast stand-in for
// tests that are not about the store. tsdbWith is the real thing.
type memQuerier []hv.Reading

func (m memQuerier) Query(_ context.Context, q hv.Query) ([]hv.Series, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	byDevice := map[string]*hv.Series{}
	for _, r := range m {
		if !q.Matches(r) || r.Time < q.From || r.Time >= q.To {
			continue
		}
		s := byDevice[r.Device]
		if s == nil {
			s = &hv.Series{Device: r.Device, Metric: r.Metric, Unit: r.Metric.Unit(), Site: r.Site, Commune: r.Commune, EPCI: r.EPCI, Fluid: r.Fluid}
			byDevice[r.Device] = s
		}
		s.Points = append(s.Points, hv.Point{Time: r.Time, Value: r.Value})
	}
	out := make([]hv.Series, 0, len(byDevice))
	for _, s := range byDevice {
		slices.SortFunc(s.Points, func(a, b hv.Point) int { return cmpInt(a.Time, b.Time) })
		s.Points = hv.Aggregate(s.Points, q.Every, q.Agg)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b hv.Series) int { return strings.Compare(a.Device, b.Device) })
	return out, nil
}

// eval runs a rule and fails the test on error.
func evalRule(t testing.TB, r Rule, now time.Time, q Querier) []Condition {
	t.Helper()
	cs, err := r.Eval(context.Background(), now, q)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// wantLabels checks a condition's labels.
func wantLabels(t testing.TB, c Condition, want map[string]string) {
	t.Helper()
	if len(c.Labels) != len(want) {
		t.Errorf("labels: got %v, want %v", c.Labels, want)
		return
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("labels: got %v, want %v", c.Labels, want)
			return
		}
	}
}

// laon are the labels of a Laon device.
func laonLabels(device, site string, fluid hv.Fluid) map[string]string {
	l := map[string]string{"device": device, "site": site, "commune": "02408", "epci": "200043495"}
	if fluid != "" {
		l["fluid"] = string(fluid)
	}
	return l
}

func TestLoadRulesGood(t *testing.T) {
	reg := testRegistry(t)
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := LoadRules(data, "testdata/good.yaml", reg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range set.Rules {
		names = append(names, r.Name())
	}
	if want := []string{"puissance-mairie", "fuite", "muet", "gradation"}; !slices.Equal(names, want) {
		t.Fatalf("rules: got %v, want %v", names, want)
	}
	specs := set.Specs()
	if want := (RuleSpec{Name: "puissance-mairie", Severity: hv.SeverityCritical, For: 5 * time.Minute, KeepFiringFor: 15 * time.Minute}); specs[0] != want {
		t.Errorf("spec: got %+v, want %+v", specs[0], want)
	}
	if specs[1].Severity != hv.SeverityWarning {
		t.Errorf("default severity: got %q", specs[1].Severity)
	}
	th := set.Rules[0].(*ThresholdRule)
	if !slices.Equal(th.Devices(), []string{"elec-mairie"}) || th.raise != 30000 || th.clear != 25000 {
		t.Errorf("threshold: devices %v raise %v clear %v", th.Devices(), th.raise, th.clear)
	}
	// The leak rule keeps the water meters of its scope and leaves out the excluded school.
	if got := set.Rules[1].(*LeakRule).Devices(); !slices.Equal(got, []string{"eau-mairie"}) {
		t.Errorf("leak devices: got %v", got)
	}
	if len(set.Observers()) != 2 {
		t.Errorf("observers: got %d, want 2 (threshold, dimming_failure)", len(set.Observers()))
	}
	// Without the live state and the commanded levels, silence and dimming_failure are loaded but inactive.
	if len(set.Inactive) != 2 || set.Inactive["muet"] == "" || set.Inactive["gradation"] == "" {
		t.Errorf("inactive: got %v", set.Inactive)
	}
	set, err = LoadRules(data, "testdata/good.yaml", reg, Deps{LastSeen: func(string) int64 { return 0 },
		Commanded: func(string, time.Time) (float64, time.Time, bool) { return 0, time.Time{}, false }})
	if err != nil || len(set.Inactive) != 0 {
		t.Errorf("with deps: inactive %v, err %v", set.Inactive, err)
	}
}

// TestLoadRulesBad checks each testdata/*.bad.yaml fails with exactly the expected text, Prometheus style:
// the file, the rule, the line and the reason.
func TestLoadRulesBad(t *testing.T) {
	tests := []struct {
		file string
		err  string
	}{
		{"unknown-key", `rules[0] (name "seuil"): line 6: unknown key "abov" for kind threshold (its keys: above, below, clear, max_age, metric)`},
		{"bad-kind", `rules[1] (name "b"): line 6: kind "tresholds" is not one of baseload, counter, day_burner, dimming_failure, lamp_failure, leak, overconsumption, peak, silence, threshold`},
		{"bad-duration", "rules[0] (name \"lent\"): line 4: cannot unmarshal !!str `10 minutes` into time.Duration"},
		{"missing-metric", `rules[0] (name "sans-metrique"): line 2: metric is required`},
		{"bad-scope", strings.Join([]string{
			`rules[0] (name "portee"): line 7: fluid "fioul" is not one of electricity, gas, water, heat, weather`,
			`rules[0] (name "portee"): line 9: commune "02999" is not an INSEE code of the territory`,
			`rules[0] (name "portee"): line 12: device "nope" is not in the registry`,
		}, "\ntestdata/bad-scope.bad.yaml: ")},
		{"unknown-scope-key", `rules[0] (name "p"): line 6: unknown key "scope.commune"`},
		{"duplicate-name", `rules[1] (name "a"): line 6: duplicate rule name, first defined at testdata/duplicate-name.bad.yaml: line 2`},
		{"bad-clock", `rules[0] (name "nuit"): line 4: clock range "25:00-05:00": want HH:MM-HH:MM, two different times of day`},
		{"bad-values", strings.Join([]string{
			`rules[0] (name "surconso"): line 4: window "month" is not one of hour, day, week`,
			`rules[0] (name "surconso"): line 5: baseline "mean" is not one of median, last_year, degree_days`,
			`rules[0] (name "surconso"): line 3: severity "urgent" is not one of critical, warning, info`,
		}, "\ntestdata/bad-values.bad.yaml: ")},
		{"bad-template", `rules[0] (name "t"): line 5: t:1: function "nope" not defined`},
		{"not-a-list", `rules: line 1: must be a list`},
		{"top-key", `line 3: unknown key "regles" (want rules)`},
		{"hysteresis", `rules[0] (name "h"): line 6: clear 35 must be at or below above (30): it is where the condition ends`},
		{"kind-missing", `rules[0] (name "sans-type"): line 2: kind is required (one of baseload, counter, day_burner, dimming_failure, lamp_failure, leak, overconsumption, peak, silence, threshold)`},
	}
	reg := testRegistry(t)
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := "testdata/" + tt.file + ".bad.yaml"
			seen[path] = true
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			set, err := LoadRules(data, path, reg, Deps{})
			if err == nil {
				t.Fatalf("loaded %d rules, want error %q", len(set.Rules), tt.err)
			}
			if want := path + ": " + tt.err; err.Error() != want {
				t.Fatalf("error:\n got %s\nwant %s", err, want)
			}
			if !errors.Is(err, hv.ErrInvalid) {
				t.Error("error does not match hv.ErrInvalid")
			}
		})
	}
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	for _, f := range files {
		if !seen[f] {
			t.Errorf("%s has no case in TestLoadRulesBad", f)
		}
	}
}

// TestDefaultRules loads the shipped rule set against the demo registry and a generated Aisne fleet: it must
// stay valid whatever the registry holds, and every kind appears at least once.
func TestDefaultRules(t *testing.T) {
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	demo, err := registry.LoadBytes(tr, "configs/registry.yaml", configs.DemoRegistry)
	if err != nil {
		t.Fatal(err)
	}
	for name, reg := range map[string]*registry.Registry{"demo": demo, "test": testRegistry(t)} {
		set, err := LoadRulesFS(configs.Rules(), reg, Deps{})
		if err != nil {
			t.Fatalf("%s registry: %v", name, err)
		}
		got := map[string]bool{}
		for _, r := range set.Rules {
			got[r.(interface{ Kind() string }).Kind()] = true
		}
		for _, k := range Kinds() {
			if !got[k] {
				t.Errorf("%s registry: no default rule of kind %s", name, k)
			}
		}
	}
}

func TestLoadRulesFSDuplicateAcrossFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte("rules:\n  - {name: x, kind: counter}\n")},
		"b.yaml": {Data: []byte("rules:\n  - {name: x, kind: counter}\n")},
		"c.txt":  {Data: []byte("not read")},
	}
	_, err := LoadRulesFS(fsys, testRegistry(t), Deps{})
	if want := `b.yaml: rules[0] (name "x"): line 2: duplicate rule name, first defined at a.yaml: line 2`; err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
}

func TestSummaryTemplate(t *testing.T) {
	reg := testRegistry(t)
	above := 1000.0
	r, err := NewThreshold(RuleConfig{Name: "t", Summary: "{{.SiteName}} ({{.CommuneName}}) : {{fr .Value 1}} W > {{fr .Threshold 0}} W à {{hm .To}}",
		Scope: Scope{Devices: []string{"elec-mairie"}}}, ThresholdConfig{Metric: hv.PowerW, Above: &above}, reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Observe([]hv.Reading{regReading(reg, "elec-mairie", hv.PowerW, ruleNow, 12345.6)})
	cs := evalRule(t, r, ruleNow, nil)
	if len(cs) != 1 {
		t.Fatalf("conditions: got %d", len(cs))
	}
	if want := "Mairie de Laon (Laon) : 12\u202f345,6 W > 1\u202f000 W à 12:00"; cs[0].Summary != want {
		t.Errorf("summary: got %q, want %q", cs[0].Summary, want)
	}
}

func TestFrNum(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		dec  int
		want string
	}{
		{0.42, 2, "0,42"}, {1234.5, 1, "1\u202f234,5"}, {-1234567, 0, "-1\u202f234\u202f567"}, {999, 0, "999"},
	} {
		if got := frNum(tt.v, tt.dec); got != tt.want {
			t.Errorf("frNum(%v, %d): got %q, want %q", tt.v, tt.dec, got, tt.want)
		}
	}
}

func TestWindows(t *testing.T) {
	// Sunday 30 March 2025 is a 23-hour day in Paris (DST starts at 02:00).
	now := time.Date(2025, 3, 31, 9, 30, 0, 0, parisLoc())
	tests := []struct {
		w        Window
		from, to time.Time
	}{
		{WindowHour, time.Date(2025, 3, 31, 8, 0, 0, 0, parisLoc()), time.Date(2025, 3, 31, 9, 0, 0, 0, parisLoc())},
		{WindowDay, time.Date(2025, 3, 30, 0, 0, 0, 0, parisLoc()), time.Date(2025, 3, 31, 0, 0, 0, 0, parisLoc())},
		{WindowWeek, time.Date(2025, 3, 24, 0, 0, 0, 0, parisLoc()), time.Date(2025, 3, 31, 0, 0, 0, 0, parisLoc())},
	}
	for _, tt := range tests {
		from, to := tt.w.lastComplete(now)
		if !from.Equal(tt.from) || !to.Equal(tt.to) {
			t.Errorf("%s: got [%v, %v), want [%v, %v)", tt.w, from, to, tt.from, tt.to)
		}
	}
	if from, to := WindowDay.lastComplete(now); to.Sub(from) != 23*time.Hour {
		t.Errorf("DST day lasts %v", to.Sub(from))
	}
	night := ClockRange{0, 300}
	from, to := night.lastOccurrence(time.Date(2025, 1, 15, 3, 0, 0, 0, parisLoc()))
	if !from.Equal(time.Date(2025, 1, 14, 0, 0, 0, 0, parisLoc())) || !to.Equal(time.Date(2025, 1, 14, 5, 0, 0, 0, parisLoc())) {
		t.Errorf("night during the night: got [%v, %v), want the previous one", from, to)
	}
	wrap := ClockRange{22 * 60, 6 * 60}
	from, to = wrap.lastOccurrence(time.Date(2025, 1, 15, 12, 0, 0, 0, parisLoc()))
	if !from.Equal(time.Date(2025, 1, 14, 22, 0, 0, 0, parisLoc())) || !to.Equal(time.Date(2025, 1, 15, 6, 0, 0, 0, parisLoc())) {
		t.Errorf("wrapping night: got [%v, %v)", from, to)
	}
	if !wrap.Contains(time.Date(2025, 1, 15, 23, 0, 0, 0, parisLoc())) || wrap.Contains(time.Date(2025, 1, 15, 12, 0, 0, 0, parisLoc())) {
		t.Error("wrapping range Contains")
	}
}

// TestDefaultRulesOnSimulatedFleet runs the default window rules on 13 months of the simulated fleet of
// Guise and Hirson (hourly history, simulators.History, in the embedded TSDB) into which four faults are
// written with the signatures simulators/faults.go gives them: a leak, a night overconsumption, heating left
// on over a weekend, a day of electricity far above the usual. Each must be found by its rule, on its
// device, and nothing else: the rest of the fleet is clean, and so is the whole year before.
func TestDefaultRulesOnSimulatedFleet(t *testing.T) {
	testenv.Slow(t, "13 months of a simulated fleet: a few seconds")
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	f, reg, err := fleet.Load(tr, fleet.Options{Seed: 1, Communes: []string{"02361", "02381"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 22, 12, 0, 0, 0, parisLoc()) // a Wednesday
	from := now.AddDate(-1, -1, 0)
	tuesday := time.Date(2025, 1, 21, 0, 0, 0, 0, parisLoc())
	saturday := time.Date(2025, 1, 18, 0, 0, 0, 0, parisLoc())

	// The devices the faults go to.
	pick := func(fluid hv.Fluid, usage, commune string) hv.Device {
		t.Helper()
		for _, d := range reg.Devices() {
			if s, _ := reg.Site(d.Site); d.Kind == hv.DeviceMeter && d.Fluid == fluid && s.Usage == usage && s.Commune == commune {
				return d
			}
		}
		t.Fatalf("no %s meter of a %s in %s", fluid, usage, commune)
		return hv.Device{}
	}
	leak := pick(hv.Water, "école", "02381")
	night := pick(hv.Electricity, "mairie", "02361")
	day := pick(hv.Electricity, "mairie", "02381")
	weekend := pick(hv.Gas, "école", "02361")

	// Night overconsumption: 30 % of the meter's clean mean power 06:00-22:00 the day before (the fault's
	// default), from 22:00 to 06:00.
	var dayMean float64
	{
		h := simulators.NewRunner(f, 1, from).History(nil)
		var sum float64
		var n int
		err := h.Fill(context.Background(), tuesday.Add(5*time.Hour).UnixMilli(), tuesday.Add(22*time.Hour+1).UnixMilli(), 0, 1, func(rs []hv.Reading) error {
			for _, r := range rs {
				if r.Device == night.ID && r.Metric == hv.EnergyKWh.Delta() && r.Time > tuesday.Add(6*time.Hour).UnixMilli() {
					sum += r.Value
					n++
				}
			}
			return nil
		})
		if err != nil || n < 14 {
			t.Fatalf("the day's mean: %d hours, %v", n, err)
		}
		dayMean = sum / float64(n)
	}
	// Heating left on over the weekend: the gas a working day's busiest hour burns, at the weekend's weather
	// (FaultHeatingWeekend; the simulator seeds a building with the FNV-1a hash of its meter's id).
	weather := model.NewWeather(1)
	site, _ := reg.Site(weekend.Site)
	hash := fnv.New64a()
	hash.Write([]byte(weekend.ID))
	building := model.Building{Usage: site.Usage, SurfaceM2: site.SurfaceM2, Heating: model.HeatingGas, Seed: hash.Sum64()}
	friday := time.Date(2025, 1, 17, 10, 30, 0, 0, parisLoc())

	faulty := func(r hv.Reading) hv.Reading {
		at := time.UnixMilli(r.Time)
		switch {
		case r.Device == leak.ID && r.Metric == hv.VolumeM3.Delta() && !at.Before(tuesday):
			r.Value += 0.2
		case r.Device == night.ID && r.Metric == hv.EnergyKWh.Delta() && at.After(tuesday.Add(22*time.Hour)) && !at.After(tuesday.Add(30*time.Hour)):
			r.Value += 0.3 * dayMean
		case r.Device == day.ID && r.Metric == hv.EnergyKWh.Delta() && !at.Before(tuesday) && at.Before(tuesday.AddDate(0, 0, 1)):
			r.Value *= 1.8
		case r.Device == weekend.ID && r.Metric == hv.VolumeM3.Delta() && !at.Before(saturday) && at.Before(saturday.AddDate(0, 0, 2)):
			r.Value = math.Max(r.Value, building.SampleOutdoor(friday, weather.Outdoor(at)).GasM3h)
		}
		return r
	}
	h := simulators.NewRunner(f, 1, from).History(nil)
	st, err := tsdb.Open(t.TempDir(), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The lighting controllers' history is left out: no default window rule reads it, and it is half the
	// readings.
	err = hv.Backfill(context.Background(), st, from.UnixMilli(), now.UnixMilli(), func(ctx context.Context, from, to int64, w, n int, emit func([]hv.Reading) error) error {
		return h.Fill(ctx, from, to, w, n, func(rs []hv.Reading) error {
			out := rs[:0]
			for _, r := range rs {
				if d, _, _ := reg.Lookup(r.Device); d.Kind != hv.DeviceLightingController {
					out = append(out, faulty(r))
				}
			}
			if len(out) == 0 {
				return nil
			}
			return emit(out)
		})
	})
	if err != nil {
		t.Fatal(err)
	}

	set, err := LoadRulesFS(configs.Rules(), reg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // rule → device
		"fuite-eau":                        leak.ID,
		"talon-nuit-electricite":           night.ID,
		"surconsommation-electricite-jour": day.ID,
		"chauffage-week-end":               weekend.ID,
	}
	found := map[string]bool{}
	for _, r := range set.Rules {
		if _, streaming := r.(Observer); streaming {
			continue
		}
		cs, err := r.Eval(context.Background(), now, st)
		if err != nil {
			t.Fatalf("%s: %v", r.Name(), err)
		}
		for _, c := range cs {
			if want[r.Name()] == c.Labels["device"] && !found[r.Name()] {
				found[r.Name()] = true
				t.Logf("%s: %s: %s", r.Name(), c.Labels["device"], c.Summary)
				continue
			}
			t.Errorf("%s: unexpected condition on %v: %s", r.Name(), c.Labels, c.Summary)
		}
	}
	for rule, device := range want {
		if !found[rule] {
			t.Errorf("%s did not find the fault on %s", rule, device)
		}
	}
	// Before the faults the fleet is clean through the seasons, the school holidays and the DST changes:
	// every window rule, every fifth day of the year (every weekday in turn), finds nothing.
	evals := 0
	for at := from.AddDate(0, 0, 7); at.Before(now.AddDate(0, 0, -8)); at = at.AddDate(0, 0, 5) {
		for _, r := range set.Rules {
			if _, streaming := r.(Observer); streaming {
				continue
			}
			cs, err := r.Eval(context.Background(), at, st)
			if err != nil {
				t.Fatalf("%s: %v", r.Name(), err)
			}
			evals++
			for _, c := range cs {
				t.Errorf("%s on %s, clean data: %v: %s", r.Name(), at.Format(time.DateOnly), c.Labels, c.Summary)
			}
		}
	}
	t.Logf("%d clean evaluations", evals)
}

// TestLoadRulesAnchors: rules share settings through YAML anchors and merge keys; the keys merged in are
// checked like the others.
func TestLoadRulesAnchors(t *testing.T) {
	good := `
common: &laon
  communes: ["02408"]
rules:
  - &eau {name: fuite, kind: leak, severity: critical, scope: *laon}
  - <<: *eau
    name: fuite-nuit
    night_flow_m3h: 0.1
`
	// An unknown top-level key is an error: anchors live under rules, or in a key the file does not have.
	if _, err := LoadRules([]byte(good), "anchors.yaml", testRegistry(t), Deps{}); err == nil || !strings.Contains(err.Error(), `unknown key "common"`) {
		t.Fatalf("got %v", err)
	}
	good = `
rules:
  - &eau {name: fuite, kind: leak, severity: critical, scope: &laon {communes: ["02408"]}}
  - <<: *eau
    name: fuite-nuit
    night_flow_m3h: 0.1
  - {name: compteurs, kind: counter, scope: *laon}
`
	set, err := LoadRules([]byte(good), "anchors.yaml", testRegistry(t), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 3 || set.Specs()[1] != (RuleSpec{Name: "fuite-nuit", Severity: hv.SeverityCritical}) {
		t.Fatalf("got %+v", set.Specs())
	}
	if got := set.Rules[1].(*LeakRule).cfg.NightFlowM3h; got != 0.1 {
		t.Errorf("merged rule: night_flow_m3h %v", got)
	}
	bad := `
rules:
  - &c {name: a, kind: counter, hould: 2h}
  - <<: *c
    name: b
`
	_, err = LoadRules([]byte(bad), "anchors.yaml", testRegistry(t), Deps{})
	if err == nil || !strings.Contains(err.Error(), `rules[1] (name "b"): line 3: unknown key "hould"`) {
		t.Fatalf("got %v", err)
	}
}
