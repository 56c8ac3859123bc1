package reporting_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/reporting"
)

// want is one expected row: its period start, fluid, value in the fluid's unit and in kWh (-1: none).
type want struct {
	start time.Time
	fluid hv.Fluid
	value float64
	kwh   float64
}

func TestConsumptionByHand(t *testing.T) {
	x := newTiny(t, tinyConfig())
	const pcs = reporting.DefaultGasPCS
	elecYear := 22.0 + 20 + 31 + (0.5 + 0.25 + 2 + 64) + 3 // January … December 2025
	tests := []struct {
		name  string
		req   reporting.Request
		rows  int // expected row count, -1: not checked
		wants []want
	}{
		{
			name: "days: 23:30 and midnight",
			req:  reporting.Request{Scope: "site:mairie-laon", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 1, 14), To: date(2025, 1, 16), Every: reporting.EveryDay},
			rows: 3,
			wants: []want{
				{date(2025, 1, 14), hv.Electricity, 0, 0},
				{date(2025, 1, 15), hv.Electricity, 15, 15},
				{date(2025, 1, 16), hv.Electricity, 7, 7},
			},
		},
		{
			name: "spring DST day of 23 hours, Paris days not UTC days",
			req:  reporting.Request{Scope: "departement", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 3, 29), To: date(2025, 3, 31), Every: reporting.EveryDay},
			rows: 3,
			wants: []want{
				{date(2025, 3, 29), hv.Electricity, 0, 0},
				{date(2025, 3, 30), hv.Electricity, 15, 15},
				{date(2025, 3, 31), hv.Electricity, 16, 16},
			},
		},
		{
			name: "autumn DST day of 25 hours",
			req:  reporting.Request{Scope: "commune:02408", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 10, 26), To: date(2025, 10, 27), Every: reporting.EveryDay},
			rows: 2,
			wants: []want{
				{date(2025, 10, 26), hv.Electricity, 2.75, 2.75},
				{date(2025, 10, 27), hv.Electricity, 64, 64},
			},
		},
		{
			name: "months, gas in m³ and kWh PCS, water without kWh",
			req:  reporting.Request{Scope: "departement", From: date(2025, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryMonth},
			rows: 36, // 12 months × electricity, gas, water (no heat meter)
			wants: []want{
				{date(2025, 1, 1), hv.Electricity, 22, 22},
				{date(2025, 2, 1), hv.Electricity, 20, 20},
				{date(2025, 3, 1), hv.Electricity, 31, 31},
				{date(2025, 4, 1), hv.Electricity, 0, 0},
				{date(2025, 10, 1), hv.Electricity, 66.75, 66.75},
				{date(2025, 12, 1), hv.Electricity, 3, 3},
				{date(2025, 1, 1), hv.Gas, 100, 100 * pcs},
				{date(2025, 2, 1), hv.Gas, 80, 80 * pcs},
				{date(2025, 11, 1), hv.Gas, 70, 70 * pcs},
				{date(2025, 1, 1), hv.Water, 2.5, -1},
				{date(2025, 6, 1), hv.Water, 1.5, -1},
			},
		},
		{
			name: "years, the last cut by To",
			req:  reporting.Request{Scope: "epci:200043495", From: date(2024, 1, 1), To: date(2026, 1, 5), Every: reporting.EveryYear},
			rows: 6, // Laon's EPCI: electricity and gas, three years
			wants: []want{
				{date(2024, 1, 1), hv.Electricity, 36, 36},
				{date(2025, 1, 1), hv.Electricity, elecYear, elecYear},
				{date(2026, 1, 1), hv.Electricity, 128, 128},
				{date(2024, 1, 1), hv.Gas, 50, 50 * pcs},
				{date(2025, 1, 1), hv.Gas, 250, 250 * pcs},
			},
		},
		{
			name: "a month cut by From and To",
			req:  reporting.Request{Scope: "departement", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 1, 15), To: date(2025, 3, 30), Every: reporting.EveryMonth},
			rows: 3,
			wants: []want{
				{date(2025, 1, 15), hv.Electricity, 22, 22},
				{date(2025, 2, 1), hv.Electricity, 20, 20},
				{date(2025, 3, 1), hv.Electricity, 15, 15}, // 31 March left out
			},
		},
		{
			name: "per m²: each fluid over the surfaces of the sites that have it",
			req:  reporting.Request{Scope: "departement", From: date(2025, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryYear, Per: reporting.PerM2},
			rows: 3,
			wants: []want{
				{date(2025, 1, 1), hv.Electricity, elecYear / 1000, elecYear / 1000},
				{date(2025, 1, 1), hv.Gas, 250.0 / 1000, 250 * pcs / 1000},
				{date(2025, 1, 1), hv.Water, 4.0 / 500, -1},
			},
		},
		{
			name: "per inhabitant of a commune",
			req:  reporting.Request{Scope: "commune:02408", From: date(2025, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryYear, Per: reporting.PerInhabitant},
			rows: 2,
			wants: []want{
				{date(2025, 1, 1), hv.Electricity, elecYear / popLaon, elecYear / popLaon},
				{date(2025, 1, 1), hv.Gas, 250.0 / popLaon, 250 * pcs / popLaon},
			},
		},
		{
			name:  "per inhabitant of the département",
			req:   reporting.Request{Scope: "departement", Fluids: []hv.Fluid{hv.Water}, From: date(2025, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryYear, Per: reporting.PerInhabitant},
			rows:  1,
			wants: []want{{date(2025, 1, 1), hv.Water, 4.0 / popDepartement, -1}},
		},
		{
			name:  "usage école: the school's water only",
			req:   reporting.Request{Scope: "departement", Usage: "école", From: date(2025, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryYear},
			rows:  1,
			wants: []want{{date(2025, 1, 1), hv.Water, 4, -1}},
		},
		{
			name: "hours of the spring DST day, from the store",
			req:  reporting.Request{Scope: "site:mairie-laon", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 3, 30), To: date(2025, 3, 30), Every: reporting.EveryHour},
			rows: 23,
			wants: []want{
				{paris(2025, 3, 30, 0, 0), hv.Electricity, 1, 1},
				{paris(2025, 3, 30, 1, 0), hv.Electricity, 2, 2},
				{paris(2025, 3, 30, 3, 0), hv.Electricity, 4, 4},
				{paris(2025, 3, 30, 4, 0), hv.Electricity, 0, 0},
				{paris(2025, 3, 30, 23, 0), hv.Electricity, 8, 8},
			},
		},
		{
			name: "hours of the autumn DST day: 02:00 twice",
			req:  reporting.Request{Scope: "site:mairie-laon", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 10, 26), To: date(2025, 10, 26), Every: reporting.EveryHour},
			rows: 25,
			wants: []want{
				{time.Date(2025, 10, 26, 0, 0, 0, 0, time.UTC), hv.Electricity, 0.5, 0.5},
				{time.Date(2025, 10, 26, 1, 0, 0, 0, time.UTC), hv.Electricity, 0.25, 0.25},
				{paris(2025, 10, 26, 23, 0), hv.Electricity, 2, 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := x.consumption(t, tt.req)
			if tt.rows >= 0 && len(resp.Rows) != tt.rows {
				t.Errorf("%d rows, want %d", len(resp.Rows), tt.rows)
			}
			for _, w := range tt.wants {
				r := value(t, resp, w.start, w.fluid)
				if r.Value != w.value && !near(r.Value, w.value) {
					t.Errorf("%s %s: value %v, want %v", w.start.Format(time.RFC3339), w.fluid, r.Value, w.value)
				}
				switch {
				case w.kwh < 0 && r.KWh != nil:
					t.Errorf("%s %s: kWh %v, want none", w.start.Format(time.RFC3339), w.fluid, *r.KWh)
				case w.kwh >= 0 && (r.KWh == nil || !near(*r.KWh, w.kwh)):
					t.Errorf("%s %s: kWh %v, want %v", w.start.Format(time.RFC3339), w.fluid, r.KWh, w.kwh)
				}
			}
		})
	}
}

func TestConsumptionUnitsAndNotes(t *testing.T) {
	x := newTiny(t, tinyConfig())
	resp := x.consumption(t, reporting.Request{Scope: "commune:02408", From: date(2025, 1, 1), To: date(2025, 12, 31),
		Every: reporting.EveryYear, Per: reporting.PerM2})
	if got := resp.Divisors; got[hv.Electricity] != 1000 || got[hv.Gas] != 1000 || len(got) != 2 {
		t.Errorf("divisors %v, want 1 000 m² for electricity and gas", got)
	}
	if r := value(t, resp, date(2025, 1, 1), hv.Gas); r.Unit != "m3/m2" {
		t.Errorf("gas unit %q", r.Unit)
	}
	if !strings.Contains(strings.Join(resp.Notes, "\n"), "Aucun compteur (eau)") {
		t.Errorf("notes %q: want the missing water meter said", resp.Notes)
	}
	// A departement answer per inhabitant names its population.
	resp = x.consumption(t, reporting.Request{Scope: "departement", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 1, 1),
		To: date(2025, 1, 31), Every: reporting.EveryMonth, Per: reporting.PerInhabitant})
	if resp.Divisors[hv.Electricity] != popDepartement {
		t.Errorf("divisor %v, want %d inhabitants", resp.Divisors[hv.Electricity], popDepartement)
	}
}

func TestClimateCorrection(t *testing.T) {
	const pcs = reporting.DefaultGasPCS
	year := reporting.Request{Scope: "site:mairie-laon", From: date(2024, 1, 1), To: date(2025, 12, 31),
		Every: reporting.EveryYear, Climate: true}
	tests := []struct {
		name  string
		share float64
		want  float64 // corrected 2025 gas, m³
	}{
		{"whole gas heats", 1, 250 * 2400.0 / tinyDJU2025},
		{"80 % heats, the rest is not corrected", 0.8, 250 * (0.2 + 0.8*2400.0/tinyDJU2025)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tinyConfig()
			cfg.HeatingShare = map[hv.Fluid]float64{hv.Gas: tt.share}
			x := newTiny(t, cfg)
			resp := x.consumption(t, year)
			gas := value(t, resp, date(2025, 1, 1), hv.Gas)
			c := gas.Climate
			if c == nil {
				t.Fatalf("no correction of 2025; notes %q", resp.Notes)
			}
			if c.DJURef != 2400 || c.DJU != tinyDJU2025 {
				t.Errorf("DJU ref %v, year %v; want 2 400 and %d", c.DJURef, c.DJU, tinyDJU2025)
			}
			if !near(c.Corrected.Value, tt.want) || !near(*c.Corrected.KWh, tt.want*pcs) {
				t.Errorf("corrected %v m³ (%v kWh), want %v m³", c.Corrected.Value, *c.Corrected.KWh, tt.want)
			}
			if e := value(t, resp, date(2025, 1, 1), hv.Electricity); e.Climate != nil {
				t.Errorf("electricity corrected: %+v", e.Climate)
			}
			// 2024: the station has no temperature then, so no correction, and a note.
			if g := value(t, resp, date(2024, 1, 1), hv.Gas); g.Climate != nil {
				t.Errorf("2024 corrected without degree days: %+v", g.Climate)
			}
			if notes := strings.Join(resp.Notes, "\n"); !strings.Contains(notes, "la station meteo-laon ne couvre que 0 jour(s) sur 366") {
				t.Errorf("notes %q", notes)
			}
		})
	}
	// Only whole calendar years are corrected; a month step is refused.
	x := newTiny(t, tinyConfig())
	resp := x.consumption(t, reporting.Request{Scope: "site:mairie-laon", From: date(2025, 2, 1), To: date(2025, 12, 31),
		Every: reporting.EveryYear, Climate: true})
	if g := value(t, resp, date(2025, 2, 1), hv.Gas); g.Climate != nil {
		t.Errorf("a cut year corrected: %+v", g.Climate)
	}
	_, err := x.an.Consumption(context.Background(), reporting.Request{Scope: "departement", From: date(2025, 1, 1),
		To: date(2025, 12, 31), Every: reporting.EveryMonth, Climate: true})
	if !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("climate by month: got %v, want ErrInvalid", err)
	}
}

func TestYearOverYear(t *testing.T) {
	x := newTiny(t, tinyConfig())
	tests := []struct {
		name       string
		req        reporting.Request
		start      time.Time
		fluid      hv.Fluid
		prevStart  time.Time
		prev, want float64
	}{
		{"month", reporting.Request{Scope: "departement", From: date(2025, 1, 1), To: date(2025, 3, 31), Every: reporting.EveryMonth},
			date(2025, 1, 1), hv.Electricity, date(2024, 1, 1), 30, 22},
		{"year of gas", reporting.Request{Scope: "departement", From: date(2025, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryYear},
			date(2025, 1, 1), hv.Gas, date(2024, 1, 1), 50, 250},
		{"DST day", reporting.Request{Scope: "departement", From: date(2025, 3, 30), To: date(2025, 3, 30), Every: reporting.EveryDay},
			date(2025, 3, 30), hv.Electricity, date(2024, 3, 30), 6, 15},
		{"hour, from the store", reporting.Request{Scope: "departement", From: date(2025, 3, 30), To: date(2025, 3, 30), Every: reporting.EveryHour},
			paris(2025, 3, 30, 12, 0), hv.Electricity, paris(2024, 3, 30, 12, 0), 6, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.YearOverYear = true
			r := value(t, x.consumption(t, tt.req), tt.start, tt.fluid)
			p := r.Previous
			switch {
			case p == nil:
				t.Fatal("no previous")
			case !p.Start.Equal(tt.prevStart):
				t.Errorf("previous starts %s, want %s", p.Start, tt.prevStart)
			case r.Value != tt.want || p.Value != tt.prev:
				t.Errorf("value %v previous %v, want %v and %v", r.Value, p.Value, tt.want, tt.prev)
			case p.Change == nil || !near(*p.Change, (tt.want-tt.prev)/tt.prev):
				t.Errorf("change %v", p.Change)
			}
		})
	}
}

func TestRank(t *testing.T) {
	x := newTiny(t, tinyConfig())
	resp, err := x.an.Rank(context.Background(), reporting.RankRequest{Year: 2025, Per: reporting.PerM2})
	if err != nil {
		t.Fatal(err)
	}
	elecYear := 22.0 + 20 + 31 + 66.75 + 3
	mairie := (elecYear + 250*reporting.DefaultGasPCS) / 1000
	if len(resp.Rows) != 1 || resp.Rows[0].Site != "mairie-laon" || !near(resp.Rows[0].Value, mairie) || resp.Unit != "kWh/m2" {
		t.Fatalf("rank %+v, want the town hall alone at %v kWh/m² (the school has only water)", resp.Rows, mairie)
	}
	resp, err = x.an.Rank(context.Background(), reporting.RankRequest{Year: 2025, Fluid: hv.Water, Per: reporting.PerM2})
	if err != nil || len(resp.Rows) != 1 || resp.Rows[0].Value != 4.0/500 || resp.Unit != "m3/m2" {
		t.Fatalf("water rank %+v, %v", resp, err)
	}
	resp, err = x.an.Rank(context.Background(), reporting.RankRequest{Year: 2025, Fluid: hv.Gas, Per: reporting.PerM2, Climate: true})
	if err != nil || len(resp.Rows) != 1 || resp.Rows[0].Corrected == nil {
		t.Fatalf("climate rank %+v, %v", resp, err)
	}
	if want := 250 * reporting.DefaultGasPCS * 2400 / tinyDJU2025 / 1000; !near(*resp.Rows[0].Corrected, want) {
		t.Errorf("corrected %v kWh/m², want %v", *resp.Rows[0].Corrected, want)
	}
}

func TestRequestErrors(t *testing.T) {
	x := newTiny(t, tinyConfig())
	ok := reporting.Request{Scope: "departement", From: date(2025, 1, 1), To: date(2025, 1, 31), Every: reporting.EveryDay}
	tests := []struct {
		name string
		edit func(*reporting.Request)
		text string
	}{
		{"unknown scope kind", func(r *reporting.Request) { r.Scope = "region:32" }, "want site:<id>"},
		{"unknown site", func(r *reporting.Request) { r.Scope = "site:nowhere" }, "no such site"},
		{"unknown commune", func(r *reporting.Request) { r.Scope = "commune:75056" }, "no such commune"},
		{"unknown epci", func(r *reporting.Request) { r.Scope = "epci:123" }, "no such EPCI"},
		{"bad step", func(r *reporting.Request) { r.Every = "week" }, "want hour|day|month|year"},
		{"bad per", func(r *reporting.Request) { r.Per = "km" }, "want m2|inhabitant"},
		{"weather is no fluid", func(r *reporting.Request) { r.Fluids = []hv.Fluid{hv.Weather} }, "want electricity|gas|heat|water"},
		{"to before from", func(r *reporting.Request) { r.To = date(2024, 12, 31) }, "before from"},
		{"too many hours", func(r *reporting.Request) { r.Every, r.To = reporting.EveryHour, date(2025, 6, 30) }, "at most 93"},
		{"no dates", func(r *reporting.Request) { r.From = time.Time{} }, "both dates are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.edit(&req)
			_, err := x.an.Consumption(context.Background(), req)
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got %v, want ErrInvalid saying %q", err, tt.text)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*reporting.Config)
		text string // "" valid
	}{
		{"defaults", func(*reporting.Config) {}, ""},
		{"gas factor", func(c *reporting.Config) { c.GasPCS = 0 }, "reporting.gas_pcs_kwh_per_m3"},
		{"electricity share", func(c *reporting.Config) { c.HeatingShare = map[hv.Fluid]float64{hv.Electricity: 0.5} }, "reporting.heating_share.electricity"},
		{"share above 1", func(c *reporting.Config) { c.HeatingShare = map[hv.Fluid]float64{hv.Gas: 1.5} }, "reporting.heating_share.gas"},
		{"reference DJU", func(c *reporting.Config) { c.ReferenceDJU = map[int]float64{2019: -3} }, "reporting.reference_dju.2019"},
		{"reference year", func(c *reporting.Config) { c.ReferenceDJU = map[int]float64{19: 2400} }, "reporting.reference_dju.19"},
		{"span", func(c *reporting.Config) { c.Years = 0 }, "reporting.years"},
		{"chunk", func(c *reporting.Config) { c.ChunkDays = 0 }, "reporting.chunk_days"},
		{"refresh", func(c *reporting.Config) { c.RefreshEvery = time.Millisecond }, "reporting.refresh_every"},
		{"recheck", func(c *reporting.Config) { c.RecheckEvery = time.Second }, "reporting.recheck_every"},
		{"filter", func(c *reporting.Config) { c.MaxDeviceFilter = 0 }, "reporting.max_device_filter"},
		{"base", func(c *reporting.Config) { c.DJUBase = 0 }, "reporting.dju_base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := reporting.DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.text == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.text != "" && (!errors.Is(err, hv.ErrInvalid) || !strings.HasPrefix(err.Error(), tt.text)):
				t.Errorf("got %v, want an error starting %q", err, tt.text)
			}
		})
	}
}
