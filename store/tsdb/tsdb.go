// Package tsdb is the embedded time-series engine of hyperviseur, built on the Prometheus TSDB
// (github.com/prometheus/prometheus/tsdb): a write-ahead log, a compacted block store, retention and an
// out-of-order window, in-process, with no server to run.
//
// A reading becomes one float sample of the series
//
//	{__name__=<metric>, device=…, site=…, commune=…, epci=…, fluid=…}
//
// with empty labels left out, at its Unix millisecond time.
//
// # Durability
//
// Write returns nil only after the head appender's Commit has written the batch to the WAL (and the
// out-of-order samples to the WBL). Line numbers below are of prometheus v0.310.0:
//
//   - Commit logs the records before touching memory and fails (rolling back) if that fails
//     (tsdb/head_append.go:1725-1728).
//   - WL.Log (tsdb/wlog/wlog.go:657) copies each record into a 32 KiB page and, for the final record of the
//     batch, flushes the page (wlog.go:773-778) with flushPage (wlog.go:583): one write(2) to the segment
//     file, opened O_WRONLY|O_APPEND without O_SYNC (wlog.go:152). When Commit returns, the batch is in the
//     kernel's page cache: it survives the process dying (kill -9, panic, OOM kill) and is replayed by the
//     next Open.
//   - There is no fsync on commit. A segment is fsynced only when the log moves to the next one (every
//     128 MiB by default, asynchronously: nextSegment, wlog.go:530-562) and on Close (wlog.go:863). A power
//     cut or kernel crash can lose what was committed since the last rotation; that is the durability
//     Prometheus itself offers.
//   - Out-of-order samples go to the WBL after the in-memory commit, same write(2) discipline; a failure to
//     write them is only logged by tsdb (head_append.go:1785-1793), Commit still returns nil.
//
// # Duplicates and conflicts
//
// A sample identical (same series, time and value) to the newest one of its series is accepted silently. An
// identical sample older than the newest goes to the out-of-order head, and queries and compactions merge
// the samples of one series and time into one: either way it is stored once (the Duplicates case of
// storetest checks both). A sample with the same time as the newest one but another value is refused by
// tsdb (there is no last-write-wins): Write skips it, commits the others of the batch and returns an error
// wrapping hyperviseur.ErrInvalid. The same goes for a sample older than the out-of-order window behind the
// newest sample of the whole store. A conflict with an older (non-newest) sample, or two samples of one
// series with the same time inside one batch, cannot be seen at append time: no error, and one of the two
// values is kept.
package tsdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	hv "github.com/useda02/hyperviseur"
)

// Label names of a series, besides __name__ (the metric).
const (
	LabelDevice  = "device"
	LabelSite    = "site"
	LabelCommune = "commune"
	LabelEPCI    = "epci"
	LabelFluid   = "fluid"
)

// MinOutOfOrderWindow is the default and smallest out-of-order window: a meter that comes back after a week
// offline still gets its buffered readings stored.
const MinOutOfOrderWindow = 7 * 24 * time.Hour

// maxCachedSeries bounds the appender's series cache; past it the cache is dropped and refilled, which costs
// one label lookup per series.
const maxCachedSeries = 1 << 21

// Options tune the engine. The zero value is usable.
type Options struct {
	// Retention drops blocks older than this behind the newest data; 0 keeps everything.
	Retention time.Duration
	// OutOfOrderWindow is how far behind the newest sample of the store a sample may still be written;
	// below MinOutOfOrderWindow (and when 0) it is MinOutOfOrderWindow.
	OutOfOrderWindow time.Duration
	// Registerer, if set, receives the tsdb's own metrics (prometheus_tsdb_*).
	Registerer prometheus.Registerer
}

// Stats counts the samples Write skipped since Open.
type Stats struct {
	Invalid    uint64 // unknown metric, empty device, NaN/Inf value, invalid UTF-8
	Conflicts  uint64 // same time as the newest sample of the series, another value
	TooOld     uint64 // older than the out-of-order window
	OtherError uint64 // any other per-sample refusal of tsdb
}

// Store is the embedded engine. It is safe for concurrent use.
type Store struct {
	db       *ptsdb.DB
	dir      string
	log      *slog.Logger
	blockDur int64 // the largest block, in ms: Backfill writes blocks of this range
	keep     int64 // the retention in ms, 0 for none

	mu     sync.RWMutex // held for reading by every operation, for writing by Close
	closed bool

	cacheMu sync.RWMutex
	cache   map[seriesKey]cachedSeries

	invalid, conflicts, tooOld, otherErr atomic.Uint64
}

var _ hv.Store = (*Store)(nil)

type seriesKey struct {
	metric                      hv.Metric
	device, site, commune, epci string
	fluid                       hv.Fluid
}

type cachedSeries struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

// Open opens (creating it if needed) the database in dir, replaying its WAL. Only one Store may hold a
// directory at a time (tsdb takes a lock file).
func Open(dir string, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ooo := max(opts.OutOfOrderWindow, MinOutOfOrderWindow)
	if opts.Retention < 0 {
		return nil, fmt.Errorf("tsdb: open: retention: %w: must not be negative", hv.ErrInvalid)
	}
	if opts.Retention > 0 && opts.Retention < ooo {
		return nil, fmt.Errorf("tsdb: open: retention %s: %w: shorter than the out-of-order window %s",
			opts.Retention, hv.ErrInvalid, ooo)
	}
	o := ptsdb.DefaultOptions()
	o.RetentionDuration = opts.Retention.Milliseconds()
	o.OutOfOrderTimeWindow = ooo.Milliseconds()
	// As Prometheus does: blocks grow up to a tenth of the retention (at most 31 days) so that retention
	// can drop whole blocks without keeping much more than asked.
	maxBlock := int64(31 * 24 * time.Hour / time.Millisecond)
	if r := o.RetentionDuration / 10; r > 0 && r < maxBlock {
		maxBlock = r
	}
	o.MaxBlockDuration = max(maxBlock, o.MinBlockDuration)
	// Blocks Backfill moves into the directory are picked up at the next reload.
	o.BlockReloadInterval = blockReloadInterval
	db, err := ptsdb.Open(dir, logger.With("component", "tsdb"), opts.Registerer, o, nil)
	if err != nil {
		return nil, fmt.Errorf("tsdb: open %s: %w", dir, err)
	}
	return &Store{db: db, dir: dir, log: logger, blockDur: o.MaxBlockDuration, keep: o.RetentionDuration, cache: make(map[seriesKey]cachedSeries)}, nil
}

// Stats returns the counts of skipped samples.
func (s *Store) Stats() Stats {
	return Stats{Invalid: s.invalid.Load(), Conflicts: s.conflicts.Load(), TooOld: s.tooOld.Load(),
		OtherError: s.otherErr.Load()}
}

var errClosed = fmt.Errorf("tsdb: %w: store closed", hv.ErrUnavailable)

// Write appends the readings in one transaction and commits it to the WAL (see the package doc for what that
// guarantees). Readings tsdb refuses one by one (invalid, conflicting, too old) are skipped and the others
// committed; Write then returns an error wrapping hyperviseur.ErrInvalid, and retrying would not help. An error
// wrapping hyperviseur.ErrUnavailable means nothing was committed.
func (s *Store) Write(ctx context.Context, rs []hv.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tsdb: write: %w: %w", hv.ErrUnavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	app := s.db.Appender(ctx)
	var rej rejections
	for i := range rs {
		r := &rs[i]
		if err := checkReading(r); err != nil {
			s.invalid.Add(1)
			rej.add(err)
			continue
		}
		k := seriesKey{r.Metric, r.Device, r.Site, r.Commune, r.EPCI, r.Fluid}
		c, ok := s.lookup(k)
		if !ok {
			c.lset = seriesLabels(r)
		}
		// A cached ref that tsdb has since garbage-collected is not found by Append, which then falls back
		// to the labels: refs are never reused within a process, so a stale ref cannot hit another series.
		ref, err := app.Append(c.ref, c.lset, r.Time, r.Value)
		if err != nil {
			rej.add(s.classify(r, err))
			continue
		}
		if ref != c.ref {
			s.remember(k, cachedSeries{ref, c.lset})
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("tsdb: write: %w: %w", hv.ErrUnavailable, err)
	}
	return rej.err(len(rs))
}

func (s *Store) lookup(k seriesKey) (cachedSeries, bool) {
	s.cacheMu.RLock()
	c, ok := s.cache[k]
	s.cacheMu.RUnlock()
	return c, ok
}

func (s *Store) remember(k seriesKey, c cachedSeries) {
	s.cacheMu.Lock()
	if len(s.cache) >= maxCachedSeries {
		clear(s.cache)
	}
	s.cache[k] = c
	s.cacheMu.Unlock()
}

// classify turns a per-sample refusal of tsdb into an error wrapping ErrInvalid and counts it.
func (s *Store) classify(r *hv.Reading, err error) error {
	switch {
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		s.conflicts.Add(1)
	case errors.Is(err, storage.ErrTooOldSample), errors.Is(err, storage.ErrOutOfBounds),
		errors.Is(err, storage.ErrOutOfOrderSample):
		s.tooOld.Add(1)
	default:
		s.otherErr.Add(1)
	}
	return fmt.Errorf("%s %s at %d: %w", r.Device, r.Metric, r.Time, err)
}

func checkReading(r *hv.Reading) error {
	if err := checkLabels(r); err != nil {
		return err
	}
	return checkSample(r)
}

// checkLabels checks what makes a reading's series.
func checkLabels(r *hv.Reading) error {
	switch {
	case r.Device == "":
		return fmt.Errorf("reading of %s at %d: empty device", r.Metric, r.Time)
	case !utf8.ValidString(r.Device) || !utf8.ValidString(r.Site) || !utf8.ValidString(r.Commune) ||
		!utf8.ValidString(r.EPCI) || !utf8.ValidString(string(r.Fluid)):
		return fmt.Errorf("%q %s: labels are not valid UTF-8", r.Device, r.Metric)
	}
	return nil
}

// checkSample checks the metric and value of a reading whose labels are valid.
func checkSample(r *hv.Reading) error {
	switch {
	case !r.Metric.Known():
		return fmt.Errorf("%s: unknown metric %q", r.Device, r.Metric)
	case !hv.ValidValue(r.Value):
		return fmt.Errorf("%s %s at %d: value %v", r.Device, r.Metric, r.Time, r.Value)
	}
	return nil
}

func seriesLabels(r *hv.Reading) labels.Labels {
	b := labels.NewScratchBuilder(6)
	b.Add(labels.MetricName, string(r.Metric))
	b.Add(LabelDevice, r.Device)
	for _, l := range [...]struct{ n, v string }{
		{LabelSite, r.Site}, {LabelCommune, r.Commune}, {LabelEPCI, r.EPCI}, {LabelFluid, string(r.Fluid)},
	} {
		if l.v != "" {
			b.Add(l.n, l.v)
		}
	}
	b.Sort()
	return b.Labels()
}

// rejections collects the readings a batch skipped; the first few are kept for the message.
type rejections struct {
	n     int
	first []error
}

func (r *rejections) add(err error) {
	r.n++
	if len(r.first) < 3 {
		r.first = append(r.first, err)
	}
}

func (r *rejections) err(total int) error {
	if r.n == 0 {
		return nil
	}
	return fmt.Errorf("tsdb: write: %w: %d of %d readings skipped: %w", hv.ErrInvalid, r.n, total,
		errors.Join(r.first...))
}

// Query returns the series of q, one per device (a device whose labels changed over time has its points
// merged, labelled as in its newest point), sorted by device.
func (s *Store) Query(ctx context.Context, q hv.Query) ([]hv.Series, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("tsdb: query: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	ms, err := matchers(q)
	if err != nil {
		return nil, fmt.Errorf("tsdb: query: %w", err)
	}
	// tsdb bounds are inclusive; the query's To is not.
	querier, err := s.db.Querier(q.From, q.To-1)
	if err != nil {
		return nil, fmt.Errorf("tsdb: query: %w", err)
	}
	defer querier.Close()
	set := querier.Select(ctx, false, &storage.SelectHints{Start: q.From, End: q.To - 1}, ms...)

	type acc struct {
		series hv.Series
		newest int64 // time of the newest point of the label set the labels come from
		merged bool
	}
	byDevice := make(map[string]*acc)
	var it chunkenc.Iterator
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("tsdb: query: %w", err)
		}
		se := set.At()
		ls := se.Labels()
		dev := ls.Get(LabelDevice)
		a := byDevice[dev]
		var pts []hv.Point
		if a != nil {
			pts = a.series.Points
		}
		n0 := len(pts)
		it = se.Iterator(it)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			if typ != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			if t >= q.From && t < q.To {
				pts = append(pts, hv.Point{Time: t, Value: v})
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("tsdb: query: read %s: %w", dev, err)
		}
		if len(pts) == n0 {
			continue
		}
		newest := pts[len(pts)-1].Time
		switch {
		case a == nil:
			a = &acc{series: seriesOf(ls, q.Metric), newest: newest}
			byDevice[dev] = a
		default:
			a.merged = true
			if newest > a.newest {
				a.series = seriesOf(ls, q.Metric)
				a.newest = newest
			}
		}
		a.series.Points = pts
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("tsdb: query: %w", err)
	}
	out := make([]hv.Series, 0, len(byDevice))
	for _, a := range byDevice {
		if a.merged {
			slices.SortStableFunc(a.series.Points, func(x, y hv.Point) int { return cmp.Compare(x.Time, y.Time) })
		}
		if q.Every > 0 {
			a.series.Points = hv.Aggregate(a.series.Points, q.Every, q.Agg)
		}
		out = append(out, a.series)
	}
	slices.SortFunc(out, func(x, y hv.Series) int { return strings.Compare(x.Device, y.Device) })
	return out, nil
}

func seriesOf(ls labels.Labels, m hv.Metric) hv.Series {
	return hv.Series{
		Device:  ls.Get(LabelDevice),
		Metric:  m,
		Unit:    m.Unit(),
		Site:    ls.Get(LabelSite),
		Commune: ls.Get(LabelCommune),
		EPCI:    ls.Get(LabelEPCI),
		Fluid:   hv.Fluid(ls.Get(LabelFluid)),
	}
}

// matchers translates the query's filters. Several values become an anchored alternation of quoted
// literals; an empty value also matches series without the label, as Query.Matches wants for an
// unregistered device.
func matchers(q hv.Query) ([]*labels.Matcher, error) {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, string(q.Metric))}
	add := func(name string, vals []string) error {
		switch len(vals) {
		case 0:
			return nil
		case 1:
			ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, name, vals[0]))
			return nil
		}
		quoted := make([]string, len(vals))
		for i, v := range vals {
			quoted[i] = regexp.QuoteMeta(v)
		}
		m, err := labels.NewMatcher(labels.MatchRegexp, name, strings.Join(quoted, "|"))
		if err != nil {
			return fmt.Errorf("%s filter: %w: %w", name, hv.ErrInvalid, err)
		}
		ms = append(ms, m)
		return nil
	}
	fluids := make([]string, len(q.Fluids))
	for i, f := range q.Fluids {
		fluids[i] = string(f)
	}
	for _, f := range []struct {
		name string
		vals []string
	}{
		{LabelDevice, q.Devices}, {LabelSite, q.Sites}, {LabelCommune, q.Communes}, {LabelEPCI, q.EPCIs},
		{LabelFluid, fluids},
	} {
		if err := add(f.name, f.vals); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// Last returns, for each device and metric among metrics, the newest reading with a time in [since, now],
// sorted by device then metric. Only the chunks that can hold the newest sample are decoded.
func (s *Store) Last(ctx context.Context, metrics []hv.Metric, since int64) ([]hv.Reading, error) {
	if len(metrics) == 0 {
		return []hv.Reading{}, nil
	}
	now := time.Now().UnixMilli()
	if since > now {
		return []hv.Reading{}, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = regexp.QuoteMeta(string(m))
	}
	m, err := labels.NewMatcher(labels.MatchRegexp, labels.MetricName, strings.Join(names, "|"))
	if err != nil {
		return nil, fmt.Errorf("tsdb: last: %w: %w", hv.ErrInvalid, err)
	}
	cq, err := s.db.ChunkQuerier(since, now)
	if err != nil {
		return nil, fmt.Errorf("tsdb: last: %w", err)
	}
	defer cq.Close()
	set := cq.Select(ctx, false, &storage.SelectHints{Start: since, End: now}, m)

	newest := hv.Newest{}
	var (
		metas []chunks.Meta
		cit   chunks.Iterator
		sit   chunkenc.Iterator
	)
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("tsdb: last: %w", err)
		}
		se := set.At()
		metas = metas[:0]
		cit = se.Iterator(cit)
		for cit.Next() {
			metas = append(metas, cit.At())
		}
		if err := cit.Err(); err != nil {
			return nil, fmt.Errorf("tsdb: last: %w", err)
		}
		slices.SortFunc(metas, func(a, b chunks.Meta) int { return cmp.Compare(b.MaxTime, a.MaxTime) })
		bestT, found := int64(math.MinInt64), false
		var bestV float64
		for _, c := range metas {
			if found && c.MaxTime < bestT {
				break // chunks come newest first: none further can hold a newer sample
			}
			if c.Chunk == nil {
				continue
			}
			sit = c.Chunk.Iterator(sit)
			for typ := sit.Next(); typ != chunkenc.ValNone; typ = sit.Next() {
				if typ != chunkenc.ValFloat {
					continue
				}
				t, v := sit.At()
				if t > now {
					break
				}
				if t >= since && (!found || t >= bestT) {
					bestT, bestV, found = t, v, true
				}
			}
			if err := sit.Err(); err != nil {
				return nil, fmt.Errorf("tsdb: last: %w", err)
			}
		}
		if !found {
			continue
		}
		ls := se.Labels()
		r := hv.Reading{
			Device: ls.Get(LabelDevice), Metric: hv.Metric(ls.Get(labels.MetricName)), Value: bestV, Time: bestT,
			Site: ls.Get(LabelSite), Commune: ls.Get(LabelCommune), EPCI: ls.Get(LabelEPCI),
			Fluid: hv.Fluid(ls.Get(LabelFluid)),
		}
		newest.Add(r)
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("tsdb: last: %w", err)
	}
	return newest.Sorted(), nil
}

// Ping reports whether the store is open and its directory writable.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	f, err := os.CreateTemp(s.dir, ".ping-*")
	if err != nil {
		return fmt.Errorf("tsdb: ping: %w: %w", hv.ErrUnavailable, err)
	}
	name := f.Name()
	err = f.Close()
	if rmErr := os.Remove(name); err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("tsdb: ping: %w: %w", hv.ErrUnavailable, err)
	}
	return nil
}

// Close waits for running operations, then closes the database: the WAL's last page is written and the
// segment fsynced.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("tsdb: close: %w", err)
	}
	return nil
}
