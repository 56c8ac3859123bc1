package reporting_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// day is the town hall's electricity on one day, as the analytics answer it.
func (x *tiny) day(t *testing.T, d time.Time) float64 {
	t.Helper()
	resp := x.consumption(t, reporting.Request{Scope: "site:mairie-laon", Fluids: []hv.Fluid{hv.Electricity}, From: d, To: d,
		Every: reporting.EveryDay})
	return value(t, resp, d, hv.Electricity).Value
}

// TestLateDuplicateOutOfOrder: after the build, readings arrive as ingest would hand them to the hook; the
// analytics always answer what the store holds.
func TestLateDuplicateOutOfOrder(t *testing.T) {
	x := newTiny(t, tinyConfig())
	ctx := context.Background()
	feb3 := date(2025, 2, 3)
	late := reading(t, x.reg, "elec-mairie", elecDelta, paris(2025, 2, 3, 15, 0), 1.5)

	// Late: a reading for a day already rolled up. Stored but not yet observed, the cache still says 20.
	write(t, x.store, []hv.Reading{late})
	if got := x.day(t, feb3); got != 20 {
		t.Fatalf("before the hook: %v, want the cached 20", got)
	}
	x.rollups.Observe([]hv.Reading{late})
	if st := x.rollups.Stats(); st.DirtyDays != 1 {
		t.Errorf("%d dirty days, want 1", st.DirtyDays)
	}
	if got := x.day(t, feb3); got != 21.5 { // the query refreshes the dirty day first
		t.Fatalf("after the hook: %v, want 21.5", got)
	}
	if st := x.rollups.Stats(); st.DirtyDays != 0 || st.Refreshes != 1 {
		t.Errorf("after the answer: %+v", st)
	}

	// Duplicate: the message is redelivered, the store keeps one point, the hook sees it twice (in one batch
	// and again).
	write(t, x.store, []hv.Reading{late})
	x.rollups.Observe([]hv.Reading{late, late})
	x.rollups.Observe([]hv.Reading{late})
	if err := x.rollups.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := x.day(t, feb3); got != 21.5 {
		t.Fatalf("after a duplicate: %v, want 21.5", got)
	}

	// Out of order: one batch, newest first, over two days.
	batch := []hv.Reading{
		reading(t, x.reg, "elec-mairie", elecDelta, paris(2025, 2, 5, 10, 0), 4),
		reading(t, x.reg, "elec-mairie", elecDelta, paris(2025, 2, 4, 10, 0), 2),
		reading(t, x.reg, "elec-mairie", elecDelta, paris(2025, 2, 5, 8, 0), 1),
	}
	if err := x.store.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	x.rollups.Observe(batch)
	for _, c := range []struct {
		day  time.Time
		want float64
	}{{date(2025, 2, 3), 21.5}, {date(2025, 2, 4), 2}, {date(2025, 2, 5), 5}} {
		if got := x.day(t, c.day); got != c.want {
			t.Errorf("%s: %v, want %v", c.day.Format(time.DateOnly), got, c.want)
		}
	}
	if got := value(t, x.consumption(t, reporting.Request{Scope: "departement", Fluids: []hv.Fluid{hv.Electricity},
		From: date(2025, 2, 1), To: date(2025, 2, 28), Every: reporting.EveryMonth}), date(2025, 2, 1), hv.Electricity).Value; got != 28.5 {
		t.Errorf("February %v, want 20 + 1.5 + 2 + 5 = 28.5", got)
	}

	// Refused: another value at the time of the newest sample of the series is refused by the store; the
	// hook may still see it (the writer hands it the whole batch): it leaves no trace.
	newest := reading(t, x.reg, "elec-mairie", elecDelta, paris(2026, 1, 2, 10, 0), 32)
	write(t, x.store, []hv.Reading{newest})
	x.rollups.Observe([]hv.Reading{newest})
	refused := newest
	refused.Value = 999
	if err := x.store.Write(ctx, []hv.Reading{refused}); !errors.Is(err, hv.ErrInvalid) {
		t.Fatalf("conflicting write: %v, want refused", err)
	}
	x.rollups.Observe([]hv.Reading{refused})
	if got := x.day(t, date(2026, 1, 2)); got != 32 {
		t.Errorf("2 January 2026: %v, want 32", got)
	}

	// A reading the rollups never saw through the hook (another instance, a backfill) comes in with Reload.
	other := reading(t, x.reg, "elec-mairie", elecDelta, paris(2025, 2, 6, 9, 0), 0.75)
	write(t, x.store, []hv.Reading{other})
	if err := x.rollups.Reload(ctx, date(2025, 2, 6), date(2025, 2, 6)); err != nil {
		t.Fatal(err)
	}
	if got := x.rollups.Day("elec-mairie", elecDelta, date(2025, 2, 6)); got != 0.75 {
		t.Errorf("after a reload: %v, want 0.75", got)
	}
}

// TestObserveBeforeBuild: readings the hook sees while the build runs are read again by the next refresh.
func TestObserveBeforeBuild(t *testing.T) {
	reg := loadRegistry(t, tinyRegistry)
	st := openStore(t)
	backfill(t, st, tinyReadings(t, reg))
	cfg := tinyConfig()
	r := reporting.NewRollups(st, cfg, nil)
	an := reporting.NewAnalytics(st, r, func() *registry.Registry { return reg }, cfg)
	req := reporting.Request{Scope: "departement", From: date(2025, 1, 1), To: date(2025, 1, 31), Every: reporting.EveryMonth}
	if _, err := an.Consumption(context.Background(), req); !errors.Is(err, reporting.ErrNotReady) || !errors.Is(err, hv.ErrUnavailable) {
		t.Fatalf("before the build: %v, want ErrNotReady", err)
	}
	rd := reading(t, reg, "elec-mairie", elecDelta, paris(2025, 1, 2, 9, 0), 0.5)
	write(t, st, []hv.Reading{rd})
	r.Observe([]hv.Reading{rd})
	if err := r.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Day("elec-mairie", elecDelta, date(2025, 1, 2)); got != 0.5 {
		t.Errorf("2 January: %v, want 0.5", got)
	}
}

// TestConcurrentObserve: writers store and observe random readings (some twice, some late, in any order)
// while readers ask; once they stop and a refresh ran, every day equals the store's own sum.
func TestConcurrentObserve(t *testing.T) {
	x := newTiny(t, tinyConfig())
	ctx := context.Background()
	devices := []struct {
		id     string
		metric hv.Metric
	}{{"elec-mairie", elecDelta}, {"gaz-mairie", volDelta}, {"eau-ecole", volDelta}}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := x.an.Consumption(ctx, reporting.Request{Scope: "departement", From: date(2025, 3, 1), To: date(2025, 3, 31),
				Every: reporting.EveryDay}); err != nil {
				t.Error(err)
				return
			}
			if err := x.rollups.Refresh(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 100 {
				d := devices[rng.IntN(len(devices))]
				// A time of its own to each reading: two values at one time would leave the store to keep
				// either (see store/tsdb), which is no test of the rollups.
				at := paris(2025, 3, 1+rng.IntN(31), rng.IntN(24), 0).Add(time.Duration(w*100+i) * time.Second)
				rd := reading(t, x.reg, d.id, d.metric, at, float64(1+rng.IntN(8))/4)
				if err := x.store.Write(ctx, []hv.Reading{rd}); err != nil && !errors.Is(err, hv.ErrInvalid) {
					t.Error(err)
					return
				}
				x.rollups.Observe([]hv.Reading{rd})
				if rng.IntN(4) == 0 {
					x.rollups.Observe([]hv.Reading{rd}) // a redelivery
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	if err := x.rollups.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		ss, err := x.store.Query(ctx, hv.Query{Metric: d.metric, Devices: []string{d.id}, From: date(2025, 3, 1).UnixMilli(), To: date(2025, 4, 1).UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		byDay := map[string]float64{}
		for _, s := range ss {
			for _, p := range s.Points {
				byDay[time.UnixMilli(p.Time).In(date(2025, 1, 1).Location()).Format(time.DateOnly)] += p.Value
			}
		}
		for day := date(2025, 3, 1); day.Month() == time.March; day = day.AddDate(0, 0, 1) {
			want := byDay[day.Format(time.DateOnly)]
			if got := x.rollups.Day(d.id, d.metric, day); !near(got, want) {
				t.Errorf("%s %s: rollup %v, store %v", d.id, day.Format(time.DateOnly), got, want)
			}
		}
	}
}

func TestRollupMemory(t *testing.T) {
	x := newTiny(t, tinyConfig())
	st := x.rollups.Stats()
	days := func(from, to time.Time) int { return int(to.Sub(from).Hours()/24 + 0.5) }
	// Three meters, each from its first to its last day with data; room is made up to today (10 January
	// 2026) when a series is created.
	wantDays := days(date(2024, 1, 15), date(2026, 1, 2)) + days(date(2024, 2, 10), date(2025, 11, 21)) +
		days(date(2025, 1, 15), date(2025, 6, 2))
	wantBytes := 8 * (days(date(2024, 1, 15), date(2026, 1, 11)) + days(date(2024, 2, 10), date(2026, 1, 11)) +
		days(date(2025, 1, 15), date(2026, 1, 11)))
	if !st.Ready || st.Series != 3 || st.DeviceDays != wantDays || st.Bytes != int64(wantBytes) {
		t.Errorf("stats %+v, want 3 series, %d device-days, %d B", st, wantDays, wantBytes)
	}
}
