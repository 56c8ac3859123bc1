package rules

import (
	"math"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// The last complete day at ruleNow (Wednesday 15 January 2025, noon) is Tuesday 14 January; the same
// weekday of the four weeks before: 7 January, 31, 24 and 17 December.
var (
	tuesday   = time.Date(2025, 1, 14, 0, 0, 0, 0, parisLoc())
	tuesdays  = []time.Time{tuesday.AddDate(0, 0, -7), tuesday.AddDate(0, 0, -14), tuesday.AddDate(0, 0, -21), tuesday.AddDate(0, 0, -28)}
	perHourOn = func(day time.Time, kwh float64) func(time.Time) (float64, bool) {
		return func(at time.Time) (float64, bool) {
			if !at.Before(day) && at.Before(day.AddDate(0, 0, 1)) {
				return kwh / 24, true
			}
			return 0, false
		}
	}
)

// daily makes hourly deltas of a device over [from, to) where each day's total is given by days (the first
// that knows the hour), other days totalling other.
func daily(device string, from, to time.Time, other float64, days ...func(time.Time) (float64, bool)) []hv.Reading {
	return hourlyReadings(device, hv.EnergyKWh.Delta(), from, to, func(at time.Time) float64 {
		for _, d := range days {
			if v, ok := d(at); ok {
				return v
			}
		}
		return other / 24
	})
}

func TestOverconsumptionMedian(t *testing.T) {
	from, to := tuesday.AddDate(0, 0, -35), ruleNow
	var rs []hv.Reading
	// The town hall: 96, 120, 72, 144 kWh the four previous Tuesdays (median 108), 168 kWh this one (+56 %);
	// 240 kWh every other day, which a median over the wrong days would pick up.
	rs = append(rs, daily("elec-mairie", from, to, 240, perHourOn(tuesday, 168), perHourOn(tuesdays[0], 96),
		perHourOn(tuesdays[1], 120), perHourOn(tuesdays[2], 72), perHourOn(tuesdays[3], 144))...)
	// The school: 120 kWh this Tuesday against the same median (+11 %): clean.
	rs = append(rs, daily("elec-ecole", from, to, 240, perHourOn(tuesday, 120), perHourOn(tuesdays[0], 96),
		perHourOn(tuesdays[1], 120), perHourOn(tuesdays[2], 72), perHourOn(tuesdays[3], 144))...)
	st := tsdbWith(t, rs)

	r, err := NewOverconsumption(RuleConfig{Name: "surconso", Scope: Scope{Fluids: []hv.Fluid{hv.Electricity}}}, DefaultOverconsumptionConfig(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	cs := evalRule(t, r, ruleNow, st)
	if len(cs) != 1 {
		t.Fatalf("got %d conditions, want the town hall's: %+v", len(cs), cs)
	}
	c := cs[0]
	wantLabels(t, c, laonLabels("elec-mairie", "mairie-laon", hv.Electricity))
	if ev := c.Evidence; ev.Metric != hv.EnergyKWh.Delta() || ev.Device != "elec-mairie" || !ev.From.Equal(tuesday) ||
		!ev.To.Equal(tuesday.AddDate(0, 0, 1)) || math.Abs(ev.Value-168) > 1e-9 || math.Abs(ev.Baseline-108) > 1e-9 ||
		math.Abs(ev.Threshold-108*1.3) > 1e-9 {
		t.Errorf("evidence: got %+v, want 168 kWh on 14/01 against a median of 108", ev)
	}
	if w := "Surconsommation le 14/01 : 168,0 kWh, soit +56 % par rapport à la médiane des 4 mêmes périodes précédentes (108,0 kWh ; seuil +30 %)"; c.Summary != w {
		t.Errorf("summary: got %q", c.Summary)
	}
	// Every evaluation within Wednesday judges Tuesday.
	if cs := evalRule(t, r, time.Date(2025, 1, 15, 23, 59, 0, 0, parisLoc()), st); len(cs) != 1 {
		t.Errorf("late on Wednesday: got %d conditions", len(cs))
	}

	t.Run("min_excess", func(t *testing.T) {
		c := DefaultOverconsumptionConfig()
		c.MinExcess = 100 // 60 kWh over the median is not enough
		r, _ := NewOverconsumption(RuleConfig{Name: "surconso"}, c, testRegistry(t))
		if cs := evalRule(t, r, ruleNow, st); len(cs) != 0 {
			t.Fatalf("got %+v", cs)
		}
	})
	t.Run("hour window", func(t *testing.T) {
		c := DefaultOverconsumptionConfig()
		c.Window = WindowHour
		r, _ := NewOverconsumption(RuleConfig{Name: "surconso-h"}, c, testRegistry(t))
		// 11:00-12:00 on Wednesday: 10 kWh every hour of the past weeks, no excess.
		if cs := evalRule(t, r, ruleNow, st); len(cs) != 0 {
			t.Fatalf("got %+v", cs)
		}
	})
	t.Run("not enough weeks", func(t *testing.T) {
		st := memQuerier(daily("elec-mairie", tuesday.AddDate(0, 0, -7), to, 240, perHourOn(tuesday, 168)))
		if cs := evalRule(t, r, ruleNow, st); len(cs) != 0 {
			t.Fatalf("one previous week only: got %+v", cs)
		}
	})
}

func TestOverconsumptionLastYear(t *testing.T) {
	lastYear := tuesday.AddDate(0, 0, -364) // Tuesday 16 January 2024
	var rs []hv.Reading
	rs = append(rs, daily("elec-gymnase", lastYear.AddDate(0, 0, -1), lastYear.AddDate(0, 0, 2), 500, perHourOn(lastYear, 96))...)
	rs = append(rs, daily("elec-gymnase", tuesday.AddDate(0, 0, -1), ruleNow, 500, perHourOn(tuesday, 144))...)
	st := memQuerier(rs)
	c := DefaultOverconsumptionConfig()
	c.Baseline = BaselineLastYear
	r, err := NewOverconsumption(RuleConfig{Name: "annuel"}, c, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	cs := evalRule(t, r, ruleNow, st)
	if len(cs) != 1 || cs[0].Labels["device"] != "elec-gymnase" || math.Abs(cs[0].Evidence.Baseline-96) > 1e-9 ||
		!strings.Contains(cs[0].Summary, "+50 % par rapport à la même période l'an dernier (96,0 kWh") {
		t.Fatalf("got %+v", cs)
	}
}

// djuWeather is a synthetic winter-to-winter climate: a daily mean following the seasons plus a diurnal
// swing, hourly.
func djuWeather(at time.Time) float64 {
	days := float64(at.Unix()) / 86400
	return 10 - 8*math.Cos(2*math.Pi*(days-20)/365.25) + 4*math.Sin(2*math.Pi*(days+0.3)) + 3*math.Sin(2*math.Pi*days/9)
}

func TestOverconsumptionDegreeDays(t *testing.T) {
	// The week judged at ruleNow: Monday 6 to Monday 13 January.
	weekFrom, weekTo := time.Date(2025, 1, 6, 0, 0, 0, 0, parisLoc()), time.Date(2025, 1, 13, 0, 0, 0, 0, parisLoc())
	from := weekFrom.AddDate(-1, 0, -3)
	temps := hourlyReadings("meteo-laon", hv.TemperatureC, from, ruleNow, djuWeather)
	dd := DegreeDays(pointsOf(temps), DefaultDJUBase, nil)
	djuOf := map[int64]float64{}
	for _, d := range dd {
		djuOf[d.Day.UnixMilli()] = d.Value
	}
	// The gas meter follows E = 20 + 3·DJU m³ a day, spread over the hours of its Paris day; factor scales
	// the judged week.
	gas := func(factor float64) []hv.Reading {
		return hourlyReadings("gaz-mairie", hv.VolumeM3.Delta(), from, ruleNow, func(at time.Time) float64 {
			y, m, d := at.In(parisLoc()).Date()
			day := time.Date(y, m, d, 0, 0, 0, 0, parisLoc())
			v := (20 + 3*djuOf[day.UnixMilli()]) / 24
			if !at.Before(weekFrom) && at.Before(weekTo) {
				v *= factor
			}
			return v
		})
	}
	c := DefaultOverconsumptionConfig()
	c.Metric, c.Window, c.Baseline = hv.VolumeM3.Delta(), WindowWeek, BaselineDegreeDays
	newRule := func() *OverconsumptionRule {
		r, err := NewOverconsumption(RuleConfig{Name: "gaz", Scope: Scope{Fluids: []hv.Fluid{hv.Gas}}}, c, testRegistry(t))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var weekDJU float64
	for _, d := range dd {
		if !d.Day.Before(weekFrom) && d.Day.Before(weekTo) {
			weekDJU += d.Value
		}
	}
	predicted := 7*20 + 3*weekDJU

	clean := memQuerier(append(temps, gas(1)...))
	if cs := evalRule(t, newRule(), ruleNow, clean); len(cs) != 0 {
		t.Fatalf("clean: got %+v", cs)
	}
	faulty := tsdbWith(t, append(temps, gas(1.5)...))
	r := newRule()
	cs := evalRule(t, r, ruleNow, faulty)
	if len(cs) != 1 {
		t.Fatalf("faulty: got %d conditions", len(cs))
	}
	ev := cs[0].Evidence
	// The fit is on UTC days, the consumption spread on Paris days: the model is within a percent.
	if math.Abs(ev.Baseline/predicted-1) > 0.01 || math.Abs(ev.Value/(1.5*predicted)-1) > 1e-9 {
		t.Errorf("evidence: got value %v baseline %v, want %v and %v", ev.Value, ev.Baseline, 1.5*predicted, predicted)
	}
	if !strings.Contains(cs[0].Summary, "la semaine du 06/01") || !strings.Contains(cs[0].Summary, "au modèle DJU (") {
		t.Errorf("summary: got %q", cs[0].Summary)
	}
	fit := r.fits["gaz-mairie"]
	if fit.err != nil || fit.model.R2 < 0.99 || math.Abs(fit.model.M-3) > 0.1 {
		t.Errorf("fit: %+v", fit)
	}

	t.Run("poor fit falls back to the median", func(t *testing.T) {
		// Consumption unrelated to the weather: 50 m³ a day, 120 m³ the week judged... per day.
		st := memQuerier(append(temps, hourlyReadings("gaz-mairie", hv.VolumeM3.Delta(), from, ruleNow, func(at time.Time) float64 {
			v := 50.0 / 24
			if h := at.In(parisLoc()).YearDay(); h%3 == 0 {
				v = 10.0 / 24
			}
			if !at.Before(weekFrom) && at.Before(weekTo) {
				v = 120.0 / 24
			}
			return v
		})...))
		cs := evalRule(t, newRule(), ruleNow, st)
		if len(cs) != 1 || !strings.Contains(cs[0].Summary, "modèle DJU peu fiable, R² ") {
			t.Fatalf("got %+v", cs)
		}
	})
}

func pointsOf(rs []hv.Reading) []hv.Point {
	ps := make([]hv.Point, len(rs))
	for i, r := range rs {
		ps[i] = hv.Point{Time: r.Time, Value: r.Value}
	}
	return ps
}
