package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	hv "github.com/useda02/hyperviseur"
)

// fakeStore fails while down is set and records what it stored. With refuse set it stores every batch but
// for its first reading and says so with ErrInvalid, as the engines do for a conflicting value.
type fakeStore struct {
	mu     sync.Mutex
	down   atomic.Bool
	refuse atomic.Bool
	stored []hv.Reading
}

func (s *fakeStore) Write(_ context.Context, rs []hv.Reading) error {
	if s.down.Load() {
		return hv.ErrUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse.Load() {
		s.stored = append(s.stored, rs[1:]...)
		return fmt.Errorf("fake: 1 of %d readings skipped: %w", len(rs), hv.ErrInvalid)
	}
	s.stored = append(s.stored, rs...)
	return nil
}
func (s *fakeStore) Query(context.Context, hv.Query) ([]hv.Series, error)           { return nil, nil }
func (s *fakeStore) Last(context.Context, []hv.Metric, int64) ([]hv.Reading, error) { return nil, nil }
func (s *fakeStore) Ping(context.Context) error                                     { return nil }
func (s *fakeStore) Close() error                                                   { return nil }
func (s *fakeStore) count() int                                                     { s.mu.Lock(); defer s.mu.Unlock(); return len(s.stored) }

// memSpool is an in-memory spool with a capacity in batches.
type memSpool struct {
	mu      sync.Mutex
	batches [][]hv.Reading
	cap     int
}

func (m *memSpool) Append(rs []hv.Reading) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.batches) >= m.cap {
		return errors.New("mem spool full")
	}
	m.batches = append(m.batches, rs)
	return nil
}

func (m *memSpool) Replay(ctx context.Context, write func(context.Context, []hv.Reading) error) (int, error) {
	n := 0
	for {
		m.mu.Lock()
		if len(m.batches) == 0 {
			m.mu.Unlock()
			return n, nil
		}
		b := m.batches[0]
		m.mu.Unlock()
		if err := write(ctx, b); err != nil {
			return n, err
		}
		m.mu.Lock()
		m.batches = m.batches[1:]
		m.mu.Unlock()
		n += len(b)
	}
}
func (m *memSpool) Bytes() int64 { return int64(m.Pending()) * 100 }
func (m *memSpool) Pending() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.batches) }

func newTestWriter(t *testing.T, st hv.Store, sp Spool) (*Writer, func()) {
	t.Helper()
	w := NewWriter(WriterConfig{BatchSize: 10, FlushInterval: 5 * time.Millisecond, Writers: 2, QueueSize: 16,
		WriteTimeout: time.Second}, st, sp, NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, 5*time.Second); close(done) }()
	return w, func() { cancel(); <-done }
}

func readings(n int, base int64) []hv.Reading {
	rs := make([]hv.Reading, n)
	for i := range rs {
		rs[i] = hv.Reading{Device: "d", Metric: hv.PowerW, Time: base + int64(i), Value: float64(i)}
	}
	return rs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWriterAcksAfterStore(t *testing.T) {
	st := &fakeStore{}
	w, stop := newTestWriter(t, st, &memSpool{cap: 10})
	defer stop()
	var acked atomic.Int32
	for i := range 25 {
		if err := w.Submit(context.Background(), readings(3, int64(i*10)), func() { acked.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "25 acks", func() bool { return acked.Load() == 25 })
	if st.count() != 75 {
		t.Fatalf("stored %d readings, want 75", st.count())
	}
}

func TestWriterSpoolsWhileStoreDownThenReplays(t *testing.T) {
	st := &fakeStore{}
	st.down.Store(true)
	sp := &memSpool{cap: 100}
	w, stop := newTestWriter(t, st, sp)
	defer stop()
	var acked atomic.Int32
	for i := range 20 {
		_ = w.Submit(context.Background(), readings(5, int64(i*10)), func() { acked.Add(1) })
	}
	waitFor(t, "acks of spooled messages", func() bool { return acked.Load() == 20 })
	if st.count() != 0 || sp.Pending() == 0 {
		t.Fatalf("store has %d, spool %d batches: want everything spooled", st.count(), sp.Pending())
	}
	if w.Healthy() {
		t.Error("writer reports healthy while the store refuses writes")
	}
	st.down.Store(false)
	w.kickReplay()
	waitFor(t, "replay", func() bool { return st.count() == 100 })
	if sp.Pending() != 0 {
		t.Fatalf("spool still holds %d batches after replay", sp.Pending())
	}
}

// TestWriterHoldsAcksWhenNothingIsDurable: with the store down and the spool full, nothing is acknowledged
// until the store comes back.
func TestWriterHoldsAcksWhenNothingIsDurable(t *testing.T) {
	st := &fakeStore{}
	st.down.Store(true)
	w, stop := newTestWriter(t, st, &memSpool{cap: 0})
	defer stop()
	var acked atomic.Int32
	_ = w.Submit(context.Background(), readings(5, 0), func() { acked.Add(1) })
	time.Sleep(300 * time.Millisecond)
	if acked.Load() != 0 {
		t.Fatal("a message was acknowledged although neither the store nor the spool took it")
	}
	st.down.Store(false)
	waitFor(t, "ack once the store is back", func() bool { return acked.Load() == 1 })
	if st.count() != 5 {
		t.Fatalf("stored %d, want 5", st.count())
	}
}

func TestWriterSubmitBlocksWhenQueueFull(t *testing.T) {
	st := &fakeStore{}
	st.down.Store(true)
	// Not running: nothing drains the queue.
	w := NewWriter(WriterConfig{BatchSize: 10, FlushInterval: time.Millisecond, Writers: 1, QueueSize: 2, WriteTimeout: time.Second},
		st, &memSpool{}, NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for range 2 {
		if err := w.Submit(context.Background(), readings(1, 0), func() {}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Submit(ctx, readings(1, 0), func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit on a full queue returned %v, want it to block until ctx ends", err)
	}
}

// TestWriterPartialRefusalIsNotSpooled: readings an engine refuses for good (ErrInvalid) are not spooled, or
// the replay would retry them forever; the message is acknowledged.
func TestWriterPartialRefusalIsNotSpooled(t *testing.T) {
	st := &fakeStore{}
	st.refuse.Store(true)
	sp := &memSpool{cap: 10}
	w, stop := newTestWriter(t, st, sp)
	defer stop()
	var acked atomic.Int32
	_ = w.Submit(context.Background(), readings(4, 0), func() { acked.Add(1) })
	waitFor(t, "ack", func() bool { return acked.Load() == 1 })
	if sp.Pending() != 0 || st.count() != 3 || !w.Healthy() {
		t.Fatalf("spool %d batches, store %d readings, healthy %v: want 0, 3, true", sp.Pending(), st.count(), w.Healthy())
	}
}
