// Package influx is the InfluxDB engine of hyperviseur, on influxdb-client-go/v2. It works with InfluxDB 2.x
// and with 1.8 through its v2 compatibility API (bucket "db/rp", token "user:password" or empty, org ignored,
// Flux queries needing flux-enabled = true).
//
// A reading is one point: measurement = metric, tags device, site, commune, epci and fluid (empty ones left
// out), one float field "value", at millisecond precision.
//
// # Durability and duplicates
//
// Write returns nil once InfluxDB answered 204 to every chunk of the batch: the points are then in its WAL
// (1.8 fsyncs the WAL before answering unless wal-fsync-delay is set; 2.x likewise). A point written twice with
// the same series and time is stored once; with another value the last write wins, where the embedded tsdb
// engine refuses the second value.
package influx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	http2 "github.com/influxdata/influxdb-client-go/v2/api/http"

	hv "github.com/useda02/hyperviseur"
)

// Defaults of Config.
const (
	DefaultBatchSize = 5000
	DefaultTimeout   = 10 * time.Second
)

// Retries of a chunk InfluxDB could not take (5xx, 429, connection refused, timeout), inside the ctx deadline.
const (
	writeAttempts = 4
	firstBackoff  = 200 * time.Millisecond
	maxBackoff    = 2 * time.Second
)

// Config locates the server.
type Config struct {
	URL    string // http://host:8086
	Token  string // 2.x token; "user:password" or empty for 1.8
	Org    string // ignored by 1.8
	Bucket string // 2.x bucket; "db/rp" (or "db" for the default policy) for 1.8
	// BatchSize is the number of lines per HTTP write; a larger Write is sent in chunks. Default 5000.
	BatchSize int
	GZip      bool
	// Timeout bounds one HTTP request. Default 10 s.
	Timeout time.Duration
}

// writer and querier are the parts of the client the store uses, so unit tests can fake the server.
type writer interface {
	WriteRecord(ctx context.Context, line ...string) error
}

type querier interface {
	Query(ctx context.Context, query string) (*api.QueryTableResult, error)
}

// Store is the InfluxDB engine. It is safe for concurrent use.
type Store struct {
	cfg    Config
	client influxdb2.Client
	w      writer
	q      querier
	log    *slog.Logger
	bufs   sync.Pool
	sleep  func(context.Context, time.Duration) error
}

var _ hv.Store = (*Store)(nil)

// Open checks the configuration and connects. A server that does not answer yet is not an error (ingest
// spools until it does); it is logged.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("influx: open: url: %w: empty", hv.ErrInvalid)
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("influx: open: bucket: %w: empty", hv.ErrInvalid)
	}
	if cfg.BatchSize < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("influx: open: batch size and timeout: %w: must not be negative", hv.ErrInvalid)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	var rt http.RoundTripper = tr
	if cfg.GZip {
		rt = &gzipTransport{base: tr}
	}
	opts := influxdb2.DefaultOptions().
		SetPrecision(time.Millisecond).
		SetBatchSize(uint(cfg.BatchSize)).
		SetHTTPClient(&http.Client{Timeout: cfg.Timeout, Transport: rt})
	client := influxdb2.NewClientWithOptions(strings.TrimRight(cfg.URL, "/"), cfg.Token, opts)
	s := newStore(cfg, client.WriteAPIBlocking(cfg.Org, cfg.Bucket), client.QueryAPI(cfg.Org), logger)
	s.client = client
	if err := s.Ping(ctx); err != nil {
		logger.Warn("influxdb not ready at open; writes will fail over to the spool until it is", "url", cfg.URL,
			"bucket", cfg.Bucket, "err", err)
	}
	return s, nil
}

func newStore(cfg Config, w writer, q querier, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	return &Store{cfg: cfg, w: w, q: q, log: logger, sleep: sleepCtx,
		bufs: sync.Pool{New: func() any { b := make([]byte, 0, 64*1024); return &b }}}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Write sends the readings in chunks of BatchSize lines. Readings that cannot be encoded, and chunks the
// server refuses as a client error (field type conflict, unparsable line), are skipped and reported with an
// error wrapping hyperviseur.ErrInvalid once the rest is written. A chunk the server cannot take (down,
// 5xx, 429, timeout) is retried a few times within ctx; then Write returns an error wrapping
// hyperviseur.ErrUnavailable so the caller spools the whole batch: chunks already written are written again
// on replay, which InfluxDB stores once.
func (s *Store) Write(ctx context.Context, rs []hv.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := (*bp)[:0]
	var (
		lines   int
		skipped int
		errs    []error
	)
	flush := func() error {
		if lines == 0 {
			return nil
		}
		err := s.send(ctx, string(buf), lines)
		buf, lines = buf[:0], 0
		if errors.Is(err, hv.ErrInvalid) {
			skipped++
			errs = append(errs, err)
			return nil
		}
		return err
	}
	var bad int
	for i := range rs {
		n := len(buf)
		if lines > 0 {
			buf = append(buf, '\n')
		}
		var err error
		if buf, err = appendLine(buf, &rs[i]); err != nil {
			buf = buf[:n]
			bad++
			if bad <= 3 {
				errs = append(errs, err)
			}
			continue
		}
		if lines++; lines == s.cfg.BatchSize {
			if err := flush(); err != nil {
				*bp = buf
				return err
			}
		}
	}
	err := flush()
	*bp = buf
	if err != nil {
		return err
	}
	if bad > 0 || skipped > 0 {
		return fmt.Errorf("influx: write: %w: %d of %d readings not encodable, %d chunks refused: %w",
			hv.ErrInvalid, bad, len(rs), skipped, errors.Join(errs...))
	}
	return nil
}

// send writes one chunk, retrying what may pass later.
func (s *Store) send(ctx context.Context, body string, lines int) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := s.w.WriteRecord(ctx, body)
		if err == nil {
			return nil
		}
		retry, wait := classify(err)
		if !retry {
			var he *http2.Error
			if errors.As(err, &he) && he.StatusCode >= 400 && he.StatusCode < 500 && !unavailableStatus(he.StatusCode) {
				return fmt.Errorf("influx: write %d lines: %w: %w", lines, hv.ErrInvalid, describe(err))
			}
			return fmt.Errorf("influx: write %d lines: %w: %w", lines, hv.ErrUnavailable, describe(err))
		}
		if attempt == writeAttempts || ctx.Err() != nil {
			return fmt.Errorf("influx: write %d lines: %w after %d attempts: %w", lines, hv.ErrUnavailable,
				attempt, describe(err))
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(backoff*2, maxBackoff)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("influx: write %d lines: %w (no time left to retry): %w", lines, hv.ErrUnavailable,
				describe(err))
		}
		s.log.Debug("influx write failed; retrying", "attempt", attempt, "wait", wait, "err", err)
		if err := s.sleep(ctx, wait); err != nil {
			return fmt.Errorf("influx: write %d lines: %w: %w", lines, hv.ErrUnavailable, err)
		}
	}
}

// classify says whether a write error may pass if retried, and how long the server asked to wait.
func classify(err error) (retry bool, wait time.Duration) {
	var he *http2.Error
	if !errors.As(err, &he) {
		return true, 0
	}
	switch {
	case he.StatusCode == 0: // no HTTP answer: connection refused or reset, timeout
		return true, 0
	case he.StatusCode == http.StatusTooManyRequests || he.StatusCode >= 500:
		return true, time.Duration(he.RetryAfter) * time.Second
	}
	return false, 0
}

// unavailableStatus is a client error that is a deployment problem, not a bad point: retrying the same points
// later, once the token or bucket is fixed, will pass, so they must be spooled rather than dropped.
func unavailableStatus(code int) bool {
	return code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound
}

// describe adds what InfluxDB 1.8 puts only in a header (its JSON error body has no "message").
func describe(err error) error {
	var he *http2.Error
	if errors.As(err, &he) && he.Header != nil {
		if m := he.Header.Get("X-Influxdb-Error"); m != "" && !strings.Contains(err.Error(), m) {
			return fmt.Errorf("%w: %s", err, m)
		}
	}
	return err
}

// Query returns the series of q, one per device, sorted by device. mean, sum, min, max, last and count are
// computed by InfluxDB; raw points and increase are fetched in time order and folded by hyperviseur.Aggregate.
func (s *Store) Query(ctx context.Context, q hv.Query) ([]hv.Series, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("influx: query: %w", err)
	}
	flux, server := queryFlux(s.cfg.Bucket, q)
	res, err := s.q.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("influx: query: %w: %w", hv.ErrUnavailable, describe(err))
	}
	defer res.Close()
	// Rows come table by table, a table per label set; a device whose labels changed has several.
	groups := make(map[string]*hv.Series)
	var (
		cur    *hv.Series
		curKey string
	)
	for res.Next() {
		rec := res.Record()
		vals := rec.Values()
		if key := labelKey(vals); cur == nil || key != curKey {
			if cur = groups[key]; cur == nil {
				se := seriesOf(vals, q.Metric)
				cur = &se
				groups[key] = cur
			}
			curKey = key
		}
		v, ok := number(rec.Value())
		if !ok {
			continue
		}
		t := rec.Time().UnixMilli()
		if server {
			t = hv.WindowStart(t, q.Every)
		}
		cur.Points = append(cur.Points, hv.Point{Time: t, Value: v})
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("influx: query: %w", describe(err))
	}
	return mergeByDevice(groups, q, server), nil
}

// mergeByDevice makes one series per device, labelled as its newest point, then folds raw points into
// windows when the server did not.
func mergeByDevice(groups map[string]*hv.Series, q hv.Query, server bool) []hv.Series {
	byDevice := make(map[string][]*hv.Series)
	for _, g := range groups {
		if len(g.Points) > 0 {
			byDevice[g.Device] = append(byDevice[g.Device], g)
		}
	}
	out := make([]hv.Series, 0, len(byDevice))
	for _, gs := range byDevice {
		se := *gs[0]
		if len(gs) > 1 {
			newest := slices.MaxFunc(gs, func(a, b *hv.Series) int {
				return cmp.Compare(a.Points[len(a.Points)-1].Time, b.Points[len(b.Points)-1].Time)
			})
			se = *newest
			se.Points = nil
			for _, g := range gs {
				se.Points = append(se.Points, g.Points...)
			}
		}
		if !slices.IsSortedFunc(se.Points, cmpPoint) {
			slices.SortStableFunc(se.Points, cmpPoint)
		}
		if q.Every > 0 && !server {
			se.Points = hv.Aggregate(se.Points, q.Every, q.Agg)
		}
		out = append(out, se)
	}
	slices.SortFunc(out, func(a, b hv.Series) int { return strings.Compare(a.Device, b.Device) })
	return out
}

func cmpPoint(a, b hv.Point) int { return cmp.Compare(a.Time, b.Time) }

func str(vals map[string]any, k string) string {
	s, _ := vals[k].(string)
	return s
}

func labelKey(vals map[string]any) string {
	return str(vals, "_measurement") + "\x00" + str(vals, tagDevice) + "\x00" + str(vals, tagSite) + "\x00" +
		str(vals, tagCommune) + "\x00" + str(vals, tagEPCI) + "\x00" + str(vals, tagFluid)
}

func seriesOf(vals map[string]any, m hv.Metric) hv.Series {
	return hv.Series{Device: str(vals, tagDevice), Metric: m, Unit: m.Unit(), Site: str(vals, tagSite),
		Commune: str(vals, tagCommune), EPCI: str(vals, tagEPCI), Fluid: hv.Fluid(str(vals, tagFluid))}
}

// number reads _value: a float, or an integer for count.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

// Last returns, for each device and metric among metrics, the newest reading with a time in [since, now],
// sorted by device then metric.
func (s *Store) Last(ctx context.Context, metrics []hv.Metric, since int64) ([]hv.Reading, error) {
	now := time.Now().UnixMilli()
	if len(metrics) == 0 || since > now {
		return []hv.Reading{}, nil
	}
	res, err := s.q.Query(ctx, lastFlux(s.cfg.Bucket, metrics, since, now))
	if err != nil {
		return nil, fmt.Errorf("influx: last: %w: %w", hv.ErrUnavailable, describe(err))
	}
	defer res.Close()
	newest := hv.Newest{}
	for res.Next() {
		rec := res.Record()
		vals := rec.Values()
		v, ok := number(rec.Value())
		if !ok {
			continue
		}
		r := hv.Reading{Device: str(vals, tagDevice), Metric: hv.Metric(str(vals, "_measurement")), Value: v,
			Time: rec.Time().UnixMilli(), Site: str(vals, tagSite), Commune: str(vals, tagCommune),
			EPCI: str(vals, tagEPCI), Fluid: hv.Fluid(str(vals, tagFluid))}
		newest.Add(r)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("influx: last: %w", describe(err))
	}
	return newest.Sorted(), nil
}

// Ping checks the server answers /ping, then that the bucket takes writes: an empty write goes through
// authentication and the bucket lookup without storing anything.
func (s *Store) Ping(ctx context.Context) error {
	if s.client != nil {
		if ok, err := s.client.Ping(ctx); err != nil || !ok {
			return fmt.Errorf("influx: ping %s: %w: %v", s.cfg.URL, hv.ErrUnavailable, err)
		}
	}
	err := s.w.WriteRecord(ctx, "")
	var he *http2.Error
	// 2.x may answer 400 "no data" to an empty body: it got past the token and the bucket all the same.
	if err != nil && !(errors.As(err, &he) && he.StatusCode == http.StatusBadRequest) {
		return fmt.Errorf("influx: ping bucket %q: %w: %w", s.cfg.Bucket, hv.ErrUnavailable, describe(err))
	}
	return nil
}

// Close releases the client's idle connections. Nothing is buffered: every Write is blocking.
func (s *Store) Close() error {
	if s.client != nil {
		s.client.Close()
	}
	return nil
}
