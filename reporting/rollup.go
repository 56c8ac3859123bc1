package reporting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
)

// ErrNotReady means the rollups are still being built from the store; the caller may retry.
var ErrNotReady = fmt.Errorf("reporting: %w: rollups are still being built", hv.ErrUnavailable)

// RollupMetrics are the interval series the rollups keep, day by day.
var RollupMetrics = []hv.Metric{hv.EnergyKWh.Delta(), hv.VolumeM3.Delta(), hv.HeatKWh.Delta()}

func isRollupMetric(m hv.Metric) bool { return slices.Contains(RollupMetrics, m) }

const hourMs = int64(time.Hour / time.Millisecond)

// Rollups is an in-memory cache of each device's daily consumption (the sum of its delta series over each
// civil day of Europe/Paris, 23 or 25 hours on DST days) for energy_kwh_delta, volume_m3_delta and
// heat_kwh_delta. A delta counts on the day holding its timestamp (the reading that closes its interval), as
// the store's windows count it, so hours, days and months add up.
//
// # The store is the truth
//
// Build reads the span from the store, one query per metric per chunk of days (hourly sums, Every=1h
// AggSum, put into local days here: the store's windows are aligned on the epoch in UTC, and Paris days
// begin on a whole UTC hour). After that, values never change by addition. The ingest writer's hook,
// Observe, only marks the (device, day) buckets its delta readings fall in as dirty; Refresh re-reads exactly
// those device-days from the store (one query per metric and dirty day, naming the dirty devices) and
// replaces them. So a duplicate reading (redelivered, stored once by the store's dedup, seen twice by the
// hook) is counted once, a late or out-of-order reading lands in its own day, and a reading the store
// refused leaves no trace. Run refreshes every RefreshEvery, and the analytics refresh before answering from
// dirty days. A hook call for a reading racing a refresh marks its bucket again after the write is durable,
// so the next refresh reads it; a refresh takes the dirty set and reads the store under one lock with the
// build, so a stale read never overwrites a newer one.
//
// Readings that never reach this instance's hook (a backfill written as blocks, another instance's devices
// when several share the store) are picked up by Reload: Run re-reads the last RecentDays days of every
// device every RecheckEvery; older late data from elsewhere needs a Reload of its days.
//
// # Memory
//
// One float64 per day for each (device, metric) the store holds, from the device's first day with data:
// 365.25 × 8 B ≈ 2.9 kB per device-year and metric, plus about 100 B of map entry and header per series.
// A series is allocated up to today when created; extended day by day afterwards, it carries append's
// growth slack (about 1.3× at a year's length). Meters have one delta metric each, so
// the simulated Aisne (6 070 consumption series) takes about 18 MB a year, 107 MB for six years. float32
// would halve that but round a 1 234.567 kWh day to 1e-4 kWh and make refreshed values differ from the
// store; the exactness is worth the memory here.
type Rollups struct {
	store hv.Store
	cfg   Config
	loc   *time.Location
	now   func() time.Time
	log   *slog.Logger
	since int32 // first day kept

	// refreshMu serialises the store reads that replace values (build chunks, refreshes, reloads): a read
	// and the replacement it makes are never interleaved with another's.
	refreshMu sync.Mutex

	mu     sync.RWMutex
	series map[hv.Metric]map[string]*daySeries

	dirtyMu sync.Mutex
	dirty   map[dayKey]*dirtyDay

	ready     atomic.Bool
	refreshes atomic.Int64
	reread    atomic.Int64 // device-days re-read by refreshes
}

// dayKey is one metric on one day.
type dayKey struct {
	metric hv.Metric
	day    int32
}

// dirtyDay is the devices whose bucket of one (metric, day) must be re-read. Past MaxDeviceFilter devices
// it becomes the whole day (all): the set stays bounded, and so does the query that re-reads it.
type dirtyDay struct {
	all     bool
	devices map[string]struct{}
}

// NewRollups returns empty rollups over store; Build (or Run) fills them. cfg must be valid.
func NewRollups(store hv.Store, cfg Config, log *slog.Logger) *Rollups {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Rollups{store: store, cfg: cfg, loc: cfg.Location, now: cfg.Now, log: log,
		series: map[hv.Metric]map[string]*daySeries{}, dirty: map[dayKey]*dirtyDay{}}
	if r.loc == nil {
		r.loc = sun.Paris()
	}
	if r.now == nil {
		r.now = time.Now
	}
	since := cfg.Since
	if since.IsZero() {
		since = r.now().In(r.loc).AddDate(-max(cfg.Years, 1), 0, 0)
	}
	r.since = dayOfTime(since)
	for _, m := range RollupMetrics {
		r.series[m] = map[string]*daySeries{}
	}
	return r
}

// civil is a civil day number: days since 1970-01-01, whatever the zone.
func civil(y int, m time.Month, d int) int32 {
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// dayOfTime is the civil day of t's date in its own location.
func dayOfTime(t time.Time) int32 { y, m, d := t.Date(); return civil(y, m, d) }

func (r *Rollups) dayOf(ms int64) int32 { return dayOfTime(time.UnixMilli(ms).In(r.loc)) }

// dayStart is the local midnight beginning day d.
func (r *Rollups) dayStart(d int32) time.Time { return time.Date(1970, 1, 1+int(d), 0, 0, 0, 0, r.loc) }

func (r *Rollups) today() int32 { return dayOfTime(r.now().In(r.loc)) }

// Ready reports whether Build has completed once.
func (r *Rollups) Ready() bool { return r.ready.Load() }

// Build reads the whole span, from the first day kept to today, from the store. Run calls it; call it
// yourself when not using Run. It may run while Observe marks buckets: what it misses, Refresh reads.
func (r *Rollups) Build(ctx context.Context) error {
	start := time.Now()
	if err := r.reloadDays(ctx, r.since, r.today()+1); err != nil {
		return fmt.Errorf("rollups: build: %w", err)
	}
	r.ready.Store(true)
	st := r.Stats()
	r.log.Info("rollups built", "since", r.dayStart(r.since).Format(time.DateOnly), "series", st.Series,
		"device_days", st.DeviceDays, "bytes", st.Bytes, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Reload re-reads every device's days from first to last (dates in Europe/Paris, both included) from the
// store: after a backfill, or for late data this instance's hook did not see.
func (r *Rollups) Reload(ctx context.Context, first, last time.Time) error {
	d0 := max(dayOfTime(first.In(r.loc)), r.since)
	d1 := dayOfTime(last.In(r.loc)) + 1
	if err := r.reloadDays(ctx, d0, d1); err != nil {
		return fmt.Errorf("rollups: reload: %w", err)
	}
	return nil
}

// reloadDays re-reads days [d0, d1) of every device, chunk by chunk.
func (r *Rollups) reloadDays(ctx context.Context, d0, d1 int32) error {
	chunk := int32(max(r.cfg.ChunkDays, 1))
	for d := d0; d < d1; d += chunk {
		e := min(d+chunk, d1)
		for _, m := range RollupMetrics {
			r.refreshMu.Lock()
			_, err := r.reload(ctx, m, d, e, nil)
			r.refreshMu.Unlock()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// reload reads metric m over days [d0, d1) for devices (nil: every device) and replaces their values with
// what the store holds. The caller holds refreshMu. It returns the device-days replaced.
func (r *Rollups) reload(ctx context.Context, m hv.Metric, d0, d1 int32, devices []string) (int, error) {
	n := int(d1 - d0)
	bounds := make([]int64, n+1)
	every := hourMs
	for i := range bounds {
		bounds[i] = r.dayStart(d0 + int32(i)).UnixMilli()
		if bounds[i]%hourMs != 0 {
			every = 0 // a zone whose days begin off the hour: hourly windows would straddle days
		}
	}
	q := hv.Query{Metric: m, From: bounds[0], To: bounds[n], Devices: devices}
	if every > 0 {
		q.Every, q.Agg = every, hv.AggSum
	}
	ss, err := r.store.Query(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("read %s from %s to %s: %w", m, r.dayStart(d0).Format(time.DateOnly),
			r.dayStart(d1).Format(time.DateOnly), err)
	}
	sums := make(map[string][]float64, len(ss))
	for _, s := range ss {
		if s.Device == "" || len(s.Points) == 0 {
			continue
		}
		v := make([]float64, n)
		i := 0
		for _, p := range s.Points { // sorted by time
			for i < n && p.Time >= bounds[i+1] {
				i++
			}
			if i == n {
				break
			}
			if p.Time >= bounds[i] {
				v[i] += p.Value
			}
		}
		sums[s.Device] = v
	}
	horizon := max(r.today()+1, d1)
	r.mu.Lock()
	defer r.mu.Unlock()
	byDev := r.series[m]
	replaced := 0
	if devices == nil {
		for _, s := range byDev {
			s.zero(d0, d1)
		}
	} else {
		for _, d := range devices {
			if s := byDev[d]; s != nil {
				s.zero(d0, d1)
			}
		}
		replaced = len(devices) * n
	}
	for dev, v := range sums {
		s := byDev[dev]
		for i, x := range v {
			if x == 0 && (s == nil || !s.covers(d0+int32(i))) {
				continue // a zero outside the series is already what it reads as
			}
			if s == nil {
				s = &daySeries{first: d0 + int32(i), vals: make([]float64, 0, int(horizon-d0)-i)}
				byDev[dev] = s
			}
			s.set(d0+int32(i), x)
		}
		if devices == nil {
			replaced += n
		}
	}
	return replaced, nil
}

// Observe is the ingest writer's hook: it marks the (device, day) buckets of the delta readings of a stored
// batch dirty. It never adds a value (a redelivered reading would count twice); Refresh re-reads the buckets.
// It is cheap and safe for concurrent use.
func (r *Rollups) Observe(rs []hv.Reading) {
	var (
		lastT   int64 = -1 << 63
		lastDay int32
	)
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	for i := range rs {
		rd := &rs[i]
		if rd.Device == "" || !isRollupMetric(rd.Metric) {
			continue
		}
		if rd.Time != lastT { // a batch carries runs of readings of one instant
			lastT, lastDay = rd.Time, r.dayOf(rd.Time)
		}
		if lastDay < r.since {
			continue
		}
		k := dayKey{rd.Metric, lastDay}
		dd := r.dirty[k]
		if dd == nil {
			dd = &dirtyDay{devices: map[string]struct{}{}}
			r.dirty[k] = dd
		}
		if dd.all {
			continue
		}
		dd.devices[rd.Device] = struct{}{}
		if len(dd.devices) > r.cfg.MaxDeviceFilter {
			dd.all, dd.devices = true, nil
		}
	}
}

// Refresh re-reads from the store every bucket marked dirty and replaces it. On an error the buckets not
// re-read stay dirty for the next call.
func (r *Rollups) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	r.dirtyMu.Lock()
	snap := r.dirty
	r.dirty = map[dayKey]*dirtyDay{}
	r.dirtyMu.Unlock()
	if len(snap) == 0 {
		return nil
	}
	keys := make([]dayKey, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dayKey) int {
		if c := cmp.Compare(a.metric, b.metric); c != 0 {
			return c
		}
		return cmp.Compare(a.day, b.day)
	})
	for i, k := range keys {
		dd := snap[k]
		var devices []string
		if !dd.all {
			devices = make([]string, 0, len(dd.devices))
			for d := range dd.devices {
				devices = append(devices, d)
			}
			slices.Sort(devices)
		}
		n, err := r.reload(ctx, k.metric, k.day, k.day+1, devices)
		if err != nil {
			r.requeue(snap, keys[i:])
			return fmt.Errorf("rollups: refresh: %w", err)
		}
		r.reread.Add(int64(n))
	}
	r.refreshes.Add(1)
	return nil
}

// requeue gives buckets a failed refresh did not re-read back to the dirty set.
func (r *Rollups) requeue(snap map[dayKey]*dirtyDay, keys []dayKey) {
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	for _, k := range keys {
		old := snap[k]
		cur := r.dirty[k]
		switch {
		case cur == nil:
			r.dirty[k] = old
		case cur.all:
		case old.all:
			r.dirty[k] = old
		default:
			for d := range old.devices {
				cur.devices[d] = struct{}{}
			}
			if len(cur.devices) > r.cfg.MaxDeviceFilter {
				cur.all, cur.devices = true, nil
			}
		}
	}
}

// dirtyWithin reports whether a bucket of one of metrics in days [d0, d1) is dirty.
func (r *Rollups) dirtyWithin(metrics []hv.Metric, d0, d1 int32) bool {
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	for k := range r.dirty {
		if k.day >= d0 && k.day < d1 && slices.Contains(metrics, k.metric) {
			return true
		}
	}
	return false
}

// Run builds the rollups (retrying while the store is unavailable), then refreshes the dirty buckets every
// RefreshEvery and re-reads the recent days every RecheckEvery, until ctx ends. It logs its errors: it is
// the edge.
func (r *Rollups) Run(ctx context.Context) error {
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for !r.Ready() {
		err := r.Build(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("rollups: build failed, retrying", "err", err, "in", r.cfg.RefreshEvery)
		if !wait(r.cfg.RefreshEvery) {
			return nil
		}
	}
	refresh := time.NewTicker(r.cfg.RefreshEvery)
	defer refresh.Stop()
	var recheck <-chan time.Time
	if r.cfg.RecheckEvery > 0 && r.cfg.RecentDays > 0 {
		t := time.NewTicker(r.cfg.RecheckEvery)
		defer t.Stop()
		recheck = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			if err := r.Refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
				r.log.Warn("rollups: refresh failed; the dirty days stay dirty", "err", err)
			}
		case <-recheck:
			today := r.today()
			if err := r.reloadDays(ctx, max(today-int32(r.cfg.RecentDays)+1, r.since), today+1); err != nil &&
				!errors.Is(err, context.Canceled) {
				r.log.Warn("rollups: recheck of the recent days failed", "err", err)
			}
		}
	}
}

// RollupStats describe the rollups.
type RollupStats struct {
	Ready      bool  `json:"ready"`
	Series     int   `json:"series"`      // (device, metric) pairs held
	DeviceDays int   `json:"device_days"` // days held, all series together
	Bytes      int64 `json:"bytes"`       // values allocated (8 B a day, capacity included), without map overhead
	DirtyDays  int   `json:"dirty_days"`  // (metric, day) buckets waiting for a refresh
	Refreshes  int64 `json:"refreshes"`
	Reread     int64 `json:"reread_device_days"` // device-days re-read by refreshes since the start
}

// Stats returns the rollups' size and activity.
func (r *Rollups) Stats() RollupStats {
	st := RollupStats{Ready: r.Ready(), Refreshes: r.refreshes.Load(), Reread: r.reread.Load()}
	r.mu.RLock()
	for _, byDev := range r.series {
		for _, s := range byDev {
			st.Series++
			st.DeviceDays += len(s.vals)
			st.Bytes += int64(cap(s.vals)) * 8
		}
	}
	r.mu.RUnlock()
	r.dirtyMu.Lock()
	st.DirtyDays = len(r.dirty)
	r.dirtyMu.Unlock()
	return st
}

// Day returns the rolled-up consumption of a device's metric on the local date of day (0 when none).
func (r *Rollups) Day(device string, metric hv.Metric, day time.Time) float64 {
	d := dayOfTime(day.In(r.loc))
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.series[metric][device]; s != nil {
		return s.sum(d, d+1)
	}
	return 0
}

// daySeries is one (device, metric)'s daily values from day first on.
type daySeries struct {
	first int32
	vals  []float64
}

func (s *daySeries) covers(d int32) bool { return d >= s.first && int(d-s.first) < len(s.vals) }

func (s *daySeries) set(d int32, v float64) {
	if d < s.first {
		n := int(s.first - d)
		grown := make([]float64, n+len(s.vals), n+cap(s.vals))
		copy(grown[n:], s.vals)
		s.vals, s.first = grown, d
	}
	i := int(d - s.first)
	if i >= len(s.vals) {
		l := len(s.vals)
		s.vals = slices.Grow(s.vals, i+1-l)[:i+1]
		clear(s.vals[l:])
	}
	s.vals[i] = v
}

// zero clears days [d0, d1) where the series has them.
func (s *daySeries) zero(d0, d1 int32) {
	a, b := s.clamp(d0, d1)
	clear(s.vals[a:b])
}

// sum adds days [d0, d1).
func (s *daySeries) sum(d0, d1 int32) float64 {
	a, b := s.clamp(d0, d1)
	var t float64
	for _, v := range s.vals[a:b] {
		t += v
	}
	return t
}

func (s *daySeries) clamp(d0, d1 int32) (int, int) {
	a := int(min(max(d0-s.first, 0), int32(len(s.vals)))) // a range after the series is empty, not out of range
	b := int(min(d1-s.first, int32(len(s.vals))))
	if b < a {
		b = a
	}
	return a, b
}
