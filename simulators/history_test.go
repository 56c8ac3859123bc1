package simulators

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// collect runs h.Fill over consecutive windows with workers goroutines each, as hv.Backfill does, and returns
// every reading emitted.
func collect(t *testing.T, h *History, windows []time.Time, workers int) []hv.Reading {
	t.Helper()
	var (
		mu  sync.Mutex
		out []hv.Reading
	)
	for i := 0; i+1 < len(windows); i++ {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				err := h.Fill(context.Background(), windows[i].UnixMilli(), windows[i+1].UnixMilli(), w, workers,
					func(rs []hv.Reading) error {
						mu.Lock()
						out = append(out, rs...)
						mu.Unlock()
						return nil
					})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	slices.SortStableFunc(out, func(a, b hv.Reading) int {
		if c := strings.Compare(a.Device, b.Device); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Metric), string(b.Metric)); c != 0 {
			return c
		}
		return int(a.Time - b.Time)
	})
	return out
}

// byKey groups readings by device and metric.
func byKey(rs []hv.Reading) map[string]map[hv.Metric][]hv.Reading {
	out := map[string]map[hv.Metric][]hv.Reading{}
	for _, r := range rs {
		if out[r.Device] == nil {
			out[r.Device] = map[hv.Metric][]hv.Reading{}
		}
		out[r.Device][r.Metric] = append(out[r.Device][r.Metric], r)
	}
	return out
}

// TestHistoryShape: a fortnight of the Pays de Laon fleet, hourly: every device has its series, labelled as
// ingest labels them; indexes never go back and their deltas add up to their rise; the window split and the
// number of workers change nothing; Total counts exactly what is emitted.
func TestHistoryShape(t *testing.T) {
	f, reg := laonFleet(t)
	from := time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)
	to := from.Add(14 * 24 * time.Hour)
	h := NewRunner(f, 1, to).History(nil)
	total := h.Total(from.UnixMilli(), to.UnixMilli())
	got := collect(t, h, []time.Time{from, to}, 2)
	if int64(len(got)) != total || h.Emitted() != total {
		t.Fatalf("%d readings emitted (%d counted), Total said %d", len(got), h.Emitted(), total)
	}
	split := collect(t, NewRunner(f, 1, to).History(nil), []time.Time{from, from.Add(5*24*time.Hour + 30*time.Minute), to}, 3)
	if !slices.Equal(got, split) {
		t.Fatal("the history split in two windows over 3 workers differs from one window over 2")
	}
	series := byKey(got)
	for _, d := range reg.Devices() {
		site, _ := reg.Site(d.Site)
		ms := series[d.ID]
		if len(ms) == 0 {
			t.Fatalf("%s: no history", d.ID)
		}
		for m, rs := range ms {
			if rs[0].Site != d.Site || rs[0].Commune != site.Commune || rs[0].EPCI != site.EPCI || rs[0].Fluid != d.Fluid {
				t.Fatalf("%s %s labelled %+v, want the registry's site %s", d.ID, m, rs[0], d.Site)
			}
			if idx, ok := m.DeltaOf(); ok {
				rise := ms[idx][len(ms[idx])-1].Value - ms[idx][0].Value
				sum := 0.0
				for _, r := range rs {
					if r.Value < 0 {
						t.Fatalf("%s %s: negative delta %v", d.ID, m, r)
					}
					sum += r.Value
				}
				if len(rs) != len(ms[idx])-1 || math.Abs(sum-rise) > 1e-6*float64(len(rs))+1e-9*rise {
					t.Fatalf("%s %s: %d deltas adding up to %v, index rose by %v over %d readings", d.ID, m, len(rs), sum, rise, len(ms[idx]))
				}
			}
			if want := 14 * 24; !strings.HasSuffix(string(m), hv.DeltaSuffix) && len(rs) != want {
				t.Fatalf("%s %s: %d readings, want %d", d.ID, m, len(rs), want)
			}
		}
	}
}

// TestHistoryMatchesLive: over a winter week the history and the live runner (10- and 5-minute reports) tell
// the same consumption for every meter and controller, within the trapezoid's error on hourly steps.
func TestHistoryMatchesLive(t *testing.T) {
	f, _ := laonFleet(t)
	from := time.Date(2027, 1, 11, 0, 0, 0, 0, time.UTC)
	to := from.Add(7 * 24 * time.Hour)
	hist := byKey(collect(t, NewRunner(f, 1, to).History(nil), []time.Time{from, to.Add(time.Millisecond)}, 2))

	r := NewRunner(f, 1, from)
	first, last := map[string]float64{}, map[string]float64{}
	r.observe = func(id string, at time.Time, vals map[hv.Metric]float64) {
		if at.Before(from.Add(time.Hour)) || at.After(to) {
			return
		}
		m := r.byID[id].indexMetric()
		if m == "" {
			return // a weather station: no index
		}
		if _, ok := first[id]; !ok {
			first[id] = vals[m]
		}
		last[id] = vals[m]
	}
	r.Due(to)
	// Per device, hourly steps see fewer of the 10-minute noise knots and short events than live reports do:
	// a sampling error, not a bias. Per fluid over the fleet it averages out; a bias would not.
	worst, worstErr := "", 0.0
	type sums struct{ live, past float64 }
	byFluid := map[string]*sums{}
	for id, v0 := range first {
		d := r.byID[id]
		m := d.indexMetric()
		// history from the first report on or after 01:00 to the last before the end: the live span
		var h0, h1 float64
		for _, x := range hist[id][m] {
			if x.Time <= from.Add(time.Hour).UnixMilli() {
				h0 = x.Value
			}
			if x.Time <= to.UnixMilli() {
				h1 = x.Value
			}
		}
		live, past := last[id]-v0, h1-h0
		kind := string(d.Kind) + "/" + string(d.Fluid)
		if byFluid[kind] == nil {
			byFluid[kind] = &sums{}
		}
		byFluid[kind].live += live
		byFluid[kind].past += past
		if live < 1 {
			continue // too small to compare in relative terms (a dry water meter, say)
		}
		if e := math.Abs(past-live) / live; e > worstErr {
			worst, worstErr = id, e
		}
	}
	if len(first) < 300 || len(byFluid) < 4 {
		t.Fatalf("only %d devices of %d kinds compared", len(first), len(byFluid))
	}
	for kind, s := range byFluid {
		e := math.Abs(s.past-s.live) / s.live
		t.Logf("%-30s live %12.1f history %12.1f: %.2f %%", kind, s.live, s.past, 100*e)
		if e > 0.02 {
			t.Errorf("%s: the fleet's history and live consumption differ by %.1f %%", kind, 100*e)
		}
	}
	if worstErr > 0.25 {
		t.Errorf("%s: history and live consumption differ by %.1f %%", worst, 100*worstErr)
	}
	t.Logf("%d devices, worst relative gap %.2f %% (%s)", len(first), 100*worstErr, worst)
}

// TestHistoryResumes: backfilling after stored readings continues every index from its newest stored value,
// emits nothing at or before it, and gives the first reading after it the delta since; the live runner then
// resumes from the history's newest readings without a reset.
func TestHistoryResumes(t *testing.T) {
	f, _ := laonFleet(t)
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	mid := from.Add(48 * time.Hour)
	to := from.Add(96 * time.Hour)
	before := collect(t, NewRunner(f, 1, to).History(nil), []time.Time{from, mid}, 2)
	// what the store would return: the newest index readings, 20 minutes off the hour as live ones are
	newest := hv.Newest{}
	for _, rd := range before {
		if rd.Metric.Cumulative() {
			rd.Time -= 20 * time.Minute.Milliseconds()
			newest.Add(rd)
		}
	}
	last := newest.Sorted()
	after := byKey(collect(t, NewRunner(f, 1, to).History(last), []time.Time{from, to}, 2))
	for _, s := range last {
		rs := after[s.Device][s.Metric]
		if len(rs) == 0 || rs[0].Time <= s.Time || rs[0].Time != mid.UnixMilli()-time.Hour.Milliseconds() {
			t.Fatalf("%s %s: first reading after the stored one at %d: %+v", s.Device, s.Metric, s.Time, rs[:min(1, len(rs))])
		}
		ds := after[s.Device][s.Metric.Delta()]
		if rs[0].Value < s.Value || len(ds) == 0 || ds[0].Time != rs[0].Time || math.Abs(ds[0].Value-(rs[0].Value-s.Value)) > 1e-6 {
			t.Fatalf("%s %s: stored %v, then %v with delta %+v", s.Device, s.Metric, s.Value, rs[0], ds[:min(1, len(ds))])
		}
	}

	// The live runner resumed from the history's end reports indexes at or above it, none flagged as reset.
	r := NewRunner(f, 1, to)
	end := newest
	for _, rd := range collect(t, NewRunner(f, 1, to).History(nil), []time.Time{from, to}, 2) {
		if rd.Metric.Cumulative() {
			end.Add(rd)
		}
	}
	r.Resume(end.Sorted())
	want := map[string]hv.Reading{}
	for _, rd := range end.Sorted() {
		want[rd.Device+"/"+string(rd.Metric)] = rd
	}
	checked := 0
	r.observe = func(id string, at time.Time, vals map[hv.Metric]float64) {
		for m, v := range vals {
			s, ok := want[id+"/"+string(m)]
			if !ok {
				continue
			}
			checked++
			// at most a full hour at the device's largest plausible rate past the stored value
			if v < s.Value || v > s.Value+1000 {
				t.Errorf("%s %s: live %v after the history's %v", id, m, v, s.Value)
			}
			delete(want, id+"/"+string(m))
		}
	}
	r.Due(to.Add(time.Hour))
	if checked < 300 {
		t.Fatalf("only %d indexes checked", checked)
	}
}
