// Package ingest takes MQTT messages to durable readings: decode (package decode), validate, normalise to
// canonical metrics, enrich from the registry, derive interval consumption from indexes, batch, write or
// spool, and only then acknowledge. Bad input is counted, logged once per device per minute, dead-lettered
// and acknowledged; it never stops the service.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/ingest/decode"
)

// Source is one subscribed topic filter and the format its payloads are in.
type Source struct {
	Name    string // the source label of the metrics and of hv/deadletter/<name>
	Topic   string
	Format  string
	decoder decode.Decoder
}

// Lookup finds a registered device and its site; unknown devices return ok false.
type Lookup func(device string) (dev *hv.Device, site *hv.Site, ok bool)

// DeadLetter publishes a rejected message with its reason; it returns once the broker has it (QoS 1).
type DeadLetter func(ctx context.Context, source string, msg []byte) error

// Config tunes the pipeline.
// ClockSkewTolerance is how far ahead of the service's clock a device may stamp its readings before each
// message is flagged with a clock_skew counter event (the readings are stored all the same up to MaxFuture):
// network and batching delays only ever make timestamps late, never early.
const ClockSkewTolerance = time.Minute

type Config struct {
	MaxPayload int           // bytes; larger payloads are rejected unread
	MaxFuture  time.Duration // readings further in the future are rejected (clock skew); within it, beyond ClockSkewTolerance, flagged
	Retention  time.Duration // readings older than this are rejected: the store would drop them
}

// Pipeline processes messages. It is safe for concurrent use: the MQTT client calls Handle from many
// goroutines at once.
type Pipeline struct {
	cfg        Config
	lookup     Lookup
	observe    func(device string, payload []byte, at time.Time) // unregistered devices
	mapper     *decode.Mapper
	counters   *Counters
	writer     *Writer
	deadLetter DeadLetter
	metrics    *Metrics
	log        *slog.Logger
	limiter    *logLimiter
	now        func() time.Time
	samples    sync.Pool
}

// NewPipeline wires a pipeline. observe may be nil.
func NewPipeline(cfg Config, lookup Lookup, observe func(string, []byte, time.Time), mapper *decode.Mapper,
	counters *Counters, w *Writer, dl DeadLetter, m *Metrics, log *slog.Logger) *Pipeline {
	return &Pipeline{
		cfg: cfg, lookup: lookup, observe: observe, mapper: mapper, counters: counters, writer: w,
		deadLetter: dl, metrics: m, log: log, limiter: newLogLimiter(time.Minute, 10000), now: time.Now,
		samples: sync.Pool{New: func() any { s := make([]decode.Sample, 0, 16); return &s }},
	}
}

// NewSource resolves a source's decoder.
func NewSource(name, topic, format string) (*Source, error) {
	d, err := decode.Lookup(format)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	return &Source{Name: name, Topic: topic, Format: format, decoder: d}, nil
}

// rejection is why a message was refused, with the device when known (for the log limiter).
type rejection struct {
	device string
	reason string
}

func (r *rejection) Error() string { return r.reason }

// Handle processes one message. ack acknowledges it to the broker and is called exactly once: after its
// readings are durable, or after it was dead-lettered. Handle returns an error only when ctx ended before the
// message could be handed on; it is then left unacknowledged for the broker to redeliver.
func (p *Pipeline) Handle(ctx context.Context, src *Source, topic string, payload []byte, ack func()) error {
	now := p.now()
	sp := p.samples.Get().(*[]decode.Sample)
	defer func() { *sp = (*sp)[:0]; p.samples.Put(sp) }()

	rs, err := p.readings(src, topic, payload, now, sp)
	if err != nil {
		var rej *rejection
		if !errors.As(err, &rej) {
			rej = &rejection{reason: err.Error()}
		}
		p.reject(ctx, src, topic, payload, rej, now)
		ack()
		return nil
	}
	if len(rs) == 0 {
		p.metrics.messages.WithLabelValues(src.Name, OutcomeEmpty).Inc()
		ack()
		return nil
	}
	p.metrics.messages.WithLabelValues(src.Name, OutcomeOK).Inc()
	return p.writer.Submit(ctx, rs, ack)
}

// readings decodes and validates a whole message: one bad value rejects the message, so a device's payload is
// stored whole or dead-lettered whole, never half.
func (p *Pipeline) readings(src *Source, topic string, payload []byte, now time.Time, sp *[]decode.Sample) ([]hv.Reading, error) {
	if len(payload) > p.cfg.MaxPayload {
		return nil, &rejection{reason: fmt.Sprintf("payload of %d bytes exceeds the %d-byte limit", len(payload), p.cfg.MaxPayload)}
	}
	samples, err := safeDecode(src.decoder, topic, payload, (*sp)[:0])
	*sp = samples
	if err != nil {
		return nil, &rejection{reason: err.Error()}
	}
	nowMS := now.UnixMilli()
	maxT := now.Add(p.cfg.MaxFuture).UnixMilli()
	minT := now.Add(-p.cfg.Retention).UnixMilli()

	rs := make([]hv.Reading, 0, len(samples)+2)
	var indexes []indexRef // cumulative readings, for the delta pass
	var skewed []int       // the first reading of each device stamped ahead of the clock
	skewT := now.Add(ClockSkewTolerance).UnixMilli()
	var (
		lastDev  string
		dev      *hv.Device
		site     *hv.Site
		known    bool
		observed bool
	)
	for i := range samples {
		s := &samples[i]
		if s.Device != lastDev {
			lastDev = s.Device
			dev, site, known = p.lookup(s.Device)
			observed = false
		}
		if !known && !observed && p.observe != nil {
			p.observe(s.Device, payload, now)
			observed = true
		}
		metric, value, err := p.mapper.Normalise(*s, dev)
		if errors.Is(err, decode.ErrUnmapped) {
			p.metrics.unmapped.WithLabelValues(src.Name).Inc()
			continue
		}
		if err != nil {
			return nil, &rejection{device: s.Device, reason: err.Error()}
		}
		if !hv.ValidValue(value) {
			return nil, &rejection{device: s.Device, reason: fmt.Sprintf("%s: value is not a finite number", s.Name)}
		}
		t := nowMS
		if !s.Time.IsZero() {
			t = s.Time.UnixMilli()
		}
		if t > maxT {
			return nil, &rejection{device: s.Device, reason: fmt.Sprintf("%s: timestamp %s is more than %s in the future",
				s.Name, time.UnixMilli(t).UTC().Format(time.RFC3339), p.cfg.MaxFuture)}
		}
		if t < minT {
			return nil, &rejection{device: s.Device, reason: fmt.Sprintf("%s: timestamp %s is older than the %s retention",
				s.Name, time.UnixMilli(t).UTC().Format(time.RFC3339), p.cfg.Retention)}
		}
		r := hv.Reading{Device: s.Device, Metric: metric, Value: value, Time: t}
		var d *hv.Device
		if known {
			r.Site, r.Commune, r.EPCI, r.Fluid = site.ID, site.Commune, site.EPCI, dev.Fluid
			d = dev
		}
		if metric.Cumulative() {
			indexes = append(indexes, indexRef{len(rs), d})
		}
		if t > skewT && !slices.ContainsFunc(skewed, func(i int) bool { return rs[i].Device == r.Device }) {
			skewed = append(skewed, len(rs))
		}
		rs = append(rs, r)
	}
	for _, i := range skewed {
		ev := rs[i]
		ev.Metric, ev.Value, ev.Time = hv.CounterEvent, float64(hv.FlagClockSkew), nowMS
		p.metrics.counterEvents.WithLabelValues(hv.FlagClockSkew.String()).Inc()
		p.logLimited(ev.Device, "device clock ahead", "device", ev.Device, "ahead", time.Duration(rs[i].Time-nowMS)*time.Millisecond)
		rs = append(rs, ev)
	}
	// Deltas come last, once the whole message is known valid, so a rejected message moves no counter.
	for _, ix := range indexes {
		r := rs[ix.i]
		var flag hv.CounterFlag
		rs, flag = p.counters.Derive(r, ix.dev, rs)
		if flag != hv.FlagNone {
			p.metrics.counterEvents.WithLabelValues(flag.String()).Inc()
			p.logLimited(r.Device, "index anomaly", "device", r.Device, "metric", r.Metric, "flag", flag.String(), "value", r.Value)
		}
	}
	return rs, nil
}

// safeDecode runs a decoder, turning a panic into a rejection. Decoders must not panic (their fuzz targets
// check it), but a service that stops on one bad payload would break the first promise of ingest.
func safeDecode(d decode.Decoder, topic string, payload []byte, dst []decode.Sample) (out []decode.Sample, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = dst[:0], fmt.Errorf("decoder failed on this payload (a bug, please report it): %v", r)
		}
	}()
	return d.Decode(topic, payload, dst)
}

type indexRef struct {
	i   int
	dev *hv.Device // nil for an unregistered device
}

// deadLetterMsg is what hv/deadletter/<source> carries.
type deadLetterMsg struct {
	Source     string    `json:"source"`
	Topic      string    `json:"topic"`
	Device     string    `json:"device,omitempty"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
	Payload    string    `json:"payload,omitempty"`        // as received when it is valid UTF-8…
	PayloadB64 []byte    `json:"payload_base64,omitempty"` // …else base64, so no byte is lost
}

func (p *Pipeline) reject(ctx context.Context, src *Source, topic string, payload []byte, rej *rejection, now time.Time) {
	p.metrics.messages.WithLabelValues(src.Name, OutcomeInvalid).Inc()
	key := rej.device
	if key == "" {
		key = topic
	}
	p.logLimited(key, "invalid message dead-lettered", "source", src.Name, "topic", topic, "reason", rej.reason)
	msg := deadLetterMsg{Source: src.Name, Topic: topic, Device: rej.device, Reason: rej.reason, ReceivedAt: now.UTC()}
	// A payload over the limit is not echoed whole: the dead letter says why and keeps the first KiB.
	body := payload
	if len(body) > p.cfg.MaxPayload {
		body = body[:1024]
	}
	if utf8.Valid(body) {
		msg.Payload = string(body)
	} else {
		msg.PayloadB64 = body
	}
	b, _ := json.Marshal(msg)
	if p.deadLetter == nil {
		return
	}
	if err := p.deadLetter(ctx, src.Name, b); err != nil {
		p.metrics.deadletters.WithLabelValues(src.Name).Inc()
		p.logLimited("deadletter:"+src.Name, "dead-letter publish failed", "source", src.Name, "err", err)
	}
}

func (p *Pipeline) logLimited(key, msg string, args ...any) {
	if p.limiter.allow(key, p.now()) {
		p.log.Warn(msg, args...)
	}
}

// SetDeadLetter sets where rejected messages go; the MQTT consumer that provides it is built after the
// pipeline it feeds. Call it before the consumer starts.
func (p *Pipeline) SetDeadLetter(dl DeadLetter) { p.deadLetter = dl }
