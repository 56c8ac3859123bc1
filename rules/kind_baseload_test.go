package rules

import (
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// officeHour is the hourly consumption of a building in use 08:00-18:00 on working days: occupied, else
// empty.
func officeHour(at time.Time, occupied, empty float64) float64 {
	p := at.In(parisLoc())
	if wd := p.Weekday(); wd != time.Saturday && wd != time.Sunday && p.Hour() >= 8 && p.Hour() < 18 {
		return occupied
	}
	return empty
}

func TestBaseloadNight(t *testing.T) {
	delta := hv.EnergyKWh.Delta()
	from, to := ruleNow.AddDate(0, 0, -35), ruleNow
	lastNight := func(at time.Time) bool { return !at.Before(parisAt(0, 0)) && at.Before(parisAt(5, 0)) }
	var rs []hv.Reading
	rs = append(rs, hourlyReadings("elec-mairie", delta, from, to, func(at time.Time) float64 { return officeHour(at, 10, 2) })...)
	rs = append(rs, hourlyReadings("elec-ecole", delta, from, to, func(at time.Time) float64 {
		if lastNight(at) {
			return 7 // a heater left on
		}
		return officeHour(at, 10, 2)
	})...)
	st := memQuerier(rs)
	r, err := NewBaseload(RuleConfig{Name: "talon"}, DefaultBaseloadConfig(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	cs := evalRule(t, r, ruleNow, st)
	if len(cs) != 1 {
		t.Fatalf("got %d conditions, want the school's: %+v", len(cs), cs)
	}
	wantLabels(t, cs[0], laonLabels("elec-ecole", "ecole-laon", hv.Electricity))
	want := Evidence{Metric: delta, Device: "elec-ecole", From: parisAt(0, 0).UTC(), To: parisAt(5, 0).UTC(), Value: 7, Baseline: 10, Threshold: 5}
	if cs[0].Evidence != want || cs[0].Value != 7 {
		t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
	}
	if w := "Consommation de nuit (00:00-05:00) de 7,00 kW, soit 70 % du niveau en occupation (10,00 kW ; seuil 50 %)"; cs[0].Summary != w {
		t.Errorf("summary: got %q", cs[0].Summary)
	}
	// During the next night the last complete night is still the same one.
	if cs := evalRule(t, r, parisAt(3, 0).AddDate(0, 0, 1), st); len(cs) != 1 {
		t.Errorf("at 03:00 the next night: got %d conditions, want 1", len(cs))
	}
}

func TestBaseloadWeekend(t *testing.T) {
	delta := hv.VolumeM3.Delta()
	from, to := ruleNow.AddDate(0, 0, -35), ruleNow
	c := DefaultBaseloadConfig()
	c.Mode, c.Metric, c.Ratio = BaseloadWeekend, delta, 0.85
	r, err := NewBaseload(RuleConfig{Name: "chauffage-we", Scope: Scope{Fluids: []hv.Fluid{hv.Gas}}}, c, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	// Clean: the weekend setback runs at 60 % of the occupied level.
	clean := memQuerier(hourlyReadings("gaz-mairie", delta, from, to, func(at time.Time) float64 { return officeHour(at, 5, 3) }))
	if cs := evalRule(t, r, ruleNow, clean); len(cs) != 0 {
		t.Fatalf("clean: got %+v", cs)
	}
	// The last weekend (11-12 January) heated as on a working day.
	sat := time.Date(2025, 1, 11, 0, 0, 0, 0, parisLoc())
	faulty := memQuerier(hourlyReadings("gaz-mairie", delta, from, to, func(at time.Time) float64 {
		if !at.Before(sat) && at.Before(sat.AddDate(0, 0, 2)) {
			return 5
		}
		return officeHour(at, 5, 3)
	}))
	cs := evalRule(t, r, ruleNow, faulty)
	if len(cs) != 1 {
		t.Fatalf("faulty: got %d conditions", len(cs))
	}
	wantLabels(t, cs[0], laonLabels("gaz-mairie", "mairie-laon", hv.Gas))
	want := Evidence{Metric: delta, Device: "gaz-mairie", From: sat.UTC(), To: sat.AddDate(0, 0, 2).UTC(), Value: 5, Baseline: 5, Threshold: 4.25}
	if cs[0].Evidence != want {
		t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
	}
	if w := "Consommation du week-end de 5,00 m³/h, soit 100 % du niveau en occupation (5,00 m³/h ; seuil 85 %)"; cs[0].Summary != w {
		t.Errorf("summary: got %q", cs[0].Summary)
	}
}

// TestBaseloadHolidays: two weeks of holidays in the reference do not lower it (upper quartile of the daily
// occupied means).
func TestBaseloadHolidays(t *testing.T) {
	delta := hv.EnergyKWh.Delta()
	from, to := ruleNow.AddDate(0, 0, -35), ruleNow
	holidays := func(at time.Time) bool { return at.After(parisAt(0, 0).AddDate(0, 0, -16)) && at.Before(parisAt(0, 0)) }
	st := memQuerier(hourlyReadings("elec-mairie", delta, from, to, func(at time.Time) float64 {
		if holidays(at) {
			return 3
		}
		return officeHour(at, 10, 3)
	}))
	r, err := NewBaseload(RuleConfig{Name: "talon"}, DefaultBaseloadConfig(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	if cs := evalRule(t, r, ruleNow, st); len(cs) != 0 {
		t.Fatalf("after the holidays: got %+v", cs)
	}
}
