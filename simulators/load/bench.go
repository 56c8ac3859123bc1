package load

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BenchConfig is one `hyperviseur bench` run: the load, and how to watch the service.
type BenchConfig struct {
	Load       Config
	MetricsURL string        // the service's /metrics
	PID        int           // the service's process when it runs here: RSS is then read from /proc, VmHWM too
	Wait       time.Duration // after the last PUBACK, how long to wait for the service to store everything; default 2m
	// Settle, when set, waits after the run (up to that long) for the service's next garbage collection before
	// reading its memory, so heap in use is mostly live data. Go collects at least every 2 minutes.
	Settle      time.Duration
	SampleEvery time.Duration // RSS sampling period during the run; default 250ms
	Client      *http.Client
	Progress    io.Writer // one line per phase; nil: silent
	// WSURL, when set, is the service's live websocket (/api/v1/ws), opened with Token before publishing:
	// each bench power reading's arrival there gives the publish→websocket latency.
	WSURL string
	Token string
}

// Result is what a run measured. Counts come from deltas of the service's counters between the first scrape
// and the last one: the service is assumed to take no other traffic meanwhile.
type Result struct {
	Devices     int     `json:"devices"`
	Connections int     `json:"connections"`
	TargetRate  float64 `json:"target_rate_msgs_per_s"` // 0: as fast as the broker acknowledges

	Published         int64   `json:"published_messages"` // acknowledged by the broker
	PublishFailed     int64   `json:"publish_failed"`
	PublishedReadings int64   `json:"published_readings"`
	PublishSeconds    float64 `json:"publish_seconds"` // first publish → last PUBACK
	PublishedPerSec   float64 `json:"published_msgs_per_s"`

	// MessagesStored is how many messages the service made durable (hyperviseur_ingest_lag_seconds_count:
	// observed once per message, right before its ack). A message is stored whole, so ReadingsStored is
	// MessagesStored × readings per message.
	MessagesStored int64 `json:"stored_messages"`
	ReadingsStored int64 `json:"stored_readings"`
	// ReadingsWritten is hyperviseur_readings_stored_total's delta: the raw readings plus the interval deltas
	// ingest derives from each energy index (one per message but each device's first).
	ReadingsWritten int64   `json:"written_readings"`
	Spooled         int64   `json:"spooled_readings"`
	Invalid         int64   `json:"invalid_messages"`
	Seconds         float64 `json:"seconds"` // first publish → everything stored
	MsgsPerSec      float64 `json:"stored_msgs_per_s"`
	ReadingsPerSec  float64 `json:"stored_readings_per_s"`
	WrittenPerSec   float64 `json:"written_readings_per_s"`

	// Publish→store latency per message, from the service's histogram: interpolated within its buckets.
	LagP50   float64 `json:"lag_p50_seconds"`
	LagP99   float64 `json:"lag_p99_seconds"`
	LagMean  float64 `json:"lag_mean_seconds"`
	LagAbove bool    `json:"lag_p99_above_top_bucket,omitempty"`
	// Publish→websocket latency, exact (nearest rank) over the readings received, when WSURL was given.
	WSP50      float64 `json:"ws_p50_seconds,omitempty"`
	WSP99      float64 `json:"ws_p99_seconds,omitempty"`
	WSReceived int     `json:"ws_received_readings,omitempty"`

	CPUSeconds    float64 `json:"service_cpu_seconds"`
	CPUPerReading float64 `json:"service_cpu_seconds_per_reading"`
	PeakRSS       int64   `json:"service_peak_rss_bytes"` // sampled during the run
	PeakRSSFrom   string  `json:"service_peak_rss_from"`
	VmHWM         int64   `json:"service_vmhwm_bytes,omitempty"` // peak since the service started (--pid)
	RSS           int64   `json:"service_rss_bytes"`             // after the run (and Settle)
	HeapInuse     int64   `json:"service_heap_inuse_bytes"`
	HeapLive      int64   `json:"service_heap_live_bytes,omitempty"` // live heap at the last GC (go_gc_heap_live_bytes)
	Settled       bool    `json:"settled_after_gc"`                  // a GC ran between the end of the run and the memory reading

	LostMessages int64 `json:"lost_messages"` // published − stored; negative: stored more than acknowledged
	LostReadings int64 `json:"lost_readings"`
	TimedOut     bool  `json:"timed_out"`

	Notes []string `json:"notes"`
}

// Bench runs the load against a service and measures it through its /metrics.
func Bench(ctx context.Context, cfg BenchConfig) (*Result, error) {
	cfg.Load.defaults()
	if err := cfg.Load.Validate(); err != nil {
		return nil, err
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Minute
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 250 * time.Millisecond
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	sc := &Scraper{URL: cfg.MetricsURL, Client: client}
	before, err := sc.Scrape(ctx)
	if err != nil {
		return nil, err
	}
	if before.Pending > 0 {
		fmt.Fprintf(progress, "warning: the service has %g messages pending before the run: its counters will include them\n", before.Pending)
	}

	peak := &peakRSS{}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() { peak.sample(sampleCtx, cfg, sc) })
	defer func() { stopSampling(); sampler.Wait() }()

	var ws *wsWatcher
	if cfg.WSURL != "" {
		if ws, err = watchWS(ctx, cfg.WSURL, cfg.Token); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(progress, "publishing: %d devices over %d connections to %s\n", cfg.Load.Devices, cfg.Load.Connections, cfg.Load.Broker)
	stats, err := Run(ctx, cfg.Load)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "published %d messages in %s (%d failed); waiting for the service to store them\n",
		stats.Published, stats.End.Sub(stats.Start).Round(time.Millisecond), stats.Failed)

	// Done when the service has made every published message durable and holds none in its writer.
	after, end, timedOut, err := waitStored(ctx, sc, before, stats.Published, cfg.Wait)
	if err != nil {
		return nil, err
	}
	stopSampling()
	sampler.Wait()
	peak.sampleOnce(ctx, cfg, sc) // a run shorter than the sampling period still gets its end state
	if ws != nil {
		ws.wait(stats.Published, 10*time.Second) // stored means pushed: this only drains the socket
	}

	mem, settled := after, false
	if cfg.Settle > 0 {
		fmt.Fprintf(progress, "waiting up to %s for the service's next garbage collection before reading its memory\n", cfg.Settle)
		mem, settled, err = waitGC(ctx, sc, end, cfg.Settle)
		if err != nil {
			return nil, err
		}
	}

	lag, err := after.Lag.Sub(before.Lag)
	if err != nil {
		return nil, err
	}
	r := &Result{
		Devices: cfg.Load.Devices, Connections: cfg.Load.Connections, TargetRate: cfg.Load.Rate,
		Published: stats.Published, PublishFailed: stats.Failed, PublishedReadings: stats.Published * ReadingsPerMessage,
		PublishSeconds:  stats.End.Sub(stats.Start).Seconds(),
		MessagesStored:  int64(lag.Count),
		ReadingsWritten: int64(after.Stored - before.Stored),
		Spooled:         int64(after.Spooled - before.Spooled),
		Invalid:         int64(after.Messages["invalid"] - before.Messages["invalid"]),
		Seconds:         end.Sub(stats.Start).Seconds(),
		CPUSeconds:      after.CPUSeconds - before.CPUSeconds,
		PeakRSS:         peak.max(),
		PeakRSSFrom:     peak.from,
		RSS:             int64(mem.RSS),
		HeapInuse:       int64(mem.HeapInuse),
		HeapLive:        int64(mem.HeapLive),
		Settled:         settled,
		TimedOut:        timedOut,
	}
	r.ReadingsStored = r.MessagesStored * ReadingsPerMessage
	r.LostMessages = r.Published - r.MessagesStored
	r.LostReadings = r.LostMessages * ReadingsPerMessage
	if r.PublishSeconds > 0 {
		r.PublishedPerSec = float64(r.Published) / r.PublishSeconds
	}
	if r.Seconds > 0 {
		r.MsgsPerSec = float64(r.MessagesStored) / r.Seconds
		r.ReadingsPerSec = float64(r.ReadingsStored) / r.Seconds
		r.WrittenPerSec = float64(r.ReadingsWritten) / r.Seconds
	}
	if r.ReadingsStored > 0 {
		r.CPUPerReading = r.CPUSeconds / float64(r.ReadingsStored)
	}
	r.LagP50, _ = lag.Quantile(0.50)
	r.LagP99, r.LagAbove = lag.Quantile(0.99)
	if lag.Count > 0 {
		r.LagMean = lag.Sum / lag.Count
	} else {
		r.LagP50, r.LagP99 = 0, 0 // NaN has no JSON form; the note says why
		r.Notes = append(r.Notes, "no message was stored: no latency to report")
	}
	if ws != nil {
		p50, p99, n := ws.quantiles()
		r.WSP50, r.WSP99, r.WSReceived = p50.Seconds(), p99.Seconds(), n
		r.Notes = append(r.Notes, fmt.Sprintf("publish→websocket: exact over the %d power readings received on the live feed (nearest rank)", n))
	} else {
		r.Notes = append(r.Notes, "publish→websocket latency: not measured (no --ws)")
	}
	if cfg.PID > 0 {
		if hwm, err := procStatus(cfg.PID, "VmHWM:"); err == nil {
			r.VmHWM = hwm
		}
	}
	r.Notes = append(r.Notes,
		"latency: publish→store per message, from the service's hyperviseur_ingest_lag_seconds, interpolated linearly within its buckets (±20 %); timestamps are rounded to the millisecond",
		"readings stored: messages made durable × 2 raw readings; written also counts the energy interval deltas ingest derives",
		"CPU per reading: delta of the service's process_cpu_seconds_total over raw readings stored (includes the bench's scrapes)")
	r.Notes = append(r.Notes, fmt.Sprintf("devices share %d MQTT connections: a real fleet's per-connection broker memory is not included", r.Connections))
	if r.Spooled > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d readings went to the spool: the store refused writes during the run", r.Spooled))
	}
	if stats.FirstErr != nil {
		r.Notes = append(r.Notes, "first publish failure: "+stats.FirstErr.Error())
	}
	return r, nil
}

// waitStored polls until the service reports published messages durable beyond before and nothing pending,
// or wait passes. It returns the last snapshot and when it was taken.
func waitStored(ctx context.Context, sc *Scraper, before Snapshot, published int64, wait time.Duration) (Snapshot, time.Time, bool, error) {
	deadline := time.Now().Add(wait)
	for {
		s, err := sc.Scrape(ctx)
		now := time.Now()
		if err != nil {
			return s, now, false, err
		}
		if s.Lag.Count-before.Lag.Count >= float64(published) && s.Pending == 0 {
			return s, now, false, nil
		}
		if now.After(deadline) {
			return s, now, true, nil
		}
		select {
		case <-ctx.Done():
			return s, now, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitGC polls until the service reports a garbage collection after since, or settle passes.
func waitGC(ctx context.Context, sc *Scraper, since time.Time, settle time.Duration) (Snapshot, bool, error) {
	deadline := time.Now().Add(settle)
	for {
		s, err := sc.Scrape(ctx)
		if err != nil {
			return s, false, err
		}
		if s.LastGC > float64(since.UnixNano())/1e9 {
			return s, true, nil
		}
		if time.Now().After(deadline) {
			return s, false, nil
		}
		select {
		case <-ctx.Done():
			return s, false, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// peakRSS keeps the highest RSS seen while sampling.
type peakRSS struct {
	mu   sync.Mutex
	peak int64
	from string
}

func (p *peakRSS) max() int64 { p.mu.Lock(); defer p.mu.Unlock(); return p.peak }

func (p *peakRSS) see(v int64) {
	p.mu.Lock()
	p.peak = max(p.peak, v)
	p.mu.Unlock()
}

// sample reads /proc/<pid>/status VmRSS when the service is local (free for the service), else its
// process_resident_memory_bytes, every SampleEvery until ctx ends.
func (p *peakRSS) sample(ctx context.Context, cfg BenchConfig, sc *Scraper) {
	p.from = fmt.Sprintf("%s sampled every %s", MetricRSS, cfg.SampleEvery)
	if cfg.PID > 0 {
		p.from = fmt.Sprintf("/proc/%d/status VmRSS sampled every %s", cfg.PID, cfg.SampleEvery)
	}
	tick := time.NewTicker(cfg.SampleEvery)
	defer tick.Stop()
	for {
		p.sampleOnce(ctx, cfg, sc)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *peakRSS) sampleOnce(ctx context.Context, cfg BenchConfig, sc *Scraper) {
	if cfg.PID > 0 {
		if v, err := procStatus(cfg.PID, "VmRSS:"); err == nil {
			p.see(v)
		}
	} else if s, err := sc.Scrape(ctx); err == nil {
		p.see(int64(s.RSS))
	}
}

// procStatus reads one "Key:   123 kB" line of /proc/<pid>/status, in bytes.
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %s %w", pid, key, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s line", pid, key)
}

// WriteTable prints the result for a terminal.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	rate := "as fast as the broker acknowledges"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("target %s msgs/s", num(r.TargetRate))
	}
	fmt.Fprintf(&b, "hyperviseur bench: %d devices, %d connections, QoS 1, %s\n\n", r.Devices, r.Connections, rate)
	row := func(k, format string, args ...any) { fmt.Fprintf(&b, "  %-22s %s\n", k, fmt.Sprintf(format, args...)) }
	row("published", "%d messages, %d readings in %.2f s (%s msgs/s), %d failed", r.Published, r.PublishedReadings,
		r.PublishSeconds, num(r.PublishedPerSec), r.PublishFailed)
	row("stored", "%d messages, %d readings durable after %.2f s%s", r.MessagesStored, r.ReadingsStored, r.Seconds, timedOut(r.TimedOut))
	row("throughput", "%s msgs/s, %s readings/s stored (%s/s written with index deltas)", num(r.MsgsPerSec), num(r.ReadingsPerSec), num(r.WrittenPerSec))
	above := ""
	if r.LagAbove {
		above = " (p99 beyond the top bucket)"
	}
	row("publish→store", "p50 %s, p99 %s, mean %s%s (interpolated from histogram buckets)", dur(r.LagP50), dur(r.LagP99), dur(r.LagMean), above)
	if r.WSReceived > 0 {
		row("publish→websocket", "p50 %s, p99 %s over %d readings received", dur(r.WSP50), dur(r.WSP99), r.WSReceived)
	} else {
		row("publish→websocket", "not measured (--ws not given)")
	}
	row("service CPU", "%.2f s, %.2f µs per reading", r.CPUSeconds, r.CPUPerReading*1e6)
	row("service peak RSS", "%s (%s)", mib(r.PeakRSS), r.PeakRSSFrom)
	if r.VmHWM > 0 {
		row("service VmHWM", "%s (peak since the service started)", mib(r.VmHWM))
	}
	settled := ""
	if r.Settled {
		settled = ", after a GC"
	}
	row("service memory after", "RSS %s, heap in use %s%s; per device: %s RSS, %s heap", mib(r.RSS), mib(r.HeapInuse), settled,
		bytesPer(r.RSS, r.Devices), bytesPer(r.HeapInuse, r.Devices))
	if r.HeapLive > 0 {
		row("live heap", "%s at the last GC; per device: %s", mib(r.HeapLive), bytesPer(r.HeapLive, r.Devices))
	}
	row("loss", "%d messages, %d readings (published − stored); %d invalid", r.LostMessages, r.LostReadings, r.Invalid)
	b.WriteString("\n")
	for _, n := range r.Notes {
		b.WriteString("  note: " + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Err reports a run that lost messages or did not finish, for the command's exit status.
func (r *Result) Err() error {
	switch {
	case r.TimedOut:
		return fmt.Errorf("bench: the service stored %d of %d messages before the wait ended", r.MessagesStored, r.Published)
	case r.LostMessages != 0:
		return fmt.Errorf("bench: %d messages lost (published − stored)", r.LostMessages)
	case r.PublishFailed > 0:
		return fmt.Errorf("bench: %d publishes got no PUBACK", r.PublishFailed)
	}
	return nil
}

func timedOut(t bool) string {
	if t {
		return " — TIMED OUT before everything was stored"
	}
	return ""
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	// Thin groups of three digits, as BENCHMARKS.md writes them.
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func dur(sec float64) string {
	if math.IsNaN(sec) {
		return "n/a"
	}
	if sec >= 1 {
		return fmt.Sprintf("%.2f s", sec)
	}
	return fmt.Sprintf("%.1f ms", sec*1000)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func bytesPer(b int64, n int) string {
	if n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s B", num(float64(b)/float64(n)))
}
