package reporting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	hv "github.com/useda02/hyperviseur"
)

// Streamed exports: the points of a series query or the rows of a consumption query, written as they are
// read, chunk after chunk of the time range, so memory stays bounded whatever the range. The HTTP API
// (/api/v1/exports/csv and /json) and the CLI (hyperviseur export series|consumption) share this code; it
// knows nothing of HTTP.
//
// Progress: Estimate is known before the first query (from the range, the step and the number of series),
// so a caller sends it up front; the RowWriter counts the rows actually written and reports the count after
// each chunk.

// ExportFormat is the encoding of a streamed export.
type ExportFormat string

// Export encodings.
const (
	// ExportCSV is ';'-separated UTF-8 (with a BOM, for spreadsheets), a header row, "\n" line ends, RFC 3339
	// times and a decimal point: the conventions of the other exports (see operat.go).
	ExportCSV ExportFormat = "csv"
	// ExportJSON is NDJSON (one JSON object per line, keys the CSV's header) ended by a last line
	// {"end":true,"rows":N} (with "error" when the export was cut short): a client reads it line by line,
	// which a single JSON array would not allow without a streaming parser, and knows the file is complete.
	ExportJSON ExportFormat = "json"
)

// ParseExportFormat validates a format name.
func ParseExportFormat(s string) (ExportFormat, error) {
	switch f := ExportFormat(s); f {
	case ExportCSV, ExportJSON:
		return f, nil
	}
	return "", fmt.Errorf("format %q: %w: want csv|json", s, hv.ErrInvalid)
}

// MaxExportRows bounds one export: about 400 MB of CSV, a year of 10-minute points of 95 devices. Callers
// refuse a request whose estimate is larger before writing anything; a stream that finds more rows than
// that (raw points denser than the devices' registered interval) stops with ErrTooManyRows.
const MaxExportRows = 5_000_000

// ErrTooManyRows stops an export that went past its row limit.
var ErrTooManyRows = errors.New("too many rows")

// Chunking: a chunk aims at exportChunkRows rows (all series together), and never spans more than a week of
// raw points or a month of windows.
const (
	exportChunkRows = 50_000
	maxRawChunk     = 7 * 24 * time.Hour
	maxAggChunk     = 31 * 24 * time.Hour
	minRawChunk     = time.Minute
	// DefaultExportInterval is the spacing assumed for raw points of a device without a registered interval.
	DefaultExportInterval = 10 * time.Minute
)

// writerBuffer is what a RowWriter holds before it writes to its output.
const writerBuffer = 64 << 10

// RowWriter encodes rows of fixed columns as CSV or NDJSON, buffered, and counts them. Cells are added
// left to right, one per column, then EndRow. It is not safe for concurrent use.
type RowWriter struct {
	out    io.Writer
	format ExportFormat
	keys   [][]byte // NDJSON: `{"col":` then `,"col":`
	buf    []byte
	col    int
	rows   int64
	limit  int64
	// Flush, when set, runs after each chunk once its rows are written to the output (an HTTP flush).
	Flush func() error
	// Progress, when set, is told the rows written so far after each chunk.
	Progress func(rows int64)
}

// NewRowWriter writes rows of cols to out; more than limit rows (0: MaxExportRows) is ErrTooManyRows. The
// CSV header is buffered: nothing reaches out before the first chunk ends (or the buffer fills), so a caller
// can still answer an error when the first query fails.
func NewRowWriter(out io.Writer, format ExportFormat, cols []string, limit int64) *RowWriter {
	if limit <= 0 {
		limit = MaxExportRows
	}
	w := &RowWriter{out: out, format: format, limit: limit, buf: make([]byte, 0, writerBuffer+4096)}
	switch format {
	case ExportJSON:
		for i, c := range cols {
			k := []byte{','}
			if i == 0 {
				k[0] = '{'
			}
			k = appendJSONString(k, c)
			w.keys = append(w.keys, append(k, ':'))
		}
	default:
		w.format = ExportCSV
		w.buf = append(w.buf, utf8BOM...)
		for i, c := range cols {
			if i > 0 {
				w.buf = append(w.buf, ';')
			}
			w.buf = appendCSVField(w.buf, c)
		}
		w.buf = append(w.buf, '\n')
	}
	return w
}

// Rows is the number of rows written so far.
func (w *RowWriter) Rows() int64 { return w.rows }

func (w *RowWriter) cell() {
	if w.format == ExportJSON {
		if w.col < len(w.keys) {
			w.buf = append(w.buf, w.keys[w.col]...)
		}
	} else if w.col > 0 {
		w.buf = append(w.buf, ';')
	}
	w.col++
}

// String adds a text cell.
func (w *RowWriter) String(s string) {
	w.cell()
	if w.format == ExportJSON {
		w.buf = appendJSONString(w.buf, s)
	} else {
		w.buf = appendCSVField(w.buf, s)
	}
}

// Float adds a number: shortest decimal that reads back the same, with a decimal point; a NaN or an
// infinity is an empty cell (null in JSON).
func (w *RowWriter) Float(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		w.Null()
		return
	}
	w.cell()
	// Like encoding/json: plain decimals but for very small or very large magnitudes.
	f := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		f = 'e'
	}
	w.buf = strconv.AppendFloat(w.buf, v, f, -1, 64)
}

// FloatPtr adds *v, or an empty cell when v is nil.
func (w *RowWriter) FloatPtr(v *float64) {
	if v == nil {
		w.Null()
		return
	}
	w.Float(*v)
}

// rfc3339Milli is RFC 3339 with milliseconds, left out when zero.
const rfc3339Milli = "2006-01-02T15:04:05.999Z07:00"

// Time adds an RFC 3339 time in t's location.
func (w *RowWriter) Time(t time.Time) {
	w.cell()
	if w.format == ExportJSON {
		w.buf = append(w.buf, '"')
	}
	w.buf = t.AppendFormat(w.buf, rfc3339Milli)
	if w.format == ExportJSON {
		w.buf = append(w.buf, '"')
	}
}

// Null adds an empty cell (null in JSON).
func (w *RowWriter) Null() {
	w.cell()
	if w.format == ExportJSON {
		w.buf = append(w.buf, "null"...)
	}
}

// EndRow ends the row; it is ErrTooManyRows past the limit, or the output's error.
func (w *RowWriter) EndRow() error {
	if w.format == ExportJSON {
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, '\n')
	w.col = 0
	w.rows++
	if w.rows > w.limit {
		return fmt.Errorf("export: %w: more than %d", ErrTooManyRows, w.limit)
	}
	if len(w.buf) >= writerBuffer {
		return w.write()
	}
	return nil
}

func (w *RowWriter) write() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}

// EndChunk writes what is buffered, flushes and reports progress.
func (w *RowWriter) EndChunk() error {
	if err := w.write(); err != nil {
		return err
	}
	if w.Flush != nil {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("export: flush: %w", err)
		}
	}
	if w.Progress != nil {
		w.Progress(w.rows)
	}
	return nil
}

// Close ends the export: NDJSON gets its end line, with cause when the export was cut short (cause nil:
// complete); everything buffered is written.
func (w *RowWriter) Close(cause error) error {
	if w.format == ExportJSON {
		w.buf = append(w.buf, `{"end":true,"rows":`...)
		w.buf = strconv.AppendInt(w.buf, w.rows, 10)
		if cause != nil {
			w.buf = append(w.buf, `,"error":`...)
			w.buf = appendJSONString(w.buf, cause.Error())
		}
		w.buf = append(w.buf, "}\n"...)
	}
	return w.EndChunk()
}

// appendCSVField quotes a field the way encoding/csv does with ';' as the separator.
func appendCSVField(b []byte, s string) []byte {
	if s == "" || !strings.ContainsAny(s, ";\"\r\n") && s[0] != ' ' && s[0] != '\t' {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and control characters escaped, other
// UTF-8 as is, invalid bytes replaced by U+FFFD (as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// SeriesColumns are the columns of a series export: one row per point.
var SeriesColumns = []string{"time", "device", "metric", "value", "unit", "site", "commune", "epci", "fluid"}

// SeriesExport is an export of series points: Query without its metric (range, filters, Every, Agg), read
// for each of Metrics.
type SeriesExport struct {
	Query   hv.Query
	Metrics []hv.Metric
	// Intervals holds, for each device the export is expected to cover, its reading interval (0: unknown,
	// DefaultExportInterval). It sizes the estimate and the chunks; devices the store finds beyond these
	// are exported all the same.
	Intervals []time.Duration
	// Keep, when set, drops the series it returns false for (a scope check in depth).
	Keep func(hv.Series) bool
}

// raw says whether the store is read point by point: raw exports, and increase (see Stream).
func (e SeriesExport) raw() bool { return e.Query.Every == 0 || e.Query.Agg == hv.AggIncrease }

// Estimate is the expected number of rows: for each device and metric, the windows of the range, or the
// range over the device's interval for raw points.
func (e SeriesExport) Estimate() int64 {
	q := e.Query
	if q.To <= q.From {
		return 0
	}
	var per int64
	if q.Every > 0 {
		windows := (hv.WindowStart(q.To-1, q.Every)-hv.WindowStart(q.From, q.Every))/q.Every + 1
		per = windows * int64(len(e.Intervals))
	} else {
		for _, iv := range e.Intervals {
			ms := interval(iv).Milliseconds()
			per += (q.To - q.From + ms - 1) / ms
		}
	}
	return per * int64(len(e.Metrics))
}

func interval(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultExportInterval
	}
	return d
}

// chunkSpan is the time one chunk covers (ms): about exportChunkRows rows, within the bounds, a whole number
// of windows when aggregating so no window is split between chunks.
func (e SeriesExport) chunkSpan() int64 {
	series := int64(max(1, len(e.Intervals)*len(e.Metrics)))
	every := e.Query.Every
	step := every
	lo, hi := every, max(every, maxAggChunk.Milliseconds())
	if e.raw() {
		step = DefaultExportInterval.Milliseconds()
		for i, iv := range e.Intervals {
			if ms := interval(iv).Milliseconds(); i == 0 || ms < step {
				step = ms
			}
		}
		lo, hi = max(every, minRawChunk.Milliseconds()), max(every, maxRawChunk.Milliseconds())
	}
	return alignSpan(min(max(exportChunkRows*step/series, lo), hi), every)
}

func alignSpan(span, every int64) int64 {
	if every > 0 {
		return max(every, span/every*every)
	}
	return span
}

// Stream writes the export's rows to w in order of time, then device, then metric (in the order of
// Metrics), one chunk of the range after the other; a chunk's rows are flushed before the next is read, and
// ctx ends the reading. It neither writes the end (Close) nor checks the estimate against a limit.
//
// Windows of an aggregate never straddle two chunks (chunks are whole windows), so each chunk's answer is
// the whole query's, but for increase: a window counts the rise from the point before it, which may sit in
// the previous chunk. Increase is therefore computed here, from raw points, carrying each series' last
// point from one chunk to the next (hv.Aggregate, the definition every engine follows).
func (e SeriesExport) Stream(ctx context.Context, store hv.Store, w *RowWriter) error {
	q := e.Query
	span := e.chunkSpan()
	ms := &seriesMerge{}
	var carry map[string]hv.Point
	if q.Agg == hv.AggIncrease {
		carry = map[string]hv.Point{}
	}
	for cur := q.From; cur < q.To; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		end := cur + span
		if q.Every > 0 {
			end = hv.WindowStart(cur, q.Every) + span
		}
		end = min(end, q.To)
		ms.reset()
		read := 0
		for _, m := range e.Metrics {
			cq := q
			cq.Metric, cq.From, cq.To = m, cur, end
			if carry != nil {
				cq.Every, cq.Agg = 0, hv.AggNone
			}
			res, err := store.Query(ctx, cq)
			if err != nil {
				return fmt.Errorf("export: query %s: %w", m, err)
			}
			for _, s := range res {
				read += len(s.Points)
				if e.Keep != nil && !e.Keep(s) {
					continue
				}
				if carry != nil {
					s.Points = increaseChunk(carry, s, cur, q.Every)
				}
				ms.add(s)
			}
		}
		if err := ms.write(w); err != nil {
			return err
		}
		if err := w.EndChunk(); err != nil {
			return err
		}
		// Raw points denser than expected: smaller chunks, so the next reads stay bounded.
		if e.raw() && read > 2*exportChunkRows {
			lo := max(q.Every, minRawChunk.Milliseconds())
			span = alignSpan(max(lo, span*exportChunkRows/int64(read)), q.Every)
		}
		cur = end
	}
	return nil
}

// increaseChunk aggregates a chunk's raw points of s into increase windows of every, counting the rise
// from the series' last point of the previous chunk, which it then replaces.
func increaseChunk(carry map[string]hv.Point, s hv.Series, from, every int64) []hv.Point {
	if len(s.Points) == 0 {
		return nil
	}
	key := s.Device + "\x00" + string(s.Metric)
	pts := s.Points
	last := pts[len(pts)-1]
	prev, carried := carry[key]
	if carried {
		pts = append([]hv.Point{prev}, pts...)
	}
	carry[key] = last
	out := hv.Aggregate(pts, every, hv.AggIncrease)
	// The carried point alone makes a window before the chunk (chunks after the first start on a window):
	// only its rise into the chunk counts.
	if carried && len(out) > 0 && out[0].Time < from {
		out = out[1:]
	}
	return out
}

// seriesMerge orders a chunk's points by time, device, metric: a k-way merge of the series, each sorted by
// time, through a binary heap of cursors.
type seriesMerge struct {
	series []hv.Series
	pos    []int
	heap   []int
}

func (m *seriesMerge) reset() { m.series, m.pos, m.heap = m.series[:0], m.pos[:0], m.heap[:0] }

func (m *seriesMerge) add(s hv.Series) {
	if len(s.Points) == 0 {
		return
	}
	if s.Unit == "" {
		s.Unit = s.Metric.Unit()
	}
	m.series = append(m.series, s)
}

// less orders cursors i and j: earlier point first; on a tie, the series added first (sorted beforehand).
func (m *seriesMerge) less(i, j int) bool {
	ti, tj := m.series[i].Points[m.pos[i]].Time, m.series[j].Points[m.pos[j]].Time
	return ti < tj || ti == tj && i < j
}

func (m *seriesMerge) down(k int) {
	h := m.heap
	for {
		c := 2*k + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && m.less(h[c+1], h[c]) {
			c++
		}
		if !m.less(h[c], h[k]) {
			return
		}
		h[k], h[c] = h[c], h[k]
		k = c
	}
}

func (m *seriesMerge) write(w *RowWriter) error {
	// Metrics were queried one after the other, each answer sorted by device: a stable sort by device puts
	// the series in (device, metric) order, the tie-break of less.
	slices.SortStableFunc(m.series, func(a, b hv.Series) int { return strings.Compare(a.Device, b.Device) })
	for i := range m.series {
		m.pos = append(m.pos, 0)
		m.heap = append(m.heap, i)
	}
	for k := len(m.heap)/2 - 1; k >= 0; k-- {
		m.down(k)
	}
	for len(m.heap) > 0 {
		i := m.heap[0]
		s := &m.series[i]
		p := s.Points[m.pos[i]]
		w.Time(time.UnixMilli(p.Time).UTC())
		w.String(s.Device)
		w.String(string(s.Metric))
		w.Float(p.Value)
		w.String(s.Unit)
		w.String(s.Site)
		w.String(s.Commune)
		w.String(s.EPCI)
		w.String(string(s.Fluid))
		if err := w.EndRow(); err != nil {
			return err
		}
		m.pos[i]++
		if m.pos[i] == len(s.Points) {
			last := len(m.heap) - 1
			m.heap[0] = m.heap[last]
			m.heap = m.heap[:last]
		}
		m.down(0)
	}
	clear(m.series) // let the chunk's points go
	return nil
}

// ConsumptionColumns are the columns of a consumption export of req: one row per period and fluid, with
// the climate correction and the previous year's values when req asks for them.
func ConsumptionColumns(req Request) []string {
	cols := []string{"start", "end", "fluid", "unit", "value", "kwh"}
	if req.Climate {
		cols = append(cols, "dju_ref", "dju", "corrected_value", "corrected_kwh")
	}
	if req.YearOverYear {
		cols = append(cols, "previous_start", "previous_end", "previous_value", "previous_kwh", "change")
		if req.Climate {
			cols = append(cols, "previous_corrected_value")
		}
	}
	return cols
}

// ConsumptionEstimate checks req as Consumption does and counts its rows: periods × fluids with a meter in
// scope.
func (a *Analytics) ConsumptionEstimate(req Request) (int64, error) {
	if err := a.check(req); err != nil {
		return 0, fmt.Errorf("consumption: %w", err)
	}
	ix := a.index()
	sc, err := ix.scope(req.Scope)
	if err != nil {
		return 0, fmt.Errorf("consumption: %w", err)
	}
	fluids := req.Fluids
	if len(fluids) == 0 {
		fluids = Fluids
	}
	sel := a.selectDevices(ix, sc, fluids, req.Usage, req.Kind, req.Per)
	from, to := a.localDate(req.From), a.localDate(req.To).AddDate(0, 0, 1)
	var periods int64
	switch req.Every {
	case EveryHour:
		periods = int64(to.Sub(from) / time.Hour)
	default:
		periods = int64(len(a.periods(from, to, req.Every)))
	}
	return periods * int64(len(sel.fluids)), nil
}

// StreamConsumption writes the rows of req to w (columns ConsumptionColumns(req)), asking Consumption for
// one calendar-aligned chunk of dates after the other (a week of hours, a month of days, a year of months
// or of years): a chunk boundary is a period boundary, so each row is the one the whole request would give.
// The notes of the answers are not exported.
func (a *Analytics) StreamConsumption(ctx context.Context, req Request, w *RowWriter) error {
	if err := a.check(req); err != nil {
		return fmt.Errorf("consumption: %w", err)
	}
	first, last := a.localDate(req.From), a.localDate(req.To)
	for cur := first; !cur.After(last); {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		var next time.Time
		y, m, _ := cur.Date()
		switch req.Every {
		case EveryHour:
			next = cur.AddDate(0, 0, 7)
		case EveryDay:
			next = time.Date(y, m+1, 1, 0, 0, 0, 0, a.loc)
		default:
			next = time.Date(y+1, 1, 1, 0, 0, 0, 0, a.loc)
		}
		cr := req
		cr.From, cr.To = cur, earlier(next.AddDate(0, 0, -1), last)
		resp, err := a.Consumption(ctx, cr)
		if err != nil {
			return err
		}
		for _, r := range resp.Rows {
			writeConsumptionRow(w, req, r)
			if err := w.EndRow(); err != nil {
				return err
			}
		}
		if err := w.EndChunk(); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

func writeConsumptionRow(w *RowWriter, req Request, r Row) {
	w.Time(r.Start)
	w.Time(r.End)
	w.String(string(r.Fluid))
	w.String(r.Unit)
	w.Float(r.Value)
	w.FloatPtr(r.KWh)
	if req.Climate {
		if c := r.Climate; c != nil {
			w.Float(c.DJURef)
			w.Float(c.DJU)
			w.Float(c.Corrected.Value)
			w.FloatPtr(c.Corrected.KWh)
		} else {
			w.Null()
			w.Null()
			w.Null()
			w.Null()
		}
	}
	if req.YearOverYear {
		if p := r.Previous; p != nil {
			w.Time(p.Start)
			w.Time(p.End)
			w.Float(p.Value)
			w.FloatPtr(p.KWh)
			w.FloatPtr(p.Change)
			if req.Climate {
				if p.Climate != nil {
					w.Float(p.Climate.Corrected.Value)
				} else {
					w.Null()
				}
			}
		} else {
			for range 5 {
				w.Null()
			}
			if req.Climate {
				w.Null()
			}
		}
	}
}
