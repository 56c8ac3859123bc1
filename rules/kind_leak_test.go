package rules

import (
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// waterDay is the hourly flow of a building's water meter at Paris hour h: busy by day, a trickle at night.
func waterDay(h int) float64 {
	if h >= 7 && h < 19 {
		return 0.3
	}
	return 0.005
}

// hourly makes a device's hourly delta readings over [from, to), each stamped at the start of its hour.
func hourlyReadings(device string, m hv.Metric, from, to time.Time, v func(at time.Time) float64) []hv.Reading {
	var rs []hv.Reading
	for at := from; at.Before(to); at = at.Add(time.Hour) {
		rs = append(rs, regReading(testReg, device, m, at, v(at)))
	}
	return rs
}

func TestLeak(t *testing.T) {
	delta := hv.VolumeM3.Delta()
	from, to := ruleNow.Add(-72*time.Hour), ruleNow.Add(time.Hour)
	clean := func(at time.Time) float64 { return waterDay(at.In(parisLoc()).Hour()) }
	var rs []hv.Reading
	rs = append(rs, hourlyReadings("eau-mairie", delta, from, to, clean)...)
	rs = append(rs, hourlyReadings("eau-ecole", delta, from, to, func(at time.Time) float64 { return clean(at) + 0.2 })...) // a running cistern
	st := tsdbWith(t, rs)

	r, err := NewLeak(RuleConfig{Name: "fuite"}, DefaultLeakConfig(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	cs := evalRule(t, r, ruleNow.Add(30*time.Minute), st)
	if len(cs) != 1 {
		t.Fatalf("got %d conditions, want the school's only: %+v", len(cs), cs)
	}
	wantLabels(t, cs[0], laonLabels("eau-ecole", "ecole-laon", hv.Water))
	// The school's 2 000 m² set its zero-flow level at 0.04 m³/h.
	want := Evidence{Metric: delta, Device: "eau-ecole", From: ruleNow.Add(-24 * time.Hour).UTC(), To: ruleNow.UTC(), Value: waterDay(3) + 0.2, Threshold: 0.04}
	if cs[0].Evidence != want || cs[0].Value != want.Value {
		t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
	}
	if w := "Fuite probable : le débit n'est pas descendu sous 0,205 m³/h en 1 j (seuil de débit nul 0,040 m³/h)"; cs[0].Summary != w {
		t.Errorf("summary: got %q", cs[0].Summary)
	}

	t.Run("night flow", func(t *testing.T) {
		c := DefaultLeakConfig()
		c.Window, c.NightFlowM3h = 0, 0.1
		r, err := NewLeak(RuleConfig{Name: "fuite-nuit"}, c, testRegistry(t))
		if err != nil {
			t.Fatal(err)
		}
		cs := evalRule(t, r, ruleNow, st)
		if len(cs) != 1 || cs[0].Labels["device"] != "eau-ecole" {
			t.Fatalf("got %+v", cs)
		}
		want := Evidence{Metric: delta, Device: "eau-ecole", From: parisAt(1, 0).UTC(), To: parisAt(5, 0).UTC(), Value: waterDay(3) + 0.2, Threshold: 0.1}
		if cs[0].Evidence != want {
			t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
		}
		if w := "Fuite probable : débit nocturne 0,205 m³/h (01:00-05:00, seuil 0,100 m³/h)"; cs[0].Summary != w {
			t.Errorf("summary: got %q", cs[0].Summary)
		}
	})
	t.Run("too little data", func(t *testing.T) {
		// Ten hours of a leaking meter are not a day without a zero-flow hour.
		st := memQuerier(hourlyReadings("eau-ecole", delta, ruleNow.Add(-10*time.Hour), ruleNow, func(time.Time) float64 { return 0.5 }))
		if cs := evalRule(t, r, ruleNow, st); len(cs) != 0 {
			t.Fatalf("got %v", cs)
		}
	})
}
