package rules

import (
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
)

// On 15 January 2025 at Laon the sun rises about 08:40 and sets about 17:15 (Paris). ctrl-laon registers
// max_power_w 11000: nominal 10 kW.

func parisAt(h, m int) time.Time { return time.Date(2025, 1, 15, h, m, 0, 0, parisLoc()) }

func ctrlReading(m hv.Metric, at time.Time, v float64) hv.Reading {
	return regReading(testReg, "ctrl-laon", m, at, v)
}

func TestDayBurner(t *testing.T) {
	newRule := func(cmd CommandedFunc) *DayBurnerRule {
		r, err := NewDayBurner(RuleConfig{Name: "jour"}, DefaultDayBurnerConfig(), testRegistry(t), cmd)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("clean", func(t *testing.T) {
		r := newRule(nil)
		r.Observe([]hv.Reading{ctrlReading(hv.PowerW, parisAt(11, 50), 20), ctrlReading(hv.PowerW, parisAt(12, 0), 20)}) // standby
		if cs := evalRule(t, r, parisAt(12, 0), nil); len(cs) != 0 {
			t.Fatalf("standby in daylight: got %v", cs)
		}
		r.Observe([]hv.Reading{ctrlReading(hv.PowerW, parisAt(21, 0), 10000)})
		if cs := evalRule(t, r, parisAt(21, 0), nil); len(cs) != 0 {
			t.Fatalf("lit at night: got %v", cs)
		}
	})
	t.Run("within the margin of sunrise", func(t *testing.T) {
		r := newRule(nil)
		s := sun.Compute(parisAt(12, 0), regSite(t, "armoire-laon").Lat, regSite(t, "armoire-laon").Lon, parisLoc())
		at := s.Sunrise.Add(20 * time.Minute)
		r.Observe([]hv.Reading{ctrlReading(hv.PowerW, at, 10000)})
		if cs := evalRule(t, r, at, nil); len(cs) != 0 {
			t.Fatalf("20 min after sunrise: got %v", cs)
		}
	})
	t.Run("burning", func(t *testing.T) {
		r := newRule(nil)
		r.Observe([]hv.Reading{ctrlReading(hv.PowerW, parisAt(11, 50), 10000), ctrlReading(hv.LevelPct, parisAt(11, 50), 100), ctrlReading(hv.PowerW, parisAt(12, 0), 9800)})
		cs := evalRule(t, r, parisAt(12, 5), nil)
		if len(cs) != 1 {
			t.Fatalf("got %d conditions", len(cs))
		}
		wantLabels(t, cs[0], laonLabels("ctrl-laon", "armoire-laon", ""))
		want := Evidence{Metric: hv.PowerW, Device: "ctrl-laon", From: parisAt(11, 50).UTC(), To: parisAt(12, 0).UTC(), Value: 9800, Threshold: 500}
		if cs[0].Evidence != want {
			t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
		}
		if !strings.HasPrefix(cs[0].Summary, "Éclairage allumé en plein jour : 9\u202f800 W à 12:00, depuis 11:50 (soleil levé à 08:") {
			t.Errorf("summary: got %q", cs[0].Summary)
		}
		r.Observe([]hv.Reading{ctrlReading(hv.PowerW, parisAt(12, 10), 5)})
		if cs := evalRule(t, r, parisAt(12, 10), nil); len(cs) != 0 {
			t.Errorf("switched off: got %v", cs)
		}
	})
	t.Run("commanded on", func(t *testing.T) {
		r := newRule(func(string, time.Time) (float64, time.Time, bool) { return 100, parisAt(11, 0), true })
		r.Observe([]hv.Reading{ctrlReading(hv.PowerW, parisAt(11, 50), 10000), ctrlReading(hv.PowerW, parisAt(12, 0), 10000)})
		if cs := evalRule(t, r, parisAt(12, 0), nil); len(cs) != 0 {
			t.Fatalf("lights commanded on: got %v", cs)
		}
	})
}

func regSite(t testing.TB, id string) hv.Site {
	t.Helper()
	s, ok := testReg.Site(id)
	if !ok {
		t.Fatalf("no site %s", id)
	}
	return s
}

func TestLampFailure(t *testing.T) {
	newRule := func() *LampFailureRule {
		r, err := NewLampFailure(RuleConfig{Name: "lampes"}, DefaultLampFailureConfig(), testRegistry(t))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	report := func(r *LampFailureRule, at time.Time, level, power, flag float64) {
		r.Observe([]hv.Reading{ctrlReading(hv.LevelPct, at, level), ctrlReading(hv.PowerW, at, power), ctrlReading(hv.LampFailure, at, flag)})
	}
	t.Run("clean", func(t *testing.T) {
		r := newRule()
		report(r, parisAt(19, 0), 100, 9900, 0)
		report(r, parisAt(23, 30), 50, 5500, 0) // LED at 50 %: 55 % of nominal
		report(r, parisAt(23, 35), 5, 20, 0)    // below min_level: not judged
		if cs := evalRule(t, r, parisAt(23, 35), nil); len(cs) != 0 {
			t.Fatalf("got %v", cs)
		}
	})
	t.Run("low power", func(t *testing.T) {
		r := newRule()
		report(r, parisAt(19, 0), 100, 7000, 0)
		cs := evalRule(t, r, parisAt(19, 0), nil)
		if len(cs) != 1 {
			t.Fatalf("got %d conditions", len(cs))
		}
		wantLabels(t, cs[0], laonLabels("ctrl-laon", "armoire-laon", ""))
		want := Evidence{Metric: hv.PowerW, Device: "ctrl-laon", From: parisAt(19, 0).UTC(), To: parisAt(19, 0).UTC(), Value: 7000, Baseline: 10000, Threshold: 8000}
		if cs[0].Evidence != want {
			t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
		}
		if w := "Panne de lampes probable : 7\u202f000 W mesurés pour 10\u202f000 W attendus au niveau 100 % (−30 %)"; cs[0].Summary != w {
			t.Errorf("summary: got %q", cs[0].Summary)
		}
		// Through the day (level 0) the condition holds; a normal lit report clears it.
		report(r, parisAt(12, 0).AddDate(0, 0, 1), 0, 5, 0)
		if cs := evalRule(t, r, parisAt(12, 0).AddDate(0, 0, 1), nil); len(cs) != 1 {
			t.Fatalf("daytime: got %d conditions, want the night's still", len(cs))
		}
		report(r, parisAt(19, 0).AddDate(0, 0, 1), 100, 9500, 0)
		if cs := evalRule(t, r, parisAt(19, 0).AddDate(0, 0, 1), nil); len(cs) != 0 {
			t.Fatalf("repaired: got %v", cs)
		}
	})
	t.Run("controller alarm", func(t *testing.T) {
		r := newRule()
		report(r, parisAt(12, 0), 0, 5, 1)
		cs := evalRule(t, r, parisAt(12, 0), nil)
		if len(cs) != 1 || cs[0].Evidence.Metric != hv.LampFailure || cs[0].Summary != "Défaut lampe signalé par le contrôleur depuis le 15/01 à 12:00" {
			t.Fatalf("got %+v", cs)
		}
		if cs := evalRule(t, r, parisAt(13, 1), nil); len(cs) != 0 {
			t.Errorf("silent controller still judged: %v", cs)
		}
	})
}

func TestDimmingFailure(t *testing.T) {
	// The program commands 50 % from 22:00.
	cmd := func(_ string, at time.Time) (float64, time.Time, bool) {
		if at.Before(parisAt(22, 0)) {
			return 100, parisAt(18, 0), true
		}
		return 50, parisAt(22, 0), true
	}
	r, err := NewDimmingFailure(RuleConfig{Name: "gradation"}, DefaultDimmingFailureConfig(), testRegistry(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	r.Observe([]hv.Reading{ctrlReading(hv.LevelPct, parisAt(21, 55), 100), ctrlReading(hv.LevelPct, parisAt(22, 10), 100)}) // within the ack window
	if cs := evalRule(t, r, parisAt(22, 10), nil); len(cs) != 0 {
		t.Fatalf("within the ack window: got %v", cs)
	}
	r.Observe([]hv.Reading{ctrlReading(hv.LevelPct, parisAt(22, 15), 100), ctrlReading(hv.LevelPct, parisAt(22, 20), 100)})
	cs := evalRule(t, r, parisAt(22, 20), nil)
	if len(cs) != 1 {
		t.Fatalf("got %d conditions", len(cs))
	}
	wantLabels(t, cs[0], laonLabels("ctrl-laon", "armoire-laon", ""))
	want := Evidence{Metric: hv.LevelPct, Device: "ctrl-laon", From: parisAt(22, 15).UTC(), To: parisAt(22, 20).UTC(), Value: 100, Baseline: 50, Threshold: 5}
	if cs[0].Evidence != want {
		t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
	}
	if w := "Gradation non appliquée : niveau mesuré 100 % pour 50 % commandé, depuis 15/01 à 22:15"; cs[0].Summary != w {
		t.Errorf("summary: got %q", cs[0].Summary)
	}
	r.Observe([]hv.Reading{ctrlReading(hv.LevelPct, parisAt(22, 25), 52)})
	if cs := evalRule(t, r, parisAt(22, 25), nil); len(cs) != 0 {
		t.Fatalf("within tolerance: got %v", cs)
	}
	// Without the commanded levels the rule is inactive.
	r, _ = NewDimmingFailure(RuleConfig{Name: "gradation"}, DefaultDimmingFailureConfig(), testRegistry(t), nil)
	r.Observe([]hv.Reading{ctrlReading(hv.LevelPct, parisAt(22, 20), 100)})
	if cs := evalRule(t, r, parisAt(22, 20), nil); len(cs) != 0 {
		t.Fatalf("inactive: got %v", cs)
	}
}
