package reporting_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/reporting"
)

// pointStore is a read-only hv.Store over in-memory series (points sorted by time) that counts its queries
// and aggregates with the domain's definition, over the whole query range, as an engine does.
type pointStore struct {
	series  []hv.Series // sorted by device
	queries []hv.Query
	onQuery func(n int) // after the n-th query (1-based)
}

func (p *pointStore) Write(context.Context, []hv.Reading) error                      { return errors.New("read-only") }
func (p *pointStore) Last(context.Context, []hv.Metric, int64) ([]hv.Reading, error) { return nil, nil }
func (p *pointStore) Ping(context.Context) error                                     { return nil }
func (p *pointStore) Close() error                                                   { return nil }

func (p *pointStore) Query(ctx context.Context, q hv.Query) ([]hv.Series, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	p.queries = append(p.queries, q)
	if p.onQuery != nil {
		defer p.onQuery(len(p.queries))
	}
	var out []hv.Series
	for _, s := range p.series {
		if !q.Matches(hv.Reading{Device: s.Device, Metric: s.Metric, Site: s.Site, Commune: s.Commune, EPCI: s.EPCI, Fluid: s.Fluid}) {
			continue
		}
		lo, _ := slices.BinarySearchFunc(s.Points, q.From, func(pt hv.Point, t int64) int { return cmpInt(pt.Time, t) })
		hi, _ := slices.BinarySearchFunc(s.Points, q.To, func(pt hv.Point, t int64) int { return cmpInt(pt.Time, t) })
		if lo == hi {
			continue
		}
		r := s
		r.Points = hv.Aggregate(s.Points[lo:hi:hi], q.Every, q.Agg)
		out = append(out, r)
	}
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var t0 = time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC)

func ms(t time.Time) int64 { return t.UnixMilli() }

// handStore: two devices of two EPCIs, two power points each, one at a half second.
func handStore() *pointStore {
	return &pointStore{series: []hv.Series{
		{Device: "a", Metric: hv.PowerW, Site: "s1", Commune: "02408", EPCI: "200043495", Fluid: hv.Electricity,
			Points: []hv.Point{{Time: ms(t0), Value: 1.5}, {Time: ms(t0.Add(10 * time.Minute)), Value: 2}}},
		{Device: "b", Metric: hv.PowerW, Site: "s2", Commune: "02691", EPCI: "200071892", Fluid: hv.Electricity,
			Points: []hv.Point{{Time: ms(t0), Value: -0.25}, {Time: ms(t0.Add(10*time.Minute + 500*time.Millisecond)), Value: 1e-7}}},
	}}
}

func export(t *testing.T, st hv.Store, e reporting.SeriesExport, f reporting.ExportFormat) string {
	t.Helper()
	var buf bytes.Buffer
	w := reporting.NewRowWriter(&buf, f, reporting.SeriesColumns, 0)
	if err := e.Stream(context.Background(), st, w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(nil); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestSeriesExportBytes(t *testing.T) {
	e := reporting.SeriesExport{Query: hv.Query{From: ms(t0), To: ms(t0.Add(time.Hour))}, Metrics: []hv.Metric{hv.PowerW},
		Intervals: []time.Duration{10 * time.Minute, 10 * time.Minute}}
	if got := e.Estimate(); got != 12 {
		t.Errorf("estimate %d, want 2 devices × 6 ten-minute points", got)
	}
	wantCSV := "\ufefftime;device;metric;value;unit;site;commune;epci;fluid\n" +
		"2025-01-15T00:00:00Z;a;power_w;1.5;W;s1;02408;200043495;electricity\n" +
		"2025-01-15T00:00:00Z;b;power_w;-0.25;W;s2;02691;200071892;electricity\n" +
		"2025-01-15T00:10:00Z;a;power_w;2;W;s1;02408;200043495;electricity\n" +
		"2025-01-15T00:10:00.5Z;b;power_w;1e-07;W;s2;02691;200071892;electricity\n"
	if got := export(t, handStore(), e, reporting.ExportCSV); got != wantCSV {
		t.Errorf("CSV:\n%s\nwant:\n%s", got, wantCSV)
	}
	wantJSON := `{"time":"2025-01-15T00:00:00Z","device":"a","metric":"power_w","value":1.5,"unit":"W","site":"s1","commune":"02408","epci":"200043495","fluid":"electricity"}
{"time":"2025-01-15T00:00:00Z","device":"b","metric":"power_w","value":-0.25,"unit":"W","site":"s2","commune":"02691","epci":"200071892","fluid":"electricity"}
{"time":"2025-01-15T00:10:00Z","device":"a","metric":"power_w","value":2,"unit":"W","site":"s1","commune":"02408","epci":"200043495","fluid":"electricity"}
{"time":"2025-01-15T00:10:00.5Z","device":"b","metric":"power_w","value":1e-07,"unit":"W","site":"s2","commune":"02691","epci":"200071892","fluid":"electricity"}
{"end":true,"rows":4}
`
	got := export(t, handStore(), e, reporting.ExportJSON)
	if got != wantJSON {
		t.Errorf("JSON:\n%s\nwant:\n%s", got, wantJSON)
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("line %s: %v", line, err)
		}
	}
	// Aggregated: windows of 30 min labelled with their start, a Keep that drops device b.
	e.Query.Every, e.Query.Agg = (30 * time.Minute).Milliseconds(), hv.AggSum
	e.Keep = func(s hv.Series) bool { return s.Device != "b" }
	if got, want := e.Estimate(), int64(2*2); got != want {
		t.Errorf("aggregated estimate %d, want %d", got, want)
	}
	wantCSV = "\ufefftime;device;metric;value;unit;site;commune;epci;fluid\n" +
		"2025-01-15T00:00:00Z;a;power_w;3.5;W;s1;02408;200043495;electricity\n"
	if got := export(t, handStore(), e, reporting.ExportCSV); got != wantCSV {
		t.Errorf("aggregated CSV:\n%s\nwant:\n%s", got, wantCSV)
	}
}

func TestRowWriterEscapes(t *testing.T) {
	for _, c := range []struct {
		f    reporting.ExportFormat
		want string
	}{
		{reporting.ExportCSV, "\ufeffk;\"x;y\"\n\"a \"\"b\"\"\";\"l1\nl2\"\n\" lead\";é\n;\n"},
		{reporting.ExportJSON, "{\"k\":\"a \\\"b\\\"\",\"x;y\":\"l1\\nl2\"}\n{\"k\":\" lead\",\"x;y\":\"é\"}\n{\"k\":null,\"x;y\":null}\n{\"end\":true,\"rows\":3}\n"},
	} {
		var buf bytes.Buffer
		w := reporting.NewRowWriter(&buf, c.f, []string{"k", "x;y"}, 0)
		w.String(`a "b"`)
		w.String("l1\nl2")
		_ = w.EndRow()
		w.String(" lead")
		w.String("é")
		_ = w.EndRow()
		w.Null()
		w.FloatPtr(nil)
		_ = w.EndRow()
		if err := w.Close(nil); err != nil {
			t.Fatal(err)
		}
		if buf.String() != c.want {
			t.Errorf("%s: %q, want %q", c.f, buf.String(), c.want)
		}
	}
}

// tenMinutes is one device's power every 10 minutes over [from, to), valued 0, 1, 2…, and an index that
// rises by 1 a point but resets to 0 every 1 000 points.
func tenMinutes(from, to time.Time) *pointStore {
	var pw, idx []hv.Point
	for i, at := 0, from; at.Before(to); i, at = i+1, at.Add(10*time.Minute) {
		pw = append(pw, hv.Point{Time: ms(at), Value: float64(i)})
		idx = append(idx, hv.Point{Time: ms(at), Value: float64(i % 1000)})
	}
	return &pointStore{series: []hv.Series{
		{Device: "m", Metric: hv.EnergyKWh, Points: idx},
		{Device: "m", Metric: hv.PowerW, Points: pw},
	}}
}

// readNDJSON returns the rows of an NDJSON export (without the end line) and the end line.
func readNDJSON(t *testing.T, s string) (rows []map[string]any, end map[string]any) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if v["end"] == true {
			end = v
			continue
		}
		if end != nil {
			t.Fatal("a row after the end line")
		}
		rows = append(rows, v)
	}
	return rows, end
}

func TestSeriesExportChunks(t *testing.T) {
	from := time.Date(2025, 1, 1, 0, 3, 0, 0, time.UTC) // not on a window
	to := time.Date(2025, 2, 10, 0, 0, 0, 0, time.UTC)
	one := []time.Duration{10 * time.Minute}
	t.Run("raw points, each once and in order", func(t *testing.T) {
		st := tenMinutes(from, to)
		e := reporting.SeriesExport{Query: hv.Query{From: ms(from), To: ms(to)}, Metrics: []hv.Metric{hv.PowerW, hv.EnergyKWh}, Intervals: one}
		rows, end := readNDJSON(t, export(t, st, e, reporting.ExportJSON))
		if len(st.queries) < 2*5 {
			t.Errorf("%d queries: want 40 days read a week at a time, for each metric", len(st.queries))
		}
		const points = 40 * 144
		if len(rows) != 2*points || end["rows"] != float64(2*points) || e.Estimate() != 2*points {
			t.Fatalf("%d rows, end %v, estimate %d, want %d", len(rows), end, e.Estimate(), 2*points)
		}
		for i, r := range rows {
			// Time order, then metric in the asked order: power then the index.
			want := hv.PowerW
			if i%2 == 1 {
				want = hv.EnergyKWh
			}
			at := from.Add(time.Duration(i/2) * 10 * time.Minute).Format(time.RFC3339)
			if r["time"] != at || r["metric"] != string(want) {
				t.Fatalf("row %d: %v, want %s %s", i, r, at, want)
			}
			if want == hv.PowerW && r["value"] != float64(i/2) {
				t.Fatalf("row %d: %v, want value %d", i, r, i/2)
			}
		}
	})
	for _, agg := range []hv.Agg{hv.AggMean, hv.AggSum, hv.AggIncrease, hv.AggCount} {
		t.Run("windows of "+string(agg)+" match the whole query", func(t *testing.T) {
			st := tenMinutes(from, to)
			every := (3 * time.Hour).Milliseconds()
			q := hv.Query{From: ms(from), To: ms(to), Every: every, Agg: agg}
			e := reporting.SeriesExport{Query: q, Metrics: []hv.Metric{hv.EnergyKWh}, Intervals: one}
			rows, _ := readNDJSON(t, export(t, st, e, reporting.ExportJSON))
			if len(st.queries) < 2 {
				t.Fatalf("%d queries, want several chunks", len(st.queries))
			}
			q.Metric = hv.EnergyKWh
			whole, _ := (&pointStore{series: st.series}).Query(context.Background(), q)
			want := whole[0].Points
			if len(rows) != len(want) || int64(len(rows)) != e.Estimate() {
				t.Fatalf("%d rows, estimate %d, want %d windows", len(rows), e.Estimate(), len(want))
			}
			for i, p := range want {
				if rows[i]["time"] != time.UnixMilli(p.Time).UTC().Format(time.RFC3339) || rows[i]["value"] != p.Value {
					t.Fatalf("window %d: %v, want %v", i, rows[i], p)
				}
			}
		})
	}
}

func TestSeriesExportLimitAndCancel(t *testing.T) {
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(60 * 24 * time.Hour)
	e := reporting.SeriesExport{Query: hv.Query{From: ms(from), To: ms(to)}, Metrics: []hv.Metric{hv.PowerW}, Intervals: []time.Duration{10 * time.Minute}}

	w := reporting.NewRowWriter(io.Discard, reporting.ExportCSV, reporting.SeriesColumns, 1000)
	if err := e.Stream(context.Background(), tenMinutes(from, to), w); !errors.Is(err, reporting.ErrTooManyRows) || w.Rows() != 1001 {
		t.Errorf("past the limit: %v after %d rows, want ErrTooManyRows at 1001", err, w.Rows())
	}

	// The client goes away once the first chunk is written: no further query.
	st := tenMinutes(from, to)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w = reporting.NewRowWriter(io.Discard, reporting.ExportCSV, reporting.SeriesColumns, 0)
	w.Flush = func() error { cancel(); return nil }
	if err := e.Stream(ctx, st, w); !errors.Is(err, context.Canceled) || len(st.queries) != 1 || w.Rows() != 7*144 {
		t.Errorf("cancelled: %v after %d queries and %d rows, want context.Canceled after 1 query (a week)", err, len(st.queries), w.Rows())
	}
}

func TestParseExportFormat(t *testing.T) {
	for _, s := range []string{"csv", "json"} {
		if f, err := reporting.ParseExportFormat(s); err != nil || string(f) != s {
			t.Errorf("%s: %v %v", s, f, err)
		}
	}
	if _, err := reporting.ParseExportFormat("xlsx"); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("xlsx: %v", err)
	}
}

// TestConsumptionExport checks the streamed rows against the whole request's answer, chunks crossing
// months, years and the spring DST change.
func TestConsumptionExport(t *testing.T) {
	x := newTiny(t, tinyConfig())
	for _, req := range []reporting.Request{
		{Scope: "departement", From: date(2025, 1, 10), To: date(2025, 3, 5), Every: reporting.EveryDay},
		{Scope: "site:mairie-laon", From: date(2024, 3, 15), To: date(2025, 12, 31), Every: reporting.EveryMonth, YearOverYear: true},
		{Scope: "commune:02408", Fluids: []hv.Fluid{hv.Electricity}, From: date(2025, 3, 25), To: date(2025, 4, 8), Every: reporting.EveryHour},
		{Scope: "epci:200043495", From: date(2024, 1, 1), To: date(2025, 12, 31), Every: reporting.EveryYear, Per: reporting.PerM2, Climate: true, YearOverYear: true},
	} {
		t.Run(string(req.Every), func(t *testing.T) {
			whole := x.consumption(t, req)
			est, err := x.an.ConsumptionEstimate(req)
			if err != nil || est != int64(len(whole.Rows)) {
				t.Errorf("estimate %d %v, want %d", est, err, len(whole.Rows))
			}
			var buf bytes.Buffer
			w := reporting.NewRowWriter(&buf, reporting.ExportJSON, reporting.ConsumptionColumns(req), 0)
			chunks := 0
			w.Progress = func(int64) { chunks++ }
			if err := x.an.StreamConsumption(context.Background(), req, w); err != nil {
				t.Fatal(err)
			}
			if chunks < 2 {
				t.Errorf("%d chunks, want several", chunks)
			}
			rows, _ := readNDJSON(t, buf.String()+`{"end":true}`)
			if len(rows) != len(whole.Rows) {
				t.Fatalf("%d rows, want %d", len(rows), len(whole.Rows))
			}
			for i, r := range whole.Rows {
				got := rows[i]
				if got["start"] != r.Start.Format(time.RFC3339) || got["end"] != r.End.Format(time.RFC3339) ||
					got["fluid"] != string(r.Fluid) || got["unit"] != r.Unit || !near(got["value"].(float64), r.Value) {
					t.Fatalf("row %d: %v, want %+v", i, got, r)
				}
				if req.YearOverYear && r.Previous != nil && !near(got["previous_value"].(float64), r.Previous.Value) {
					t.Errorf("row %d previous: %v, want %+v", i, got, r.Previous)
				}
				if req.Climate && r.Climate != nil && !near(got["corrected_value"].(float64), r.Climate.Corrected.Value) {
					t.Errorf("row %d climate: %v, want %+v", i, got, r.Climate)
				}
			}
		})
	}
	// The request's checks are Consumption's.
	if _, err := x.an.ConsumptionEstimate(reporting.Request{Scope: "departement", From: date(2025, 2, 1), To: date(2025, 1, 1), Every: reporting.EveryDay}); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("to before from: %v", err)
	}
}

// BenchmarkExportCSV streams a year of 10-minute power points of 10 devices (525 600 rows) as CSV to
// io.Discard, from an in-memory store: the cost of chunking, merging and encoding, not of an engine.
func BenchmarkExportCSV(b *testing.B) {
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	st := &pointStore{}
	var intervals []time.Duration
	for d := range 10 {
		s := hv.Series{Device: "elec-" + strconv.Itoa(d), Metric: hv.PowerW, Site: "site-" + strconv.Itoa(d), Commune: "02408",
			EPCI: "200043495", Fluid: hv.Electricity}
		for i, at := 0, from; at.Before(to); i, at = i+1, at.Add(10*time.Minute) {
			s.Points = append(s.Points, hv.Point{Time: ms(at), Value: 1000 + float64(i%600)*0.125})
		}
		st.series = append(st.series, s)
		intervals = append(intervals, 10*time.Minute)
	}
	e := reporting.SeriesExport{Query: hv.Query{From: ms(from), To: ms(to)}, Metrics: []hv.Metric{hv.PowerW}, Intervals: intervals}
	var rows int64
	b.ReportAllocs()
	for b.Loop() {
		st.queries = st.queries[:0]
		w := reporting.NewRowWriter(io.Discard, reporting.ExportCSV, reporting.SeriesColumns, 0)
		if err := e.Stream(context.Background(), st, w); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(nil); err != nil {
			b.Fatal(err)
		}
		rows = w.Rows()
	}
	if rows != 10*365*144 {
		b.Fatalf("%d rows", rows)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows), "rows/op")
}
