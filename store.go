package hyperviseur

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Store is a time-series store of readings. Every engine (embedded TSDB, InfluxDB) passes the same conformance
// suite (store/storetest), so a query gives the same answer whichever engine holds the data.
type Store interface {
	// Write stores readings durably: when it returns nil the readings survive a crash of the process.
	// Writing a reading twice (same device, metric, tags and time) stores it once.
	Write(ctx context.Context, rs []Reading) error
	// Query returns one series per (device, metric) matching q, sorted by device.
	Query(ctx context.Context, q Query) ([]Series, error)
	// Last returns the newest reading of each (device, metric) for the given metrics with a time in
	// [since, now]: ingest restores its counter state from it at start.
	Last(ctx context.Context, metrics []Metric, since int64) ([]Reading, error)
	// Ping checks that the store is reachable and writable.
	Ping(ctx context.Context) error
	Close() error
}

// Agg is a window aggregate.
type Agg string

// Aggregates of the series API.
const (
	AggNone     Agg = "" // raw points
	AggMean     Agg = "mean"
	AggSum      Agg = "sum"
	AggMin      Agg = "min"
	AggMax      Agg = "max"
	AggLast     Agg = "last"
	AggCount    Agg = "count"
	AggIncrease Agg = "increase"
)

// ParseAgg validates an aggregate name.
func ParseAgg(s string) (Agg, error) {
	switch a := Agg(s); a {
	case AggNone, AggMean, AggSum, AggMin, AggMax, AggLast, AggCount, AggIncrease:
		return a, nil
	}
	return "", fmt.Errorf("agg %q: %w: want mean|sum|min|max|last|count|increase", s, ErrInvalid)
}

// Query selects readings of one metric in [From, To) (Unix ms). Filters are ORed within a field and ANDed
// across fields; an empty filter matches everything. With Every > 0 the points are aggregated in windows
// aligned on the Unix epoch, each labelled with its start; Agg defaults to mean then.
type Query struct {
	Metric   Metric
	From, To int64
	Devices  []string
	Sites    []string
	Communes []string
	EPCIs    []string
	Fluids   []Fluid
	Every    int64 // window in ms; 0 = raw points
	Agg      Agg
}

// Validate checks a query before it reaches an engine.
func (q Query) Validate() error {
	switch {
	case !q.Metric.Known():
		return fmt.Errorf("metric %q: %w: not a canonical metric", q.Metric, ErrInvalid)
	case q.To <= q.From:
		return fmt.Errorf("range: %w: to must be after from", ErrInvalid)
	case q.Every < 0:
		return fmt.Errorf("every: %w: must be positive", ErrInvalid)
	case q.Every > 0 && q.Every < 1000:
		return fmt.Errorf("every: %w: must be at least 1s", ErrInvalid)
	case q.Every == 0 && q.Agg != AggNone:
		return fmt.Errorf("agg: %w: needs every", ErrInvalid)
	}
	if _, err := ParseAgg(string(q.Agg)); err != nil {
		return err
	}
	return nil
}

// Matches reports whether a reading's labels pass the query's filters (not its time range).
func (q Query) Matches(r Reading) bool {
	return r.Metric == q.Metric && in(q.Devices, r.Device) && in(q.Sites, r.Site) &&
		in(q.Communes, r.Commune) && in(q.EPCIs, r.EPCI) && in(q.Fluids, r.Fluid)
}

func in[T comparable](set []T, v T) bool { return len(set) == 0 || slices.Contains(set, v) }

// Series is the points of one (device, metric), with the device's labels.
type Series struct {
	Device  string  `json:"device"`
	Metric  Metric  `json:"metric"`
	Unit    string  `json:"unit"`
	Site    string  `json:"site,omitempty"`
	Commune string  `json:"commune,omitempty"`
	EPCI    string  `json:"epci,omitempty"`
	Fluid   Fluid   `json:"fluid,omitempty"`
	Points  []Point `json:"points"`
}

// Point is one timestamped value (Unix ms).
type Point struct {
	Time  int64   `json:"t"`
	Value float64 `json:"v"`
}

// Aggregate folds raw points (sorted by time) into windows of every ms aligned on the epoch, each labelled
// with its start; empty windows are left out. Engines that cannot push an aggregate down use this, so the
// definition is written once. increase is reset-aware: the sum over consecutive points of the rise, or of the
// new value when the index went down; a window counts the rises that end inside it, so windows add up to the
// increase of the whole range.
func Aggregate(points []Point, every int64, agg Agg) []Point {
	if every <= 0 || len(points) == 0 {
		return points
	}
	if agg == AggNone {
		agg = AggMean
	}
	var out []Point
	var (
		start       = WindowStart(points[0].Time, every)
		acc         float64
		n           int
		prev        float64
		havePrev    bool
		flushWindow = func() {
			if n == 0 {
				return
			}
			v := acc
			switch agg {
			case AggMean:
				v = acc / float64(n)
			case AggCount:
				v = float64(n)
			}
			out = append(out, Point{Time: start, Value: v})
		}
	)
	for _, p := range points {
		if w := WindowStart(p.Time, every); w != start {
			flushWindow()
			start, acc, n = w, 0, 0
		}
		switch agg {
		case AggMean, AggSum:
			acc += p.Value
		case AggMin:
			if n == 0 || p.Value < acc {
				acc = p.Value
			}
		case AggMax:
			if n == 0 || p.Value > acc {
				acc = p.Value
			}
		case AggLast:
			acc = p.Value
		case AggIncrease:
			if havePrev {
				if d := p.Value - prev; d >= 0 {
					acc += d
				} else {
					acc += p.Value
				}
			}
		}
		prev, havePrev = p.Value, true
		n++
	}
	flushWindow()
	return out
}

// WindowStart is the start of the epoch-aligned window of every ms holding t.
func WindowStart(t, every int64) int64 {
	w := t - t%every
	if t < 0 && t%every != 0 {
		w -= every
	}
	return w
}

// ValidValue reports whether v can be stored (not NaN nor ±Inf).
func ValidValue(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Newest keeps the newest reading of each (device, metric): engines build Store.Last with it.
type Newest map[newestKey]Reading

type newestKey struct {
	device string
	metric Metric
}

// Add keeps r if it is the newest of its (device, metric) so far.
func (n Newest) Add(r Reading) {
	k := newestKey{r.Device, r.Metric}
	if old, ok := n[k]; !ok || r.Time > old.Time {
		n[k] = r
	}
}

// Sorted returns the readings kept, by device then metric.
func (n Newest) Sorted() []Reading {
	out := make([]Reading, 0, len(n))
	for _, r := range n {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reading) int {
		if a.Device != b.Device {
			return strings.Compare(a.Device, b.Device)
		}
		return strings.Compare(string(a.Metric), string(b.Metric))
	})
	return out
}

// Backfiller is a Store that takes history faster than through Write: a year of hourly readings of a fleet
// goes straight into its long-term storage, without the write-ahead log or the out-of-order window that
// bound Write. The embedded engine is one; an engine that is not gets the history through Write (Backfill).
type Backfiller interface {
	// Backfill stores the readings fill emits for [from, to). The engine calls fill for consecutive windows
	// covering that range, in order, each window by several workers at once (worker w of workers): fill must
	// emit, for its share of the series, each series in time order and only readings of the window.
	// Backfill returns once the history is durable and visible to Query and Last.
	Backfill(ctx context.Context, from, to int64, fill BackfillFunc) error
}

// BackfillFunc emits the history of window [from, to) (Unix ms) for the share of the series worker w of
// workers owns, through emit, which is not safe for use by other workers.
type BackfillFunc func(ctx context.Context, from, to int64, worker, workers int, emit func([]Reading) error) error

// backfillBatch is the size of the batches Backfill writes through Store.Write.
const backfillBatch = 5000

// Backfill writes history through s's Backfiller when it has one, otherwise through Write in batches, in a
// single window and with one worker.
func Backfill(ctx context.Context, s Store, from, to int64, fill BackfillFunc) error {
	if b, ok := s.(Backfiller); ok {
		return b.Backfill(ctx, from, to, fill)
	}
	batch := make([]Reading, 0, backfillBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.Write(ctx, batch)
		batch = batch[:0]
		return err
	}
	err := fill(ctx, from, to, 0, 1, func(rs []Reading) error {
		for len(rs) > 0 {
			n := min(len(rs), cap(batch)-len(batch))
			batch = append(batch, rs[:n]...)
			rs = rs[n:]
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
