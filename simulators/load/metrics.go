package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The service metrics the bench reads.
const (
	MetricLag       = "hyperviseur_ingest_lag_seconds"
	MetricMessages  = "hyperviseur_ingest_messages_total"
	MetricStored    = "hyperviseur_readings_stored_total"
	MetricSpooled   = "hyperviseur_readings_spooled_total"
	MetricPending   = "hyperviseur_ingest_pending_messages"
	MetricCPU       = "process_cpu_seconds_total"
	MetricRSS       = "process_resident_memory_bytes"
	MetricHeapInuse = "go_memstats_heap_inuse_bytes"
	MetricLastGC    = "go_memstats_last_gc_time_seconds"
	MetricHeapLive  = "go_gc_heap_live_bytes"
)

// ErrNoLagHistogram means the service does not expose hyperviseur_ingest_lag_seconds: it predates the bench.
var ErrNoLagHistogram = errors.New("the service exposes no " + MetricLag + " histogram (a hyperviseur older than `bench`?)")

// Snapshot is one scrape of the service's /metrics.
type Snapshot struct {
	Messages   map[string]float64 // hyperviseur_ingest_messages_total by outcome, summed over sources
	Stored     float64            // readings written to the store, derived index deltas included
	Spooled    float64
	Pending    float64 // messages handed to the writer and not yet acknowledged
	CPUSeconds float64
	RSS        float64 // bytes
	HeapInuse  float64 // bytes
	HeapLive   float64 // bytes the last GC found live; 0 when the service does not export it
	LastGC     float64 // Unix seconds
	Lag        Histogram
}

// Histogram is a cumulative Prometheus histogram: Buckets sorted by upper bound, the last one +Inf.
type Histogram struct {
	Buckets []Bucket
	Count   float64
	Sum     float64
}

// Bucket is one cumulative bucket of a Histogram.
type Bucket struct {
	UpperBound float64
	Count      float64 // observations ≤ UpperBound
}

// Sub returns h − before, bucket by bucket: the observations made between two scrapes. The bucket layouts
// must match (same service); a counter reset (the service restarted) gives negative counts, reported as an
// error.
func (h Histogram) Sub(before Histogram) (Histogram, error) {
	if len(before.Buckets) == 0 {
		return h, nil
	}
	if len(before.Buckets) != len(h.Buckets) {
		return Histogram{}, fmt.Errorf("lag histogram: bucket layout changed between scrapes (%d → %d buckets)", len(before.Buckets), len(h.Buckets))
	}
	out := Histogram{Buckets: make([]Bucket, len(h.Buckets)), Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
	for i, b := range h.Buckets {
		if b.UpperBound != before.Buckets[i].UpperBound {
			return Histogram{}, fmt.Errorf("lag histogram: bucket %d changed from le=%g to le=%g", i, before.Buckets[i].UpperBound, b.UpperBound)
		}
		out.Buckets[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - before.Buckets[i].Count}
	}
	if out.Count < 0 {
		return Histogram{}, errors.New("lag histogram: counts went down between scrapes: the service restarted")
	}
	return out, nil
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) as Prometheus' histogram_quantile does: find the bucket
// holding rank q×count and interpolate linearly inside it, the first bucket starting at 0. A rank in the +Inf
// bucket yields the highest finite bound with above set: the true value is somewhere beyond it. NaN when
// there is no observation.
func (h Histogram) Quantile(q float64) (v float64, above bool) {
	if h.Count <= 0 || len(h.Buckets) == 0 || q < 0 || q > 1 {
		return math.NaN(), false
	}
	rank := q * h.Count
	prevBound, prevCount := 0.0, 0.0
	for i, b := range h.Buckets {
		if b.Count >= rank && b.Count > prevCount {
			if math.IsInf(b.UpperBound, 1) {
				if i == 0 {
					return math.NaN(), true
				}
				return h.Buckets[i-1].UpperBound, true
			}
			return prevBound + (b.UpperBound-prevBound)*(rank-prevCount)/(b.Count-prevCount), false
		}
		prevBound, prevCount = b.UpperBound, b.Count
	}
	return prevBound, false // counts inconsistent with Count (scraped mid-update): the top bound
}

// ParseSnapshot reads the Prometheus text format.
func ParseSnapshot(r io.Reader) (Snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Snapshot{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := Snapshot{
		Messages:   map[string]float64{},
		Stored:     sum(families[MetricStored]),
		Spooled:    sum(families[MetricSpooled]),
		Pending:    sum(families[MetricPending]),
		CPUSeconds: sum(families[MetricCPU]),
		RSS:        sum(families[MetricRSS]),
		HeapInuse:  sum(families[MetricHeapInuse]),
		HeapLive:   sum(families[MetricHeapLive]),
		LastGC:     sum(families[MetricLastGC]),
	}
	if mf := families[MetricMessages]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					s.Messages[l.GetValue()] += value(m)
				}
			}
		}
	}
	mf := families[MetricLag]
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 {
		return s, ErrNoLagHistogram
	}
	s.Lag = histogramOf(mf.GetMetric()[0].GetHistogram())
	return s, nil
}

func histogramOf(h *dto.Histogram) Histogram {
	out := Histogram{Count: float64(h.GetSampleCount()), Sum: h.GetSampleSum()}
	if out.Count == 0 {
		out.Count = h.GetSampleCountFloat()
	}
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if c == 0 {
			c = b.GetCumulativeCountFloat()
		}
		out.Buckets = append(out.Buckets, Bucket{UpperBound: b.GetUpperBound(), Count: c})
	}
	slices.SortFunc(out.Buckets, func(a, b Bucket) int { return cmpFloat(a.UpperBound, b.UpperBound) })
	if n := len(out.Buckets); n == 0 || !math.IsInf(out.Buckets[n-1].UpperBound, 1) {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: math.Inf(1), Count: out.Count})
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sum adds up every sample of a counter or gauge family (0 when absent).
func sum(mf *dto.MetricFamily) float64 {
	total := 0.0
	for _, m := range mf.GetMetric() {
		total += value(m)
	}
	return total
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// Scraper reads a service's /metrics.
type Scraper struct {
	URL    string
	Client *http.Client
}

// Scrape fetches and parses one snapshot, asking for the text format.
func (s *Scraper) Scrape(ctx context.Context) (Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Snapshot{}, fmt.Errorf("scrape %s: HTTP %d", s.URL, resp.StatusCode)
	}
	snap, err := ParseSnapshot(resp.Body)
	if err != nil {
		return snap, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	return snap, nil
}
