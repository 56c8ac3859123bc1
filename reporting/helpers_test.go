package reporting_test

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// tinyRegistry: the town hall of Laon (1 000 m², electricity and gas), a school of Saint-Quentin (500 m²,
// water only) and Laon's weather station.
const tinyRegistry = `
sites:
  - {id: mairie-laon, name: "Mairie de Laon", kind: building, usage: mairie, commune: "02408", surface_m2: 1000}
  - {id: ecole-sq, name: "École Saint-Quentin", kind: building, usage: école, commune: "02691", surface_m2: 500}
  - {id: station-laon, name: "Station météo de Laon", kind: weather_station, commune: "02408"}
devices:
  - {id: elec-mairie, site: mairie-laon, kind: meter, fluid: electricity}
  - {id: gaz-mairie, site: mairie-laon, kind: meter, fluid: gas}
  - {id: eau-ecole, site: ecole-sq, kind: meter, fluid: water}
  - {id: meteo-laon, site: station-laon, kind: weather}
`

// Populations of the territory file (INSEE).
const (
	popLaon        = 24220
	popDepartement = 523342
)

func paris(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, sun.Paris())
}

func date(y int, m time.Month, d int) time.Time { return paris(y, m, d, 0, 0) }

func loadRegistry(t testing.TB, doc string) *registry.Registry {
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

// openStore opens an embedded store that takes late data up to three years behind its newest sample.
func openStore(t testing.TB) *tsdb.Store {
	t.Helper()
	s, err := tsdb.Open(t.TempDir(), tsdb.Options{OutOfOrderWindow: 3 * 365 * 24 * time.Hour}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reading is a reading of a registered device, labelled as ingest labels it.
func reading(t testing.TB, reg *registry.Registry, dev string, m hv.Metric, at time.Time, v float64) hv.Reading {
	t.Helper()
	d, site, ok := reg.Device(dev)
	if !ok {
		t.Fatalf("no device %s", dev)
	}
	return hv.Reading{Device: dev, Metric: m, Value: v, Time: at.UnixMilli(), Site: site.ID, Commune: site.Commune,
		EPCI: site.EPCI, Fluid: d.Fluid}
}

// write stores readings in time order, as a live fleet would have.
func write(t testing.TB, s hv.Store, rs []hv.Reading) {
	t.Helper()
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b hv.Reading) int { return int(a.Time - b.Time) })
	if err := s.Write(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

var (
	elecDelta = hv.EnergyKWh.Delta()
	volDelta  = hv.VolumeM3.Delta()
)

// tinyReadings are the hand-written deltas of the tiny registry (Paris times) and Laon's temperature over
// 2025: 6 °C every hour until 30 June (12 DJU a day), 16 °C from 1 July (2 DJU a day): 181 × 12 + 184 × 2 =
// 2 540 DJU.
func tinyReadings(t testing.TB, reg *registry.Registry) []hv.Reading {
	e := func(at time.Time, v float64) hv.Reading { return reading(t, reg, "elec-mairie", elecDelta, at, v) }
	g := func(at time.Time, v float64) hv.Reading { return reading(t, reg, "gaz-mairie", volDelta, at, v) }
	w := func(at time.Time, v float64) hv.Reading { return reading(t, reg, "eau-ecole", volDelta, at, v) }
	rs := []hv.Reading{
		e(paris(2024, 1, 15, 12, 0), 30),
		e(paris(2024, 3, 30, 12, 0), 6),
		e(paris(2025, 1, 15, 10, 0), 10),
		e(paris(2025, 1, 15, 23, 30), 5),
		e(paris(2025, 1, 16, 0, 0), 7), // at midnight: the new day's
		e(paris(2025, 2, 3, 12, 0), 20),
		// 30 March 2025, 23 hours: 00:30 Paris is 29 March 23:30 UTC.
		e(paris(2025, 3, 30, 0, 30), 1),
		e(paris(2025, 3, 30, 1, 30), 2),
		e(paris(2025, 3, 30, 3, 30), 4),
		e(paris(2025, 3, 30, 23, 30), 8),
		e(paris(2025, 3, 31, 0, 10), 16),
		// 26 October 2025, 25 hours: 02:30 twice, then 27 October 00:30 Paris is 26 October 23:30 UTC.
		e(time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC), 0.5),  // 02:30 CEST
		e(time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC), 0.25), // 02:30 CET
		e(paris(2025, 10, 26, 23, 30), 2),
		e(paris(2025, 10, 27, 0, 30), 64),
		e(paris(2025, 12, 31, 23, 30), 3),
		e(paris(2026, 1, 1, 0, 30), 128), // 31 December 23:30 UTC: 2026's
		g(paris(2024, 2, 10, 12, 0), 50),
		g(paris(2025, 1, 20, 8, 0), 100),
		g(paris(2025, 2, 20, 8, 0), 80),
		g(paris(2025, 11, 20, 8, 0), 70),
		w(paris(2025, 1, 15, 9, 0), 2.5),
		w(paris(2025, 6, 1, 9, 0), 1.5),
	}
	for at := date(2025, 1, 1); at.Before(date(2026, 1, 1)); at = at.Add(time.Hour) {
		temp := 6.0
		if !at.Before(date(2025, 7, 1)) {
			temp = 16
		}
		rs = append(rs, reading(t, reg, "meteo-laon", hv.TemperatureC, at, temp))
	}
	return rs
}

const tinyDJU2025 = 181*12 + 184*2

// tinyConfig: rollups from 2024, a clock on 10 January 2026, a reference of 2 400 DJU (the mean of 2 300 and
// 2 500).
func tinyConfig() reporting.Config {
	cfg := reporting.DefaultConfig()
	cfg.Since = date(2024, 1, 1)
	cfg.Now = func() time.Time { return paris(2026, 1, 10, 12, 0) }
	cfg.ReferenceDJU = map[int]float64{2021: 2300, 2022: 2500}
	return cfg
}

type tiny struct {
	reg     *registry.Registry
	store   *tsdb.Store
	rollups *reporting.Rollups
	an      *reporting.Analytics
}

// backfill writes history as blocks, as the service's backfill does: a year of hourly samples written
// through Write would sit in the head in thousands of tiny chunks, slow to read back.
func backfill(t testing.TB, s hv.Store, rs []hv.Reading) {
	t.Helper()
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b hv.Reading) int { return int(a.Time - b.Time) })
	from, to := rs[0].Time, rs[len(rs)-1].Time+1
	err := hv.Backfill(context.Background(), s, from, to, func(_ context.Context, from, to int64, worker, _ int, emit func([]hv.Reading) error) error {
		if worker != 0 {
			return nil
		}
		var win []hv.Reading
		for _, r := range rs {
			if r.Time >= from && r.Time < to {
				win = append(win, r)
			}
		}
		if len(win) == 0 {
			return nil
		}
		return emit(win)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newTiny stores the tiny readings and builds the rollups over them.
func newTiny(t testing.TB, cfg reporting.Config) *tiny {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := loadRegistry(t, tinyRegistry)
	st := openStore(t)
	backfill(t, st, tinyReadings(t, reg))
	r := reporting.NewRollups(st, cfg, nil)
	if err := r.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &tiny{reg: reg, store: st, rollups: r, an: reporting.NewAnalytics(st, r, func() *registry.Registry { return reg }, cfg)}
}

func (x *tiny) consumption(t testing.TB, req reporting.Request) *reporting.Response {
	t.Helper()
	resp, err := x.an.Consumption(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// value is the row of fluid f starting at start, failing when there is none.
func value(t testing.TB, resp *reporting.Response, start time.Time, f hv.Fluid) reporting.Row {
	t.Helper()
	for _, r := range resp.Rows {
		if r.Start.Equal(start) && r.Fluid == f {
			return r
		}
	}
	t.Fatalf("no %s row at %s in %+v", f, start, resp.Rows)
	return reporting.Row{}
}

func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// laonHistory backfills the Pays de Laon's simulated hourly history of [from, to) into a fresh store and
// returns its registry, the store and the analytics over rollups built from it.
func laonHistory(t testing.TB, from, to time.Time) (*registry.Registry, *tsdb.Store, *reporting.Analytics) {
	t.Helper()
	ctx := context.Background()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	f, reg, err := fleet.Load(tr, fleet.Options{Seed: 1, EPCIs: []string{"200043495"}})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	hist := simulators.NewRunner(f, 1, from).History(nil)
	if err := hv.Backfill(ctx, st, from.UnixMilli(), to.UnixMilli(), hist.Fill); err != nil {
		t.Fatal(err)
	}
	cfg := reporting.DefaultConfig()
	cfg.Since = from
	cfg.Now = func() time.Time { return to.Add(36 * time.Hour) }
	r := reporting.NewRollups(st, cfg, nil)
	if err := r.Build(ctx); err != nil {
		t.Fatal(err)
	}
	return reg, st, reporting.NewAnalytics(st, r, func() *registry.Registry { return reg }, cfg)
}

// siteFluid is a building's consumption of one fluid.
type siteFluid struct {
	site  string
	fluid hv.Fluid
}

// tertiaireDeltas sums the raw delta points of the meters of the buildings subject to the décret tertiaire
// over [from, to), per building and energy, in the meters' units (gas in m³): the direct sums the reports
// are checked against.
func tertiaireDeltas(t testing.TB, st hv.Store, reg *registry.Registry, from, to time.Time) map[siteFluid]float64 {
	t.Helper()
	direct := map[siteFluid]float64{}
	for _, fl := range []hv.Fluid{hv.Electricity, hv.Gas, hv.Heat} {
		ss, err := st.Query(context.Background(), hv.Query{Metric: reporting.FluidMetric(fl), From: from.UnixMilli(),
			To: to.UnixMilli(), Fluids: []hv.Fluid{fl}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			d, site, ok := reg.Device(s.Device)
			if !ok || d.Fluid != fl || !site.Tertiaire {
				continue
			}
			for _, p := range s.Points {
				direct[siteFluid{site.ID, fl}] += p.Value
			}
		}
	}
	return direct
}
