package reporting_test

import (
	"context"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// wholeFleet is the simulated Aisne (seed 1) with 13 months of hourly history, December 2024 to December
// 2025, in an embedded store, and the rollups built over it: made once for every benchmark of the run
// (about a minute), removed by TestMain.
var wholeFleet struct {
	once     sync.Once
	dir      string
	store    *tsdb.Store
	reg      *registry.Registry
	rollups  *reporting.Rollups
	an       *reporting.Analytics
	readings int64
	history  time.Duration
	build    time.Duration
	heap     uint64 // live heap growth of the build, bytes
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if wholeFleet.store != nil {
		wholeFleet.store.Close()
	}
	if wholeFleet.dir != "" {
		os.RemoveAll(wholeFleet.dir)
	}
	os.Exit(code)
}

func setupWholeFleet(b *testing.B) {
	b.Helper()
	w := &wholeFleet
	w.once.Do(func() {
		ctx := context.Background()
		tr, err := registry.DefaultTerritory()
		if err != nil {
			w.err = err
			return
		}
		f, reg, err := fleet.Load(tr, fleet.Options{Seed: 1})
		if err != nil {
			w.err = err
			return
		}
		w.reg = reg
		if w.dir, w.err = os.MkdirTemp("", "reporting-bench-"); w.err != nil {
			return
		}
		if w.store, w.err = tsdb.Open(w.dir, tsdb.Options{}, nil); w.err != nil {
			return
		}
		from, to := date(2024, 12, 1), date(2026, 1, 1)
		start := time.Now()
		hist := simulators.NewRunner(f, 1, from).History(nil)
		if w.err = hv.Backfill(ctx, w.store, from.UnixMilli(), to.UnixMilli(), hist.Fill); w.err != nil {
			return
		}
		w.readings, w.history = hist.Emitted(), time.Since(start)
		cfg := reporting.DefaultConfig()
		cfg.Since = from
		cfg.Now = func() time.Time { return to.Add(12 * time.Hour) }
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start = time.Now()
		w.rollups = reporting.NewRollups(w.store, cfg, nil)
		if w.err = w.rollups.Build(ctx); w.err != nil {
			return
		}
		w.build = time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		w.heap = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
		w.an = reporting.NewAnalytics(w.store, w.rollups, func() *registry.Registry { return reg }, cfg)
	})
	if w.err != nil {
		b.Fatal(w.err)
	}
	b.Logf("history: %d readings of %d devices in %s; rollups built in %s: %+v, heap +%.1f MB", w.readings,
		len(w.reg.Devices()), w.history.Round(time.Millisecond), w.build.Round(time.Millisecond), w.rollups.Stats(), float64(w.heap)/1e6)
}

// BenchmarkConsumptionYear: a year of the whole simulated fleet's 1 729 buildings, all fluids, from the
// rollups (and, for the last cases, the store).
func BenchmarkConsumptionYear(b *testing.B) {
	setupWholeFleet(b)
	an := wholeFleet.an
	ctx := context.Background()
	year := reporting.Request{Scope: "departement", Kind: hv.SiteBuilding, From: date(2025, 1, 1), To: date(2025, 12, 31),
		Every: reporting.EveryMonth}
	perM2YoY := year
	perM2YoY.Per, perM2YoY.YearOverYear = reporting.PerM2, true
	climate := year
	climate.Every, climate.Climate = reporting.EveryYear, true
	days := year
	days.Every, days.Kind = reporting.EveryDay, ""
	epciWeek := reporting.Request{Scope: "epci:200043495", From: date(2025, 1, 13), To: date(2025, 1, 19), Every: reporting.EveryHour}
	cases := []struct {
		name string
		req  reporting.Request
	}{
		{"buildings_by_month", year},
		{"buildings_by_month_per_m2_yoy", perM2YoY},
		{"buildings_year_climate", climate},
		{"all_sites_by_day", days},
		{"epci_week_by_hour_from_store", epciWeek},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var resp *reporting.Response
			for b.Loop() {
				var err error
				if resp, err = an.Consumption(ctx, c.req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(resp.Rows)), "rows")
			if c.req.Every == reporting.EveryYear {
				for _, r := range resp.Rows {
					if r.KWh != nil {
						b.Logf("%s: %.0f MWh, corrected %+v", r.Fluid, *r.KWh/1000, r.Climate)
					}
				}
				b.Logf("notes: %q", resp.Notes)
			}
		})
	}
	b.Run("rank_departement_per_m2", func(b *testing.B) {
		var rows int
		for b.Loop() {
			resp, err := an.Rank(ctx, reporting.RankRequest{Year: 2025, Per: reporting.PerM2})
			if err != nil {
				b.Fatal(err)
			}
			rows = len(resp.Rows)
		}
		b.ReportMetric(float64(rows), "sites")
	})
	b.Run("tertiaire_departement", func(b *testing.B) {
		tr, err := registry.DefaultTerritory()
		if err != nil {
			b.Fatal(err)
		}
		f, err := fleet.Generate(tr, fleet.Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		sim := simulators.NewRunner(f, 1, date(2024, 12, 1)).References(reporting.DefaultGasPCS)
		b.Logf("references of %d buildings simulated in %s", len(sim), time.Since(start).Round(time.Millisecond))
		refs := reporting.References{}
		for _, r := range sim {
			refs[r.Site] = reporting.Reference{Site: r.Site, Year: r.Year, KWh: r.KWh, DJU: r.DJU}
		}
		an.SetReferences(refs)
		defer an.SetReferences(nil)
		var rep *reporting.TertiaireReport
		for b.Loop() {
			if rep, err = an.Tertiaire(ctx, reporting.TertiaireRequest{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(rep.Sites)), "sites")
		b.Logf("summary %+v", rep.Summary)
	})
}
