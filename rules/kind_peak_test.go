package rules

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

func newTestPeak(t testing.TB, c PeakConfig) *PeakRule {
	t.Helper()
	r, err := NewPeak(RuleConfig{Name: "pointe"}, c, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// feed observes a power series of one device of the test registry, one reading every 10 minutes ending at
// ruleNow.
func feedPower(r Observer, device string, watts ...float64) {
	d, site, _ := testReg.Lookup(device)
	for i, w := range watts {
		at := ruleNow.Add(-time.Duration(len(watts)-1-i) * 10 * time.Minute)
		r.Observe([]hv.Reading{{Device: device, Metric: hv.PowerW, Value: w, Time: at.UnixMilli(), Site: site.ID,
			Commune: site.Commune, EPCI: site.EPCI, Fluid: d.Fluid}})
	}
}

func TestPeak(t *testing.T) {
	// elec-mairie: 36 kVA, limit 90 % = 32.4 kW.
	t.Run("clean", func(t *testing.T) {
		r := newTestPeak(t, DefaultPeakConfig())
		feedPower(r, "elec-mairie", 20000, 21000, 20500, 20000)
		if cs := evalRule(t, r, ruleNow, nil); len(cs) != 0 {
			t.Fatalf("got %v", cs)
		}
	})
	t.Run("one reading above is not enough", func(t *testing.T) {
		c := DefaultPeakConfig()
		c.Early = false
		r := newTestPeak(t, c)
		feedPower(r, "elec-mairie", 20000, 33000)
		if cs := evalRule(t, r, ruleNow, nil); len(cs) != 0 {
			t.Fatalf("got %v", cs)
		}
	})
	t.Run("above for 10 minutes", func(t *testing.T) {
		c := DefaultPeakConfig()
		c.Early = false
		r := newTestPeak(t, c)
		feedPower(r, "elec-mairie", 20000, 33000, 34000)
		cs := evalRule(t, r, ruleNow, nil)
		if len(cs) != 1 {
			t.Fatalf("got %d conditions", len(cs))
		}
		wantLabels(t, cs[0], laonLabels("elec-mairie", "mairie-laon", hv.Electricity))
		want := Evidence{Metric: hv.PowerW, Device: "elec-mairie", From: ruleNow.Add(-10 * time.Minute).UTC(), To: ruleNow.UTC(),
			Value: 34000, Baseline: 36000, Threshold: 32400}
		if cs[0].Evidence != want {
			t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
		}
		if w := "Dépassement de puissance : 34,0 kW depuis 11:50, 94 % de la puissance souscrite (36 kVA ; seuil 90 %)"; cs[0].Summary != w {
			t.Errorf("summary: got %q", cs[0].Summary)
		}
		if cs := evalRule(t, r, ruleNow.Add(31*time.Minute), nil); len(cs) != 0 {
			t.Errorf("stale device still judged: %v", cs)
		}
	})
	t.Run("early on the trend", func(t *testing.T) {
		r := newTestPeak(t, DefaultPeakConfig())
		feedPower(r, "elec-mairie", 24000, 27000, 30000, 32000) // +2.7 kW per 10 min: 32.4 kW passed in 10 min
		cs := evalRule(t, r, ruleNow, nil)
		if len(cs) != 1 || !strings.HasPrefix(cs[0].Summary, "Risque de dépassement : 32,0 kW en hausse") {
			t.Fatalf("got %+v", cs)
		}
		// Falling: no early warning.
		r = newTestPeak(t, DefaultPeakConfig())
		feedPower(r, "elec-mairie", 32000, 31000, 30000, 31500)
		if cs := evalRule(t, r, ruleNow, nil); len(cs) != 0 {
			t.Fatalf("flat trend: got %+v", cs)
		}
	})
	t.Run("aggregate per commune", func(t *testing.T) {
		c := DefaultPeakConfig()
		c.Early, c.Aggregate = false, "commune"
		r := newTestPeak(t, c)
		feedPower(r, "elec-mairie", 33000, 34000)
		feedPower(r, "elec-ecole", 44000, 45000)   // 48 kVA: limit 43.2 kW
		feedPower(r, "elec-gymnase", 33000, 35000) // Soissons: alone in its commune
		cs := evalRule(t, r, ruleNow, nil)
		if len(cs) != 2 {
			t.Fatalf("got %d conditions, want Laon and the gymnasium: %+v", len(cs), cs)
		}
		wantLabels(t, cs[0], map[string]string{"commune": "02408", "epci": "200043495"})
		if cs[0].Value != 79000 || cs[0].Evidence.Threshold != 32400+43200 {
			t.Errorf("aggregate: value %v threshold %v", cs[0].Value, cs[0].Evidence.Threshold)
		}
		if w := "Pointes simultanées sur 2 sites à Laon : 79,0 kW au total (seuils cumulés 75,6 kW)"; cs[0].Summary != w {
			t.Errorf("summary: got %q", cs[0].Summary)
		}
		if cs[1].Labels["device"] != "elec-gymnase" {
			t.Errorf("second: got %v", cs[1].Labels)
		}
	})
}

// TestObserversConcurrent feeds every streaming rule from several goroutines while others evaluate: run
// under -race, it checks Observe and Eval share their state safely.
func TestObserversConcurrent(t *testing.T) {
	reg := testRegistry(t)
	cmd := func(string, time.Time) (float64, time.Time, bool) { return 50, ruleNow.Add(-time.Hour), true }
	set, err := LoadRules([]byte(`
rules:
  - {name: seuil, kind: threshold, metric: power_w, above: 1000}
  - {name: index, kind: counter}
  - {name: pointe, kind: peak}
  - {name: jour, kind: day_burner}
  - {name: lampes, kind: lamp_failure}
  - {name: gradation, kind: dimming_failure}
`), "concurrent.yaml", reg, Deps{Commanded: cmd})
	if err != nil {
		t.Fatal(err)
	}
	obs := set.Observers()
	if len(obs) != 6 {
		t.Fatalf("observers: got %d, want 6", len(obs))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				at := ruleNow.Add(time.Duration(g*1000+i) * time.Minute)
				rs := []hv.Reading{
					regReading(reg, "elec-mairie", hv.PowerW, at, float64(i*200)),
					regReading(reg, "ctrl-laon", hv.PowerW, at, float64(i*50)),
					regReading(reg, "ctrl-laon", hv.LevelPct, at, 100),
					regReading(reg, "elec-ecole", hv.CounterEvent, at, float64(i%4)),
				}
				for _, o := range obs {
					o.Observe(rs)
				}
			}
		})
		wg.Go(func() {
			for i := range 50 {
				for _, r := range set.Rules {
					if _, err := r.Eval(context.Background(), ruleNow.Add(time.Duration(i)*time.Hour), nil); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
}
