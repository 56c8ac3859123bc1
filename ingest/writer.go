package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Spool is the on-disk queue that takes batches the store refused (package spool implements it). Any Append
// error (full, disk failing) means the batch is not durable: the writer then holds it and its acks, which stops
// reading from the broker, so the broker queues instead of anything being lost.
type Spool interface {
	// Append must be durable when it returns nil.
	Append(rs []hv.Reading) error
	Replay(ctx context.Context, write func(ctx context.Context, rs []hv.Reading) error) (int, error)
	Bytes() int64
	Pending() int
}

// WriterConfig sizes the batching.
type WriterConfig struct {
	BatchSize     int           // readings per store write
	FlushInterval time.Duration // longest a reading waits for its batch
	Writers       int           // store writes in flight at once
	QueueSize     int           // messages waiting for a batch; Submit blocks beyond it
	WriteTimeout  time.Duration // one store write
}

// Writer batches readings, writes them to the store, spools them when the store fails, and acknowledges each
// message only once every reading it carried is stored or spooled.
type Writer struct {
	cfg      WriterConfig
	store    hv.Store
	spool    Spool
	metrics  *Metrics
	log      *slog.Logger
	onStored func([]hv.Reading)

	in      chan item
	batches chan *batch
	kick    chan struct{}
	healthy atomic.Bool // the last store write succeeded
}

type item struct {
	rs     []hv.Reading
	ack    func()
	newest int64 // the message's newest reading time (Unix ms), for the lag histogram
}

type batch struct {
	rs     []hv.Reading
	acks   []func()
	newest []int64 // per message, parallel to acks
}

// NewWriter returns a writer; Run starts it. onStored (may be nil) sees every batch once it is in the store,
// replayed batches included.
func NewWriter(cfg WriterConfig, store hv.Store, spool Spool, m *Metrics, log *slog.Logger, onStored func([]hv.Reading)) *Writer {
	w := &Writer{
		cfg: cfg, store: store, spool: spool, metrics: m, log: log, onStored: onStored,
		in:      make(chan item, cfg.QueueSize),
		batches: make(chan *batch, cfg.Writers),
		kick:    make(chan struct{}, 1),
	}
	w.healthy.Store(true)
	return w
}

// Submit queues the readings of one message; ack is called once they are durable. It blocks while the queue
// is full, which is how back-pressure reaches the broker; it fails only when ctx ends.
func (w *Writer) Submit(ctx context.Context, rs []hv.Reading, ack func()) error {
	// Derived readings (index deltas, counter events) never carry a time later than the reading they come
	// from, so the newest time is the message's own.
	var newest int64
	for i := range rs {
		newest = max(newest, rs[i].Time)
	}
	select {
	case w.in <- item{rs, ack, newest}:
		w.metrics.pending.Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Healthy reports whether the last store write succeeded (for readiness).
func (w *Writer) Healthy() bool { return w.healthy.Load() }

// Run batches and writes until ctx ends, then drains what was submitted (writing or spooling it, and
// acknowledging it) before returning. drainTimeout bounds that drain: what is still unwritten then stays
// unacknowledged, and the broker redelivers it.
func (w *Writer) Run(ctx context.Context, drainTimeout time.Duration) {
	var wg sync.WaitGroup
	for range w.cfg.Writers {
		wg.Go(func() {
			for b := range w.batches {
				w.flush(b)
			}
		})
	}
	replayCtx, stopReplay := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	rwg.Go(func() { w.replayLoop(replayCtx) })

	w.batchLoop(ctx)
	close(w.batches)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		w.log.Warn("writer drain timed out; unacknowledged messages will be redelivered by the broker")
	}
	stopReplay()
	rwg.Wait()
}

// batchLoop cuts batches by size or age. On ctx end it takes what is already queued and stops.
func (w *Writer) batchLoop(ctx context.Context) {
	cur := &batch{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() {
		if len(cur.rs) == 0 && len(cur.acks) == 0 {
			return
		}
		w.batches <- cur
		cur = &batch{rs: make([]hv.Reading, 0, w.cfg.BatchSize)}
		timer.Stop()
	}
	add := func(it item) {
		if len(cur.rs) == 0 && len(cur.acks) == 0 {
			timer.Reset(w.cfg.FlushInterval)
		}
		cur.rs = append(cur.rs, it.rs...)
		cur.acks = append(cur.acks, it.ack)
		cur.newest = append(cur.newest, it.newest)
		if len(cur.rs) >= w.cfg.BatchSize {
			send()
		}
	}
	for {
		select {
		case it := <-w.in:
			add(it)
		case <-timer.C:
			send()
		case <-ctx.Done():
			for {
				select {
				case it := <-w.in:
					add(it)
				default:
					send()
					return
				}
			}
		}
	}
}

// flush makes one batch durable, in the store or else in the spool, then acknowledges its messages. While
// neither can take it, it retries with backoff and holds the acks: nothing is acknowledged that is not durable.
func (w *Writer) flush(b *batch) {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if len(b.rs) == 0 {
			break
		}
		// While older batches wait in the spool, new ones are written directly anyway: both engines accept
		// out-of-order samples within the window, and the spool replays in its own order.
		if err := w.write(context.Background(), b.rs); err == nil {
			break
		} else if attempt == 0 {
			w.log.Warn("store write failed; spooling batch", "readings", len(b.rs), "err", err)
		}
		err := w.spool.Append(b.rs)
		if err == nil {
			w.metrics.spooled.Add(float64(len(b.rs)))
			w.metrics.spoolBytes.Set(float64(w.spool.Bytes()))
			w.kickReplay()
			break
		}
		if attempt == 0 || attempt%50 == 0 {
			w.log.Error("store and spool both refuse a batch; holding its acks", "readings", len(b.rs), "err", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
	w.observeLag(b.newest)
	for _, ack := range b.acks {
		ack()
	}
	w.metrics.pending.Sub(float64(len(b.acks)))
}

// observeLag records, once per message, how long ago its newest reading was taken, now that the message is
// durable and about to be acknowledged. A device clock ahead of ours would give a negative lag: it counts as 0.
func (w *Writer) observeLag(newest []int64) {
	now := time.Now().UnixNano()
	for _, t := range newest {
		if t == 0 {
			continue
		}
		w.metrics.lag.Observe(max(0, float64(now-t*int64(time.Millisecond))/1e9))
	}
}

// write is one timed store write with its metrics.
func (w *Writer) write(ctx context.Context, rs []hv.Reading) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := w.store.Write(ctx, rs)
	w.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	if errors.Is(err, hv.ErrInvalid) {
		// The engine stored the batch but for the readings it names (a conflicting value at the same time,
		// a sample older than the out-of-order window). Retrying or spooling would not change its mind.
		w.metrics.storeRejected.Inc()
		w.log.Warn("store refused some readings of a batch; the rest is stored", "readings", len(rs), "err", err)
		err = nil
	}
	if err != nil {
		w.healthy.Store(false)
		w.metrics.storeErrors.Inc()
		return err
	}
	w.healthy.Store(true)
	w.metrics.stored.Add(float64(len(rs)))
	if w.onStored != nil {
		w.onStored(rs)
	}
	return nil
}

func (w *Writer) kickReplay() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// replayLoop drains the spool into the store whenever it holds anything, retrying every few seconds while
// the store stays down.
func (w *Writer) replayLoop(ctx context.Context) {
	if w.spool.Pending() > 0 {
		w.kickReplay()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-tick.C:
			if w.spool.Pending() == 0 {
				continue
			}
		}
		n, err := w.spool.Replay(ctx, w.write)
		w.metrics.spoolBytes.Set(float64(w.spool.Bytes()))
		if n > 0 {
			w.metrics.replayed.Add(float64(n))
			w.log.Info("replayed spooled readings", "readings", n, "pending_bytes", w.spool.Bytes())
		}
		if err != nil && ctx.Err() == nil {
			w.log.Debug("spool replay paused: store still refuses writes", "err", err)
		}
	}
}
