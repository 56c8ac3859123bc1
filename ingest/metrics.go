package ingest

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of a message, the outcome label of hyperviseur_ingest_messages_total.
const (
	OutcomeOK      = "ok"      // decoded; its readings went to the writer
	OutcomeInvalid = "invalid" // rejected with a reason and dead-lettered
	OutcomeEmpty   = "empty"   // decoded but carried no mappable reading
)

// Metrics are the ingest's Prometheus metrics, registered on the registry the caller passes.
type Metrics struct {
	messages      *prometheus.CounterVec
	unmapped      *prometheus.CounterVec
	counterEvents *prometheus.CounterVec
	deadletters   *prometheus.CounterVec
	stored        prometheus.Counter
	spooled       prometheus.Counter
	replayed      prometheus.Counter
	storeErrors   prometheus.Counter
	storeRejected prometheus.Counter
	writeSeconds  prometheus.Histogram
	lag           prometheus.Histogram
	spoolBytes    prometheus.Gauge
	pending       prometheus.Gauge
	Connected     prometheus.Gauge
}

// NewMetrics creates and registers the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_ingest_messages_total", Help: "MQTT messages received, by source and outcome.",
		}, []string{"source", "outcome"}),
		unmapped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_ingest_unmapped_total", Help: "Payload keys that map to no canonical metric (dropped).",
		}, []string{"source"}),
		counterEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_ingest_counter_events_total", Help: "Index resets, rollovers and implausible jumps.",
		}, []string{"flag"}),
		deadletters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_ingest_deadletter_failures_total", Help: "Invalid messages that could not be published to the dead-letter topic.",
		}, []string{"source"}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyperviseur_readings_stored_total", Help: "Readings written to the store (raw, deltas and counter events).",
		}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyperviseur_readings_spooled_total", Help: "Readings written to the on-disk spool because the store failed.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyperviseur_readings_replayed_total", Help: "Spooled readings replayed into the store.",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyperviseur_store_errors_total", Help: "Failed store writes.",
		}),
		storeRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyperviseur_store_rejected_batches_total", Help: "Batches stored with some readings refused by the engine (conflicting values, too old).",
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hyperviseur_store_write_seconds", Help: "Latency of one batch write to the store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}),
		// Observed once per message, not per reading: a message is acknowledged as a whole, its readings share
		// its time, and one observation per message costs ~20 ns next to the ~10 µs the message costs to
		// ingest. Its _count is therefore the number of messages made durable, which `hyperviseur bench`
		// compares with what it published.
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hyperviseur_ingest_lag_seconds",
			Help: "Time from a message's newest reading timestamp to the moment the message is durable (stored or spooled), just before its broker ack. Observed once per message, not per reading, so _count counts durable messages. Includes the device clock offset and any backlog sent late.",
			// 32 buckets from 1 ms to 60 s, each ×1.41: p50/p99 interpolate within ±20 %.
			Buckets: prometheus.ExponentialBucketsRange(0.001, 60, 32),
		}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hyperviseur_spool_bytes", Help: "Bytes waiting in the on-disk spool.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hyperviseur_ingest_pending_messages", Help: "Messages handed to the writer and not yet acknowledged to the broker.",
		}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hyperviseur_broker_connected", Help: "1 while the MQTT connection is up.",
		}),
	}
	reg.MustRegister(m.messages, m.unmapped, m.counterEvents, m.deadletters, m.stored, m.spooled, m.replayed,
		m.storeErrors, m.storeRejected, m.writeSeconds, m.lag, m.spoolBytes, m.pending, m.Connected)
	return m
}
