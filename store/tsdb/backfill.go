package tsdb

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"golang.org/x/sync/errgroup"

	hv "github.com/useda02/hyperviseur"
)

// blockReloadInterval is how often tsdb looks for new blocks in its directory: the longest a backfill waits
// for its blocks to become visible.
const blockReloadInterval = 2 * time.Second

// backfillLoadTimeout bounds that wait.
const backfillLoadTimeout = 30 * time.Second

var _ hv.Backfiller = (*Store)(nil)

// Backfill writes history straight into blocks, as promtool's backfilling does: one block per window of the
// store's largest block range (aligned on the epoch like tsdb's own), each built in a private in-memory head
// by GOMAXPROCS workers at once, compacted into the store's directory (tsdb writes a block under a temporary
// name and renames it, so a block is whole or absent), then picked up at tsdb's next block reload. The WAL
// and the out-of-order window play no part: a year of history goes in before or after live data, and the
// head holding the live data is untouched.
//
// History older than the retention behind to would be deleted at the next reload: Backfill starts at the
// retention's edge instead, and logs it.
//
// A reading outside its window, or one Write would refuse as invalid, fails the backfill with an error
// wrapping hyperviseur.ErrInvalid; blocks of earlier windows stay. Samples for a series and time already
// stored are merged with them by queries and compactions: written once, as with Write.
func (s *Store) Backfill(ctx context.Context, from, to int64, fill hv.BackfillFunc) error {
	if s.keep > 0 && from < to-s.keep {
		s.log.Warn("backfill starts at the retention's edge: older history would be deleted at once",
			"asked", time.UnixMilli(from).UTC().Format(time.RFC3339), "from", time.UnixMilli(to-s.keep).UTC().Format(time.RFC3339))
		from = to - s.keep
	}
	if from >= to {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	var ids []ulid.ULID
	for start := from; start < to; {
		end := min(to, (floorDiv(start, s.blockDur)+1)*s.blockDur)
		id, err := s.backfillWindow(ctx, start, end, workers, fill)
		if err != nil {
			return fmt.Errorf("tsdb: backfill %s to %s: %w", time.UnixMilli(start).UTC().Format(time.RFC3339),
				time.UnixMilli(end).UTC().Format(time.RFC3339), err)
		}
		if id != (ulid.ULID{}) {
			ids = append(ids, id)
		}
		start = end
	}
	return s.waitLoaded(ctx, ids)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// backfillWindow builds the block of [from, to); the zero ULID when fill emitted nothing.
func (s *Store) backfillWindow(ctx context.Context, from, to int64, workers int, fill hv.BackfillFunc) (ulid.ULID, error) {
	// The head accepts a sample no older than its newest minus half its chunk range: twice the window lets
	// workers emit series after series, each from the window's start.
	w, err := ptsdb.NewBlockWriter(s.log.With("component", "tsdb-backfill"), s.dir, 2*(to-from)+1)
	if err != nil {
		return ulid.ULID{}, err
	}
	defer w.Close()
	counts := make([]int, workers)
	g, gctx := errgroup.WithContext(ctx)
	for i := range workers {
		g.Go(func() error {
			bw := backfillWorker{newApp: func() storage.Appender { return w.Appender(gctx) }, from: from, to: to}
			bw.app = bw.newApp()
			if err := fill(gctx, from, to, i, workers, bw.emit); err != nil {
				return err // the window's head is dropped, uncommitted samples with it
			}
			counts[i] = bw.n
			return bw.app.Commit()
		})
	}
	if err := g.Wait(); err != nil {
		return ulid.ULID{}, err
	}
	if slices.Max(counts) == 0 {
		return ulid.ULID{}, nil
	}
	return w.Flush(ctx)
}

// backfillWorker appends one worker's readings to the window's head. History comes series after series of a
// device after another: the labels are checked and the series refs looked up once per device.
type backfillWorker struct {
	app      storage.Appender
	newApp   func() storage.Appender // an appender must not be used after its Commit
	from, to int64
	n        int

	device, site, commune, epci string // labels of the device being appended
	fluid                       hv.Fluid
	refs                        []metricRef // its series so far
}

type metricRef struct {
	metric hv.Metric
	ref    storage.SeriesRef
}

// commitEvery bounds what one worker holds uncommitted.
const commitEvery = 1 << 16

func (b *backfillWorker) emit(rs []hv.Reading) error {
	for i := range rs {
		r := &rs[i]
		if r.Device != b.device || r.Site != b.site || r.Commune != b.commune || r.EPCI != b.epci || r.Fluid != b.fluid {
			if err := checkLabels(r); err != nil {
				return fmt.Errorf("%w: %w", hv.ErrInvalid, err)
			}
			b.device, b.site, b.commune, b.epci, b.fluid = r.Device, r.Site, r.Commune, r.EPCI, r.Fluid
			b.refs = b.refs[:0]
		}
		if r.Time < b.from || r.Time >= b.to {
			return fmt.Errorf("%w: %s %s at %d: outside the window [%d, %d)", hv.ErrInvalid, r.Device, r.Metric,
				r.Time, b.from, b.to)
		}
		j := slices.IndexFunc(b.refs, func(m metricRef) bool { return m.metric == r.Metric })
		var ref storage.SeriesRef
		lset := labels.EmptyLabels()
		if j >= 0 {
			ref = b.refs[j].ref
			if !hv.ValidValue(r.Value) {
				return fmt.Errorf("%w: %s %s at %d: value %v", hv.ErrInvalid, r.Device, r.Metric, r.Time, r.Value)
			}
		} else {
			if err := checkSample(r); err != nil {
				return fmt.Errorf("%w: %w", hv.ErrInvalid, err)
			}
			lset = seriesLabels(r)
		}
		ref, err := b.app.Append(ref, lset, r.Time, r.Value)
		if err != nil {
			return fmt.Errorf("%w: %s %s at %d: %w", hv.ErrInvalid, r.Device, r.Metric, r.Time, err)
		}
		if j < 0 {
			b.refs = append(b.refs, metricRef{r.Metric, ref})
		}
		if b.n++; b.n%commitEvery == 0 {
			if err := b.app.Commit(); err != nil {
				return err
			}
			b.app = b.newApp()
		}
	}
	return nil
}

// waitLoaded returns once every block of ids is loaded by tsdb.
func (s *Store) waitLoaded(ctx context.Context, ids []ulid.ULID) error {
	deadline := time.Now().Add(backfillLoadTimeout)
	for {
		loaded := map[ulid.ULID]bool{}
		for _, b := range s.db.Blocks() {
			loaded[b.Meta().ULID] = true
		}
		missing := 0
		for _, id := range ids {
			if !loaded[id] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tsdb: backfill: %w: %d of %d blocks not loaded after %s", hv.ErrUnavailable,
				missing, len(ids), backfillLoadTimeout)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("tsdb: backfill: %w: waiting for the blocks to load", hv.ErrUnavailable), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
