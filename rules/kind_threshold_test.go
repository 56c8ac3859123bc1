package rules

import (
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

func newTestThreshold(t testing.TB, above, clear float64) *ThresholdRule {
	t.Helper()
	r, err := NewThreshold(RuleConfig{Name: "puissance", Scope: Scope{Fluids: []hv.Fluid{hv.Electricity}}},
		ThresholdConfig{Metric: hv.PowerW, Above: &above, Clear: &clear}, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestThreshold(t *testing.T) {
	reg := testRegistry(t)
	r := newTestThreshold(t, 30000, 25000)
	t.Run("clean", func(t *testing.T) {
		r.Observe([]hv.Reading{
			regReading(reg, "elec-mairie", hv.PowerW, ruleNow, 12000),
			regReading(reg, "elec-ecole", hv.PowerW, ruleNow, 29999),
			regReading(reg, "gaz-mairie", hv.PowerW, ruleNow, 99999),   // not in scope
			regReading(reg, "elec-mairie", hv.EnergyKWh, ruleNow, 1e6), // another metric
		})
		if cs := evalRule(t, r, ruleNow, nil); len(cs) != 0 {
			t.Fatalf("got %v, want nothing", cs)
		}
	})
	t.Run("above", func(t *testing.T) {
		at := ruleNow.Add(10 * time.Minute)
		r.Observe([]hv.Reading{regReading(reg, "elec-mairie", hv.PowerW, at, 31200)})
		cs := evalRule(t, r, at, nil)
		if len(cs) != 1 {
			t.Fatalf("got %d conditions, want 1", len(cs))
		}
		c := cs[0]
		wantLabels(t, c, laonLabels("elec-mairie", "mairie-laon", hv.Electricity))
		want := Evidence{Metric: hv.PowerW, Device: "elec-mairie", From: at.UTC(), To: at.UTC(), Value: 31200, Threshold: 30000}
		if c.Evidence != want || c.Value != 31200 {
			t.Errorf("evidence: got %+v value %v, want %+v", c.Evidence, c.Value, want)
		}
		if wantS := "Puissance 31\u202f200,0 W au-dessus du seuil 30\u202f000,0 W (depuis 15/01 12:10)"; c.Summary != wantS {
			t.Errorf("summary: got %q, want %q", c.Summary, wantS)
		}
	})
}

// TestThresholdHysteresis: raised above 30 kW, the condition holds down to 25 kW and clears below it; an
// old reading (a backlog) does not change the state.
func TestThresholdHysteresis(t *testing.T) {
	reg := testRegistry(t)
	r := newTestThreshold(t, 30000, 25000)
	steps := []struct {
		power  float64
		active bool
	}{
		{29000, false}, {30000, false}, {30500, true}, {27000, true}, {25000, true}, {26000, true},
		{24900, false}, {29000, false}, {31000, true},
	}
	var since time.Time
	for i, s := range steps {
		at := ruleNow.Add(time.Duration(i) * 10 * time.Minute)
		r.Observe([]hv.Reading{regReading(reg, "elec-mairie", hv.PowerW, at, s.power)})
		cs := evalRule(t, r, at, nil)
		if got := len(cs) == 1; got != s.active {
			t.Fatalf("step %d (%v W): active %v, want %v", i, s.power, got, s.active)
		}
		if s.active && (i == 2 || i == 8) {
			since = at
		}
		if s.active && !cs[0].Evidence.From.Equal(since) {
			t.Errorf("step %d: raised at %v, want %v", i, cs[0].Evidence.From, since)
		}
		if i == 4 {
			// A late reading from before the last one changes nothing.
			r.Observe([]hv.Reading{regReading(reg, "elec-mairie", hv.PowerW, at.Add(-5*time.Minute), 0)})
			if cs := evalRule(t, r, at, nil); len(cs) != 1 || cs[0].Value != 25000 {
				t.Fatalf("late reading changed the state: %v", cs)
			}
		}
	}
}

func TestThresholdBelowAndMaxAge(t *testing.T) {
	reg := testRegistry(t)
	below, clear := -7.0, -5.0
	r, err := NewThreshold(RuleConfig{Name: "froid", Scope: Scope{Fluids: []hv.Fluid{hv.Weather}}},
		ThresholdConfig{Metric: hv.TemperatureC, Below: &below, Clear: &clear, MaxAge: time.Hour}, reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Observe([]hv.Reading{regReading(reg, "meteo-laon", hv.TemperatureC, ruleNow, -8.5)})
	cs := evalRule(t, r, ruleNow, nil)
	if len(cs) != 1 || cs[0].Labels["device"] != "meteo-laon" || cs[0].Labels["fluid"] != "weather" {
		t.Fatalf("got %+v", cs)
	}
	if want := "Température -8,5 °C en dessous du seuil -7,0 °C (depuis 15/01 12:00)"; cs[0].Summary != want {
		t.Errorf("summary: got %q, want %q", cs[0].Summary, want)
	}
	if cs := evalRule(t, r, ruleNow.Add(61*time.Minute), nil); len(cs) != 0 {
		t.Errorf("a station silent past max_age still holds: %v", cs)
	}
}

// BenchmarkObserve measures what the streaming rules cost ingest per reading: a threshold and a counter
// rule over the fleet of the CA du Pays de Laon fed batches of 500 readings (power, index, delta, counter
// event) as ingest hands them over.
func BenchmarkObserve(b *testing.B) {
	tr, err := registry.DefaultTerritory()
	if err != nil {
		b.Fatal(err)
	}
	_, reg, err := fleet.Load(tr, fleet.Options{Seed: 1, EPCIs: []string{"200043495"}})
	if err != nil {
		b.Fatal(err)
	}
	above, clear := 30000.0, 25000.0
	th, err := NewThreshold(RuleConfig{Name: "puissance"}, ThresholdConfig{Metric: hv.PowerW, Above: &above, Clear: &clear}, reg)
	if err != nil {
		b.Fatal(err)
	}
	co, err := NewCounter(RuleConfig{Name: "index"}, DefaultCounterConfig(), reg)
	if err != nil {
		b.Fatal(err)
	}
	devices := reg.Devices()
	metrics := []hv.Metric{hv.PowerW, hv.EnergyKWh, hv.EnergyKWh.Delta(), hv.CounterEvent}
	var rs []hv.Reading
	for i := range 20000 {
		d := devices[i%len(devices)]
		m := metrics[i%len(metrics)]
		v := float64(i % 40000)
		if m == hv.CounterEvent {
			v = float64(i / 4 % 4) // none, reset, rollover, jump
		}
		rs = append(rs, regReading(reg, d.ID, m, ruleNow.Add(time.Duration(i)*time.Second), v))
	}
	const batch = 500
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		off := i * batch % len(rs)
		th.Observe(rs[off : off+batch])
		co.Observe(rs[off : off+batch])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/reading")
}
