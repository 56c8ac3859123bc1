package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/ingest/decode"
)

// pipelineFixture is a pipeline over a running writer and a fake store, with one registered meter.
type pipelineFixture struct {
	p        *Pipeline
	store    *fakeStore
	metrics  *Metrics
	mu       sync.Mutex
	dead     []deadLetterMsg
	observed []string
	now      time.Time
}

func newPipelineFixture(t *testing.T) *pipelineFixture {
	t.Helper()
	f := &pipelineFixture{store: &fakeStore{}, now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	site := &hv.Site{ID: "mairie-laon", Commune: "02408", EPCI: "200043495"}
	dev := &hv.Device{ID: "elec-1", Site: site.ID, Kind: hv.DeviceMeter, Fluid: hv.Electricity, MaxPowerW: 60000}
	lookup := func(id string) (*hv.Device, *hv.Site, bool) {
		if id == dev.ID {
			return dev, site, true
		}
		return nil, nil, false
	}
	f.metrics = NewMetrics(prometheus.NewRegistry())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := NewWriter(WriterConfig{BatchSize: 100, FlushInterval: time.Millisecond, Writers: 1, QueueSize: 16, WriteTimeout: time.Second},
		f.store, &memSpool{cap: 10}, f.metrics, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	dl := func(_ context.Context, source string, msg []byte) error {
		var m deadLetterMsg
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Errorf("dead letter is not JSON: %v", err)
		}
		f.mu.Lock()
		f.dead = append(f.dead, m)
		f.mu.Unlock()
		return nil
	}
	observe := func(id string, _ []byte, _ time.Time) {
		f.mu.Lock()
		f.observed = append(f.observed, id)
		f.mu.Unlock()
	}
	f.p = NewPipeline(Config{MaxPayload: 1024, MaxFuture: 5 * time.Minute, Retention: 400 * 24 * time.Hour},
		lookup, observe, &decode.Mapper{}, NewCounters(), w, dl, f.metrics, log)
	f.p.now = func() time.Time { return f.now }
	return f
}

// handle runs one message through the pipeline and waits for its ack.
func (f *pipelineFixture) handle(t *testing.T, topic, format, payload string) {
	t.Helper()
	src, err := NewSource(format, topic, format)
	if err != nil {
		t.Fatal(err)
	}
	var acked atomic.Bool
	if err := f.p.Handle(context.Background(), src, topic, []byte(payload), func() { acked.Store(true) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ack", acked.Load)
}

func (f *pipelineFixture) deadLetters() []deadLetterMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]deadLetterMsg(nil), f.dead...)
}

func TestPipelineStoresEnrichedReadingsAndDeltas(t *testing.T) {
	f := newPipelineFixture(t)
	ms := f.now.Add(-time.Hour).UnixMilli()
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"energy_kwh":100,"power_w":2000}`, ms))
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"energy_kwh":112.5,"power_w":2500}`, ms+3600_000))

	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	got := map[hv.Metric][]float64{}
	for _, r := range f.store.stored {
		if r.Site != "mairie-laon" || r.Commune != "02408" || r.EPCI != "200043495" || r.Fluid != hv.Electricity {
			t.Errorf("reading not enriched from the registry: %+v", r)
		}
		got[r.Metric] = append(got[r.Metric], r.Value)
	}
	if fmt.Sprint(got[hv.EnergyKWh]) != "[100 112.5]" || fmt.Sprint(got[hv.PowerW]) != "[2000 2500]" ||
		fmt.Sprint(got[hv.EnergyKWh.Delta()]) != "[12.5]" {
		t.Fatalf("stored %v", got)
	}
	if n := testutil.ToFloat64(f.metrics.messages.WithLabelValues("json", OutcomeOK)); n != 2 {
		t.Errorf("ok messages = %g, want 2", n)
	}
}

func TestPipelineRejectsBadInput(t *testing.T) {
	future := time.Date(2026, 11, 23, 10, 6, 0, 0, time.UTC).UnixMilli()
	tests := []struct {
		name, topic, format, payload, reason string
	}{
		{"malformed JSON", "hv/elec-1/up", "json", `{"power_w":`, "malformed"},
		{"wrong type", "hv/elec-1/up", "json", `{"power_w":"high"}`, "power_w"},
		{"future timestamp", "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"power_w":1}`, future), "in the future"},
		{"older than retention", "hv/elec-1/up", "json", `{"ts":1000000000000,"power_w":1}`, "older than"},
		{"too large", "hv/elec-1/up", "json", `{"power_w":1,"pad":"` + strings.Repeat("x", 2000) + `"}`, "exceeds the 1024-byte limit"},
		{"unknown unit", "hv/elec-1/up", "json", `[{"n":"energy","u":"furlong","v":1}]`, "furlong"},
		{"NaN in line protocol", "hv/lp", "lineprotocol", "m,device=elec-1 power_w=NaN", "power_w"},
		{"no device tag", "hv/lp", "lineprotocol", "m power_w=1", "device"},
		{"one bad value rejects the whole message", "hv/elec-1/up", "json", `[{"n":"power_w","v":5},{"n":"energy","u":"parsec","v":1}]`, "parsec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPipelineFixture(t)
			f.handle(t, tt.topic, tt.format, tt.payload)
			dead := f.deadLetters()
			if len(dead) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dead))
			}
			if !strings.Contains(dead[0].Reason, tt.reason) || dead[0].Topic != tt.topic || dead[0].Source != tt.format {
				t.Errorf("dead letter %+v, want a reason containing %q", dead[0], tt.reason)
			}
			if n := testutil.ToFloat64(f.metrics.messages.WithLabelValues(tt.format, OutcomeInvalid)); n != 1 {
				t.Errorf("invalid messages = %g, want 1", n)
			}
			if f.store.count() != 0 {
				t.Errorf("a rejected message stored %d readings", f.store.count())
			}
		})
	}
}

func TestPipelineUnregisteredAndUnmapped(t *testing.T) {
	f := newPipelineFixture(t)
	ms := f.now.Add(-time.Minute).UnixMilli()
	f.handle(t, "hv/inconnu/up", "json", fmt.Sprintf(`{"ts":%d,"power_w":42,"rssi":-80}`, ms))
	if f.store.count() != 1 {
		t.Fatalf("stored %d readings, want 1 (rssi is unmapped and dropped)", f.store.count())
	}
	if r := f.store.stored[0]; r.Device != "inconnu" || r.Site != "" || r.Value != 42 {
		t.Errorf("unregistered reading %+v, want device inconnu with no site", r)
	}
	if fmt.Sprint(f.observed) != "[inconnu]" {
		t.Errorf("observed %v, want the unregistered device reported once", f.observed)
	}
	if n := testutil.ToFloat64(f.metrics.unmapped.WithLabelValues("json")); n != 1 {
		t.Errorf("unmapped = %g, want 1", n)
	}
	// Only unmapped keys: acknowledged as empty, nothing stored, nothing dead-lettered.
	f.handle(t, "hv/inconnu/up", "json", `{"rssi":-80,"snr":7}`)
	if n := testutil.ToFloat64(f.metrics.messages.WithLabelValues("json", OutcomeEmpty)); n != 1 || len(f.deadLetters()) != 0 {
		t.Errorf("empty = %g, dead letters %d; want 1 and 0", n, len(f.deadLetters()))
	}
}

// TestPipelineRejectedMessageMovesNoCounter: a rejected message must not advance the index state, or the
// next good reading's delta would be wrong.
func TestPipelineRejectedMessageMovesNoCounter(t *testing.T) {
	f := newPipelineFixture(t)
	ms := f.now.Add(-time.Hour).UnixMilli()
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"energy_kwh":100}`, ms))
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`[{"n":"energy_kwh","v":500,"t":%d},{"n":"energy","u":"parsec","v":1}]`, (ms+60_000)/1000))
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"energy_kwh":101.5}`, ms+120_000))
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	var deltas []float64
	for _, r := range f.store.stored {
		if r.Metric == hv.EnergyKWh.Delta() {
			deltas = append(deltas, r.Value)
		}
	}
	if fmt.Sprint(deltas) != "[1.5]" {
		t.Fatalf("deltas %v, want [1.5]", deltas)
	}
}

// TestPipelineDeadLetterKeepsBinaryPayload: a payload that is not UTF-8 travels base64-encoded, byte for byte.
func TestPipelineDeadLetterKeepsBinaryPayload(t *testing.T) {
	f := newPipelineFixture(t)
	raw := string([]byte{0xff, 0xfe, 0x00, 0x7b, 0x80})
	f.handle(t, "hv/elec-1/up", "json", raw)
	dead := f.deadLetters()
	if len(dead) != 1 || string(dead[0].PayloadB64) != raw || dead[0].Payload != "" {
		t.Fatalf("dead letter %+v, want the raw bytes in payload_base64", dead)
	}
	f.handle(t, "hv/elec-1/up", "json", `{"power_w":"fort"}`)
	if dead = f.deadLetters(); len(dead) != 2 || dead[1].Payload != `{"power_w":"fort"}` {
		t.Fatalf("UTF-8 payload not kept as text: %+v", dead[1])
	}
}

// TestPipelineSurvivesDecoderPanic: a decoder bug costs one dead-lettered message, not the service.
func TestPipelineSurvivesDecoderPanic(t *testing.T) {
	f := newPipelineFixture(t)
	src := &Source{Name: "bug", Topic: "x", Format: "bug", decoder: decode.DecoderFunc(
		func(string, []byte, []decode.Sample) ([]decode.Sample, error) { panic("index out of range") })}
	var acked atomic.Bool
	if err := f.p.Handle(context.Background(), src, "x", []byte("{}"), func() { acked.Store(true) }); err != nil {
		t.Fatal(err)
	}
	dead := f.deadLetters()
	if !acked.Load() || len(dead) != 1 || !strings.Contains(dead[0].Reason, "index out of range") {
		t.Fatalf("acked=%v dead letters %+v: want the panic dead-lettered and the message acknowledged", acked.Load(), dead)
	}
}

// TestPipelineFlagsClockAhead: a device stamping its readings two minutes ahead is stored (within
// max_future) with one clock_skew counter event at the receive time; one a few seconds ahead is not flagged.
func TestPipelineFlagsClockAhead(t *testing.T) {
	f := newPipelineFixture(t)
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"power_w":2000}`, f.now.Add(5*time.Second).UnixMilli()))
	f.handle(t, "hv/elec-1/up", "json", fmt.Sprintf(`{"ts":%d,"power_w":2100,"energy_kwh":5}`, f.now.Add(2*time.Minute).UnixMilli()))
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	var events []hv.Reading
	power := 0
	for _, r := range f.store.stored {
		switch r.Metric {
		case hv.CounterEvent:
			events = append(events, r)
		case hv.PowerW:
			power++
		}
	}
	if power != 2 || len(events) != 1 || hv.CounterFlag(events[0].Value) != hv.FlagClockSkew ||
		events[0].Time != f.now.UnixMilli() || events[0].Site != "mairie-laon" {
		t.Fatalf("%d power readings stored, counter events %+v; want both readings and one clock_skew event now", power, events)
	}
	if n := testutil.ToFloat64(f.metrics.counterEvents.WithLabelValues("clock_skew")); n != 1 {
		t.Errorf("clock_skew events counted: %g", n)
	}
}
