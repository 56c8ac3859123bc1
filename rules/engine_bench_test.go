package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// The rules engine's figures for BENCHMARKS.md ("Rules engine"), on the whole simulated Aisne fleet (6 075
// devices):
//
//	go test -run='^$' -bench=BenchmarkEngineObserve -benchtime=10x -count=3 ./rules/
//	go test -run='^$' -bench=BenchmarkBaselinePass -benchtime=5x -count=1 -timeout=30m -v ./rules/

// ingestBatch is the service's default ingest.batch_size: the largest batch the streaming rules observe.
const ingestBatch = 2000

// BenchmarkEngineObserve is the cost per stored reading of the default set's streaming rules (threshold,
// counter, peak, day_burner, lamp_failure, dimming_failure): what every reading costs on the ingest path. The
// stream is the whole Aisne fleet from 17:00 to 19:00 on a January evening (meters, weather stations, and the
// street lights switching on at 18:00) as ingest stores it (index deltas included), in batches of
// ingest.batch_size; a fresh rule set observes it at each iteration, with every controller's commanded
// level known (the failsafe schedule), so that dimming_failure judges every level.
//
// The sub-benchmark eval is one evaluation of those rules and of the silence rule over the whole fleet
// after that stream: what the engine does every minute.
func BenchmarkEngineObserve(b *testing.B) {
	f, reg := aisneFleet(b)
	batches, n := captureStream(b, f, reg, liveAt(0, 16, 0), liveAt(0, 17, 0), liveAt(0, 19, 0))
	b.Logf("%d devices, %d readings in %d batches", len(reg.Devices()), n, len(batches))
	state := live.New()
	for _, batch := range batches {
		state.Update(batch)
	}
	streaming := func(b *testing.B) *rules.Engine {
		set := loadDefault(b, reg, state.LastSeen)
		var keep []rules.Rule
		for _, r := range set.Rules {
			if _, ok := r.(rules.Observer); ok || r.(interface{ Kind() string }).Kind() == rules.KindSilence {
				keep = append(keep, r)
			}
		}
		return newBenchEngine(b, &rules.RuleSet{Rules: keep}, nopStore{})
	}
	b.Run("observe", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			e := streaming(b)
			b.StartTimer()
			for _, batch := range batches {
				e.Observe(batch)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/reading")
	})
	b.Run("eval", func(b *testing.B) {
		e := streaming(b)
		for _, batch := range batches {
			e.Observe(batch)
		}
		now := liveAt(0, 19, 0)
		for b.Loop() {
			e.EvalAll(context.Background(), now)
		}
		b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/pass")
	})
}

// BenchmarkBaselinePass is one evaluation of the default set's window rules (leak, baseload,
// overconsumption: the baselines) over the whole Aisne fleet, with 13 months of clean hourly history in
// the embedded TSDB (149 million readings, built once outside the timing: about 35 s and 700 MB of disk).
//
// cold is the first pass of a window (a new day, a new week, or a restart): fresh rules, whose energy
// signatures are fitted then. warm is every later pass in the same window, as the engine runs every minute.
func BenchmarkBaselinePass(b *testing.B) {
	start := time.Now()
	h := newSimHistory(b, fleet.Options{Seed: 1}, liveStart)
	b.Logf("%d devices, %d readings of history backfilled in %s, %d MB on disk", len(h.reg.Devices()), h.readings,
		time.Since(start).Round(time.Second), dirSize(b, h.dir)>>20)
	st, err := tsdb.Open(h.dir, tsdb.Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	windows := func(b *testing.B) *rules.RuleSet {
		set := loadDefault(b, h.reg, func(string) int64 { return 0 })
		var keep []rules.Rule
		for _, r := range set.Rules {
			if _, ok := r.(rules.Observer); !ok && r.(interface{ Kind() string }).Kind() != rules.KindSilence {
				keep = append(keep, r)
			}
		}
		return &rules.RuleSet{Rules: keep}
	}
	// Where the history ends, Friday 17 January 2025 at noon: the last 24 hours, night, day, weekend and week
	// are all complete.
	now := h.start
	var cold, warm *rules.Engine // the last pass of each, for the time of each rule
	b.Run("cold", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			cold = newBenchEngine(b, windows(b), st)
			b.StartTimer()
			cold.EvalAll(context.Background(), now)
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
	})
	b.Run("warm", func(b *testing.B) {
		warm = newBenchEngine(b, windows(b), st)
		warm.EvalAll(context.Background(), now)
		for b.Loop() {
			warm.EvalAll(context.Background(), now)
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
	})
	if cold == nil || warm == nil {
		return // a -bench pattern left a sub-benchmark out
	}
	cs, _ := cold.Status()
	ws, _ := warm.Status()
	for i, r := range cs {
		b.Logf("%-34s %4d conditions  cold %6.1f ms  warm %6.1f ms", r.Name, r.Conditions,
			float64(r.EvalDuration.Microseconds())/1000, float64(ws[i].EvalDuration.Microseconds())/1000)
	}
}

// dirSize is the bytes of the files under dir.
func dirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// aisneFleet is the whole simulated Aisne.
func aisneFleet(tb testing.TB) (*fleet.Fleet, *registry.Registry) {
	tb.Helper()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		tb.Fatal(err)
	}
	f, reg, err := fleet.Load(tr, fleet.Options{Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return f, reg
}

// loadDefault loads the default rule set with every dependency, the failsafe schedule standing for every
// controller's commanded level.
func loadDefault(tb testing.TB, reg *registry.Registry, lastSeen func(string) int64) *rules.RuleSet {
	tb.Helper()
	set, err := rules.LoadRulesFS(configs.Rules(), reg, rules.Deps{
		LastSeen: lastSeen,
		Commanded: func(device string, at time.Time) (float64, time.Time, bool) {
			_, site, _ := reg.Lookup(device)
			return simulators.DefaultLevel(at, site.Lat, site.Lon), at.Truncate(time.Hour), true
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// newBenchEngine is an engine running set over q, with a Manager on a temporary SQLite.
func newBenchEngine(tb testing.TB, set *rules.RuleSet, q rules.Querier) *rules.Engine {
	tb.Helper()
	db, err := rules.OpenSQLite(filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	mgr, err := rules.NewManager(context.Background(), db, nil, nil, nil, rules.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := rules.NewEngine(rules.EngineConfig{}, set, nil, mgr, q, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// captureStream runs the fleet live from start to end through the ingest pipeline and returns what it
// stores from from on, in batches of ingestBatch readings, and how many readings. The hour before from lets
// every index have a previous reading, so the stream carries the deltas ingest derives.
func captureStream(tb testing.TB, f *fleet.Fleet, reg *registry.Registry, start, from, end time.Time) ([][]hv.Reading, int) {
	tb.Helper()
	var all []hv.Reading
	keep := false
	in := newIngestPath(tb, reg, nopStore{}, ingest.NewCounters(), func(rs []hv.Reading) {
		if keep {
			all = append(all, rs...)
		}
	})
	r := simulators.NewRunner(f, 1, start)
	for t := start.Add(liveStep); !t.After(end); t = t.Add(liveStep) {
		keep = t.After(from)
		in.handle(r.Due(t))
	}
	in.check(tb)
	var batches [][]hv.Reading
	for len(all) > 0 {
		n := min(len(all), ingestBatch)
		batches = append(batches, slices.Clip(all[:n]))
		all = all[n:]
	}
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	return batches, n
}

// nopStore takes every write and holds nothing.
type nopStore struct{}

func (nopStore) Write(context.Context, []hv.Reading) error { return nil }
func (nopStore) Query(context.Context, hv.Query) ([]hv.Series, error) {
	return nil, nil
}
func (nopStore) Last(context.Context, []hv.Metric, int64) ([]hv.Reading, error) { return nil, nil }
func (nopStore) Ping(context.Context) error                                     { return nil }
func (nopStore) Close() error                                                   { return nil }
