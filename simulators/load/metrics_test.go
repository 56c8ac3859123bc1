package load

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/ingest"
)

func hist(count float64, bounds []float64, counts []float64) Histogram {
	h := Histogram{Count: count}
	for i, b := range bounds {
		h.Buckets = append(h.Buckets, Bucket{UpperBound: b, Count: counts[i]})
	}
	return h
}

func TestQuantileInterpolation(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name      string
		h         Histogram
		q         float64
		want      float64
		wantAbove bool
	}{
		{"middle of a bucket", hist(10, []float64{1, 2, 4, inf}, []float64{0, 10, 10, 10}), 0.5, 1.5, false},
		{"first bucket starts at 0", hist(8, []float64{1, 2, inf}, []float64{4, 8, 8}), 0.25, 0.5, false},
		{"quarter into a bucket", hist(100, []float64{0.01, 0.02, 0.04, inf}, []float64{50, 50, 100, 100}), 0.625, 0.025, false},
		{"max is the last non-empty bucket's bound", hist(5, []float64{1, 2, 4, inf}, []float64{3, 5, 5, 5}), 1, 2, false},
		{"min is the first non-empty bucket's lower bound", hist(3, []float64{1, 2, inf}, []float64{0, 3, 3}), 0, 1, false},
		{"p99 in +Inf: the top finite bound, flagged", hist(10, []float64{1, inf}, []float64{5, 10}), 0.99, 1, true},
		{"exactly at a bucket edge", hist(4, []float64{1, 2, inf}, []float64{2, 4, 4}), 0.5, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, above := tt.h.Quantile(tt.q)
			if math.Abs(got-tt.want) > 1e-12 || above != tt.wantAbove {
				t.Errorf("Quantile(%g) = %g (above %v), want %g (above %v)", tt.q, got, above, tt.want, tt.wantAbove)
			}
		})
	}
	if v, _ := (Histogram{}).Quantile(0.5); !math.IsNaN(v) {
		t.Errorf("no observation: %g, want NaN", v)
	}
}

// scrapeText encodes what a registry exposes, as /metrics would.
func scrapeText(t *testing.T, g prometheus.Gatherer) []byte {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// With the service's bucket layout, the estimate falls in the bucket that holds the true quantile, and for a
// uniform spread (where linear interpolation is exact) close to it.
func TestQuantileAgainstKnownDistributions(t *testing.T) {
	buckets := prometheus.ExponentialBucketsRange(0.001, 60, 32)
	tests := []struct {
		name  string
		value func(i, n int) float64 // the i-th of n observations, increasing
		tol   float64                // relative, for a distribution that interpolation reproduces
	}{
		// Uniform over the whole range: every bucket is uniformly filled, so interpolation is exact but for
		// the discreteness of the sample.
		{"uniform 0-60 s", func(i, n int) float64 { return 60 * float64(i) / float64(n) }, 0.005},
		{"log-uniform 1 ms-10 s", func(i, n int) float64 { return 0.001 * math.Pow(1e4, float64(i)/float64(n)) }, 0},
		{"long tail", func(i, n int) float64 { return 0.005 - 0.5*math.Log(1-float64(i)/float64(n+1)) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricLag, Help: "test", Buckets: buckets})
			reg.MustRegister(h)
			const n = 20000
			for i := range n {
				h.Observe(tt.value(i, n))
			}
			snap, err := ParseSnapshot(bytes.NewReader(scrapeText(t, reg)))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []float64{0.5, 0.99} {
				truth := tt.value(int(q*n), n)
				got, above := snap.Lag.Quantile(q)
				lo, hi := 0.0, math.Inf(1)
				for _, b := range buckets {
					if b >= truth {
						hi = b
						break
					}
					lo = b
				}
				if above || got < lo || got > hi {
					t.Errorf("p%g = %g, outside the bucket (%g, %g] that holds the true %g", q*100, got, lo, hi, truth)
				}
				if tt.tol > 0 && math.Abs(got-truth) > tt.tol*truth {
					t.Errorf("p%g = %g, want %g ±%g%%", q*100, got, truth, tt.tol*100)
				}
			}
		})
	}
}

func TestHistogramSub(t *testing.T) {
	inf := math.Inf(1)
	before := hist(10, []float64{1, 2, inf}, []float64{10, 10, 10})
	after := hist(30, []float64{1, 2, inf}, []float64{10, 28, 30})
	d, err := after.Sub(before)
	if err != nil {
		t.Fatal(err)
	}
	if d.Count != 20 || d.Buckets[0].Count != 0 || d.Buckets[1].Count != 18 || d.Buckets[2].Count != 20 {
		t.Fatalf("delta %+v", d)
	}
	// Only what happened between the scrapes counts: the 10 early observations under 1 s are gone.
	if p50, _ := d.Quantile(0.5); p50 <= 1 {
		t.Errorf("p50 of the delta %g, want above 1", p50)
	}
	if _, err := before.Sub(after); err == nil {
		t.Error("a histogram that went down (service restarted) gave no error")
	}
	if _, err := after.Sub(hist(1, []float64{5, inf}, []float64{1, 1})); err == nil {
		t.Error("different bucket layouts gave no error")
	}
}

func TestParseSnapshotWithoutLag(t *testing.T) {
	_, err := ParseSnapshot(strings.NewReader("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"))
	if !errors.Is(err, ErrNoLagHistogram) {
		t.Fatalf("err = %v, want ErrNoLagHistogram", err)
	}
}

// memStore stores nothing and counts writes; the embedded interface covers the methods the writer never calls.
type memStore struct {
	hv.Store
	mu sync.Mutex
	n  int
}

func (s *memStore) Write(_ context.Context, rs []hv.Reading) error {
	s.mu.Lock()
	s.n += len(rs)
	s.mu.Unlock()
	return nil
}

type noSpool struct{}

func (noSpool) Append([]hv.Reading) error { return errors.New("no spool") }
func (noSpool) Replay(context.Context, func(context.Context, []hv.Reading) error) (int, error) {
	return 0, nil
}
func (noSpool) Bytes() int64 { return 0 }
func (noSpool) Pending() int { return 0 }

// The names the bench reads are the ones ingest exposes, and the lag histogram counts one observation per
// durable message, measured from the message's newest reading.
func TestSnapshotOfIngestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := ingest.NewMetrics(reg)
	w := ingest.NewWriter(ingest.WriterConfig{BatchSize: 100, FlushInterval: 10 * time.Millisecond, Writers: 1,
		QueueSize: 16, WriteTimeout: time.Second}, &memStore{}, noSpool{}, m, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, 5*time.Second); close(done) }()

	before, err := ParseSnapshot(bytes.NewReader(scrapeText(t, reg)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var acked sync.WaitGroup
	// Three messages: two taken 2 s ago (the second with an older derived reading, which must not count),
	// one 20 s ago.
	msgs := [][]hv.Reading{
		{{Device: "d1", Metric: hv.PowerW, Time: now.Add(-2 * time.Second).UnixMilli()}},
		{{Device: "d2", Metric: hv.EnergyKWh, Time: now.Add(-2 * time.Second).UnixMilli()},
			{Device: "d2", Metric: hv.EnergyKWh.Delta(), Time: now.Add(-time.Hour).UnixMilli()}},
		{{Device: "d3", Metric: hv.PowerW, Time: now.Add(-20 * time.Second).UnixMilli()}},
	}
	for _, rs := range msgs {
		acked.Add(1)
		if err := w.Submit(ctx, rs, acked.Done); err != nil {
			t.Fatal(err)
		}
	}
	acked.Wait()
	after, err := ParseSnapshot(bytes.NewReader(scrapeText(t, reg)))
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	lag, err := after.Lag.Sub(before.Lag)
	if err != nil {
		t.Fatal(err)
	}
	if lag.Count != 3 || after.Stored-before.Stored != 4 || after.Pending != 0 {
		t.Fatalf("lag count %g (want 3, one per message), stored %g (want 4), pending %g (want 0)",
			lag.Count, after.Stored-before.Stored, after.Pending)
	}
	// Lags are 2 s, 2 s and 20 s plus the write: p50 near 2 s, the mean near 8 s; the derived reading an hour
	// old would have pushed both far beyond.
	if p50, _ := lag.Quantile(0.5); p50 < 1.4 || p50 > 2.9 {
		t.Errorf("p50 %g s, want about 2", p50)
	}
	if mean := lag.Sum / lag.Count; mean < 7.9 || mean > 9 {
		t.Errorf("mean %g s, want about 8", mean)
	}
}
