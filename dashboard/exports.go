package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/reporting"
)

// Streamed exports: /api/v1/exports/csv and /api/v1/exports/json take kind=series with the parameters of
// /api/v1/series, or kind=consumption with those of /api/v1/consumption, checked by the same code (same
// 400, 403 and 404). The rows are read chunk after chunk of the range and written as each chunk arrives
// (reporting/stream.go), so a year of 10-minute points costs no more memory than a week of them; the client
// going away cancels the store queries (the request's context).
//
// Progress: the response carries X-Export-Rows-Estimate before the first row (windows or the devices'
// intervals over the range, × series), and the actual count at the end: the HTTP trailer X-Export-Rows, and
// for JSON (NDJSON) a last line {"end":true,"rows":N}. An estimate above reporting.MaxExportRows is a 400
// before anything is written. An export that fails once rows are sent is cut: the connection is closed
// before the chunked body's end (after an {"end":true,…,"error":…} line for JSON), so no client takes a
// truncated file for a complete one.

// exportWriteTimeout bounds one write to a client that stopped reading.
const exportWriteTimeout = time.Minute

// exportCSV answers /api/v1/exports/csv?kind=series|consumption&….
func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request, p Principal) {
	s.exportStream(w, r, p, reporting.ExportCSV)
}

// exportJSON answers /api/v1/exports/json?kind=series|consumption&…: NDJSON.
func (s *Server) exportJSON(w http.ResponseWriter, r *http.Request, p Principal) {
	s.exportStream(w, r, p, reporting.ExportJSON)
}

// exportPlan is a checked export, ready to stream.
type exportPlan struct {
	name     string // file name, without extension
	cols     []string
	estimate int64
	stream   func(ctx context.Context, w *reporting.RowWriter) error
}

func (s *Server) exportStream(w http.ResponseWriter, r *http.Request, p Principal, format reporting.ExportFormat) {
	q := r.URL.Query() // a fresh map: kind can go
	kind := q.Get("kind")
	delete(q, "kind")
	var (
		plan exportPlan
		err  error
	)
	switch kind {
	case "series":
		plan, err = s.seriesExport(q, p)
	case "consumption":
		if !s.analyticsOn(w) {
			return
		}
		plan, err = s.consumptionExport(q, p)
	default:
		err = badRequest("kind: want series or consumption")
	}
	if err != nil {
		s.exportFail(w, r, kind, err)
		return
	}
	if plan.estimate > reporting.MaxExportRows {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from, to: about %d rows is more than %d per export: shorten the range, use a larger every or fewer devices",
			plan.estimate, reporting.MaxExportRows))
		return
	}

	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }() // the connection may serve another request
	ext, ctype := "csv", "text/csv; charset=utf-8"
	if format == reporting.ExportJSON {
		ext, ctype = "ndjson", "application/x-ndjson; charset=utf-8"
	}
	out := &exportBody{w: w, rc: rc, start: func() {
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, plan.name, ext))
		h.Set("X-Export-Rows-Estimate", strconv.FormatInt(plan.estimate, 10))
		h.Set("X-Accel-Buffering", "no") // a reverse proxy passes chunks on as they come
		h.Set("Trailer", "X-Export-Rows")
		w.WriteHeader(http.StatusOK)
	}}
	rw := reporting.NewRowWriter(out, format, plan.cols, reporting.MaxExportRows)
	rw.Flush = func() error {
		if !out.started {
			return nil
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	err = plan.stream(r.Context(), rw)
	if err == nil {
		if err = rw.Close(nil); err == nil {
			w.Header().Set("X-Export-Rows", strconv.FormatInt(rw.Rows(), 10))
			return
		}
	}
	if !out.started { // nothing sent yet: a status can still say what went wrong
		s.exportFail(w, r, kind, err)
		return
	}
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		return // the client went away: nobody reads the rest
	}
	s.log.Warn("export cut short", "kind", kind, "query", r.URL.RawQuery, "rows", rw.Rows(), "err", err)
	_ = rw.Close(err)
	panic(http.ErrAbortHandler)
}

// exportFail answers an export's error before its body, as /series or /consumption would.
func (s *Server) exportFail(w http.ResponseWriter, r *http.Request, kind string, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, context.Canceled):
	case errors.Is(err, reporting.ErrTooManyRows):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from, to: more than %d rows per export: shorten the range or use a larger every", reporting.MaxExportRows))
	case kind == "consumption":
		s.consumptionFail(w, err)
	default:
		s.storeError(w, r, err)
	}
}

// exportBody writes the body, starting the response (status, headers) on its first write, and bounds each
// write.
type exportBody struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	start   func()
	started bool
}

func (b *exportBody) Write(p []byte) (int, error) {
	if !b.started {
		b.started = true
		b.start()
	}
	_ = b.rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	return b.w.Write(p)
}

// seriesExport checks a series export: the parameters of /api/v1/series; the devices it covers (for the
// estimate and the chunk size) are those of the registry the caller sees and the filters select, plus, for
// the staff, unregistered devices named or, without a label filter, reported.
func (s *Server) seriesExport(v url.Values, p Principal) (exportPlan, error) {
	reg := s.reg()
	q, metrics, err := s.seriesQuery(v, reg, p, reporting.MaxExportRows)
	if err != nil {
		return exportPlan{}, err
	}
	sc := scopeOf(p)
	var intervals []time.Duration
	for _, d := range reg.Devices() {
		_, st, _ := reg.Device(d.ID)
		if sc.has(st.EPCI) && in(q.Devices, d.ID) && in(q.Sites, d.Site) && in(q.Communes, st.Commune) &&
			in(q.EPCIs, st.EPCI) && (len(q.Fluids) == 0 || slices.Contains(q.Fluids, d.Fluid)) {
			intervals = append(intervals, d.Interval)
		}
	}
	if seesUnregistered(p) && len(q.Sites)+len(q.Communes)+len(q.EPCIs)+len(q.Fluids) == 0 {
		if len(q.Devices) > 0 {
			for _, id := range q.Devices {
				if _, _, ok := reg.Device(id); !ok {
					intervals = append(intervals, 0)
				}
			}
		} else {
			for range s.unregisteredList() {
				intervals = append(intervals, 0)
			}
		}
	}
	e := reporting.SeriesExport{Query: q, Metrics: metrics, Intervals: intervals,
		Keep: func(sr hv.Series) bool { return seriesVisible(reg, sc, p, sr) }}
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = string(m)
	}
	return exportPlan{
		name:     fileName("series", strings.Join(names, "-"), dayStamp(time.UnixMilli(q.From).UTC()), dayStamp(time.UnixMilli(q.To-1).UTC())),
		cols:     reporting.SeriesColumns,
		estimate: e.Estimate(),
		stream: func(ctx context.Context, w *reporting.RowWriter) error {
			return e.Stream(ctx, queryTimeoutStore{s.deps.Store}, w)
		},
	}, nil
}

// consumptionExport checks a consumption export: the parameters of /api/v1/consumption.
func (s *Server) consumptionExport(v url.Values, p Principal) (exportPlan, error) {
	req, err := s.consumptionRequest(v, p)
	if err != nil {
		return exportPlan{}, err
	}
	an := s.deps.Consumption
	est, err := an.ConsumptionEstimate(req)
	if err != nil {
		return exportPlan{}, err
	}
	return exportPlan{
		name:     fileName("consommation", strings.ReplaceAll(req.Scope, ":", "-"), string(req.Every), dayStamp(req.From), dayStamp(req.To)),
		cols:     reporting.ConsumptionColumns(req),
		estimate: est,
		stream: func(ctx context.Context, w *reporting.RowWriter) error {
			return an.StreamConsumption(ctx, req, w)
		},
	}, nil
}

func dayStamp(t time.Time) string { return t.Format("20060102") }

// fileName joins parts with '-', keeping letters, digits, '_' and '-' only: the name goes in a header.
func fileName(parts ...string) string {
	name := strings.Join(parts, "-")
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, name)
}

// queryTimeoutStore gives each query of an export the API's query timeout: the export as a whole may take
// minutes, one chunk may not.
type queryTimeoutStore struct{ hv.Store }

func (t queryTimeoutStore) Query(ctx context.Context, q hv.Query) ([]hv.Series, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return t.Store.Query(ctx, q)
}
