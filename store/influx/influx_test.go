package influx

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api"
	http2 "github.com/influxdata/influxdb-client-go/v2/api/http"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/store/storetest"
)

// One influxd serves the package's integration tests, started by the first of them (so unit tests alone
// start nothing) and stopped by TestMain; each test gets a fresh database.
var (
	srvOnce sync.Once
	srv     *testenv.InfluxDB
	srvErr  error
	srvDir  string
	dbSeq   atomic.Int64
)

const influxdHint = "influxd (go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)"

func server(t testing.TB) *testenv.InfluxDB {
	t.Helper()
	if testenv.FindInfluxd() == "" {
		testenv.Missing(t, influxdHint)
	}
	srvOnce.Do(func() {
		if srvDir, srvErr = os.MkdirTemp("", "hv-influxd-"); srvErr == nil {
			srv, srvErr = testenv.LaunchInfluxDB(srvDir)
		}
	})
	if srvErr != nil {
		t.Fatalf("influxd: %v", srvErr)
	}
	return srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if srvDir != "" {
		os.RemoveAll(srvDir)
	}
	os.Exit(code)
}

// openDB opens a store on a fresh database of the shared server.
func openDB(t testing.TB, cfg Config) *Store {
	t.Helper()
	s := server(t)
	name := fmt.Sprintf("hv_%d", dbSeq.Add(1))
	s.CreateDB(t, name)
	cfg.URL, cfg.Bucket = s.URL, name+"/autogen"
	st, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoreIntegration(t *testing.T) {
	server(t) // skip (or fail in CI) once, not in every subtest
	storetest.Run(t, func(t *testing.T) hv.Store { return openDB(t, Config{}) })
}

func TestChunkedGZipWriteIntegration(t *testing.T) {
	s := openDB(t, Config{BatchSize: 7, GZip: true})
	defer s.Close()
	rs := make([]hv.Reading, 100)
	for i := range rs {
		rs[i] = hv.Reading{Device: "g", Metric: hv.PowerW, Time: storetest.T0 + int64(i)*1000, Value: float64(i)}
	}
	if err := s.Write(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(context.Background(), hv.Query{Metric: hv.PowerW, From: storetest.T0,
		To: storetest.T0 + 3_600_000, Every: 3_600_000, Agg: hv.AggSum})
	if err != nil {
		t.Fatal(err)
	}
	// 0 + 1 + … + 99 = 4950
	if len(got) != 1 || len(got[0].Points) != 1 || got[0].Points[0].Value != 4950 {
		t.Fatalf("sum of 100 readings written in chunks of 7: %+v", got)
	}
}

func TestFloatsRoundTripIntegration(t *testing.T) {
	s := openDB(t, Config{})
	defer s.Close()
	vals := []float64{1e-7, 1.5e300, -0.0, 123456789.123456789, -2.5e-300, 1e21, 0.1 + 0.2}
	rs := make([]hv.Reading, len(vals))
	for i, v := range vals {
		rs[i] = hv.Reading{Device: "f", Metric: hv.PowerW, Time: storetest.T0 + int64(i)*1000, Value: v}
	}
	if err := s.Write(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(context.Background(), hv.Query{Metric: hv.PowerW, From: storetest.T0, To: storetest.T0 + 60_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Points) != len(vals) {
		t.Fatalf("got %+v", got)
	}
	for i, p := range got[0].Points {
		if p.Value != vals[i] { // shortest round-trip formatting on both sides: exact
			t.Errorf("value %d: got %v, want %v", i, p.Value, vals[i])
		}
	}
}

func TestFieldTypeConflictIntegration(t *testing.T) {
	s := openDB(t, Config{})
	defer s.Close()
	// another writer made "value" a string field of power_w (field types are per shard in 1.8: same week)
	resp, err := http.Post(srv.URL+"/write?precision=ms&db="+strings.TrimSuffix(s.cfg.Bucket, "/autogen"),
		"text/plain", strings.NewReader(fmt.Sprintf(`power_w,device=x value="on" %d`, storetest.T0)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	err = s.Write(context.Background(), []hv.Reading{{Device: "y", Metric: hv.PowerW, Time: storetest.T0, Value: 1}})
	if !errors.Is(err, hv.ErrInvalid) || errors.Is(err, hv.ErrUnavailable) {
		t.Fatalf("field type conflict: %v, want ErrInvalid only", err)
	}
	if !strings.Contains(err.Error(), "field type conflict") {
		t.Errorf("error does not say why: %v", err)
	}
}

func TestPingIntegration(t *testing.T) {
	s := openDB(t, Config{})
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	missing, err := Open(context.Background(), Config{URL: srv.URL, Bucket: "no_such_db/autogen"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if err := missing.Ping(context.Background()); !errors.Is(err, hv.ErrUnavailable) {
		t.Errorf("ping of a missing database: %v, want ErrUnavailable", err)
	}
	// a write to it must be spooled, not dropped
	err = missing.Write(context.Background(), []hv.Reading{{Device: "d", Metric: hv.PowerW, Time: 1, Value: 1}})
	if !errors.Is(err, hv.ErrUnavailable) {
		t.Errorf("write to a missing database: %v, want ErrUnavailable", err)
	}
}

func TestServerDownIntegration(t *testing.T) {
	// nothing listens on the port: connection refused, retried, then ErrUnavailable within the deadline
	s, err := Open(context.Background(), Config{URL: fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)),
		Bucket: "x/autogen", Timeout: time.Second}, nil)
	if err != nil {
		t.Fatalf("open with the server down: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Write(ctx, []hv.Reading{{Device: "d", Metric: hv.PowerW, Time: 1, Value: 1}})
	if !errors.Is(err, hv.ErrUnavailable) {
		t.Fatalf("write with the server down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("write took %s, beyond its deadline", d)
	}
	if err := s.Ping(ctx); !errors.Is(err, hv.ErrUnavailable) {
		t.Errorf("ping with the server down: %v", err)
	}
	if _, err := s.Query(ctx, hv.Query{Metric: hv.PowerW, From: 0, To: 1}); !errors.Is(err, hv.ErrUnavailable) {
		t.Errorf("query with the server down: %v", err)
	}
}

func TestAppendLine(t *testing.T) {
	base := hv.Reading{Device: "d1", Metric: hv.EnergyKWh, Value: 12.5, Time: 1709251200000}
	with := func(f func(r *hv.Reading)) hv.Reading { r := base; f(&r); return r }
	tests := []struct {
		name string
		r    hv.Reading
		want string // "" when refused
	}{
		{"plain", base, "energy_kwh,device=d1 value=12.5 1709251200000"},
		{"all tags sorted", with(func(r *hv.Reading) {
			r.Site, r.Commune, r.EPCI, r.Fluid = "s", "02408", "200043495", hv.Electricity
		}), "energy_kwh,commune=02408,device=d1,epci=200043495,fluid=electricity,site=s value=12.5 1709251200000"},
		{"integer value stays a float", with(func(r *hv.Reading) { r.Value = 3 }), "energy_kwh,device=d1 value=3 1709251200000"},
		{"exponent", with(func(r *hv.Reading) { r.Value = -1e-7 }), "energy_kwh,device=d1 value=-1e-07 1709251200000"},
		{"space comma equals", with(func(r *hv.Reading) { r.Device = "a b,c=d" }), `energy_kwh,device=a\ b\,c\=d value=12.5 1709251200000`},
		{"quote and inner backslash are literal", with(func(r *hv.Reading) { r.Device = `a"b\c` }), `energy_kwh,device=a"b\c value=12.5 1709251200000`},
		{"backslash before a comma", with(func(r *hv.Reading) { r.Device = `a\,b` }), `energy_kwh,device=a\\,b value=12.5 1709251200000`},
		{"unicode", with(func(r *hv.Reading) { r.Site = "École Jean-Macé" }), "energy_kwh,device=d1,site=École\\ Jean-Macé value=12.5 1709251200000"},
		{"negative time", with(func(r *hv.Reading) { r.Time = -5 }), "energy_kwh,device=d1 value=12.5 -5"},
		{"trailing backslash refused", with(func(r *hv.Reading) { r.Site = `x\` }), ""},
		{"line break refused", with(func(r *hv.Reading) { r.Device = "a\nb" }), ""},
		{"invalid utf-8 refused", with(func(r *hv.Reading) { r.Device = "\xff" }), ""},
		{"NaN refused", with(func(r *hv.Reading) { r.Value = math.NaN() }), ""},
		{"empty device refused", with(func(r *hv.Reading) { r.Device = "" }), ""},
		{"unknown metric refused", with(func(r *hv.Reading) { r.Metric = "bogus" }), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendLine([]byte("prefix|"), &tc.r)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("accepted: %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix|"+tc.want {
				t.Errorf("got  %s\nwant prefix|%s", got, tc.want)
			}
		})
	}
}

func TestFluxString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"École Jean-Macé", `"École Jean-Macé"`},
		{"x${y}", `"x\${y}"`},
		{"$ and {", `"$ and {"`},
		{"line\nbreak\ttab\r", `"line\nbreak\ttab\r"`},
		{`\`, `"\\"`},
		{`") |> drop(columns: ["_value"]) //`, `"\") |> drop(columns: [\"_value\"]) //"`},
	}
	for _, tc := range tests {
		if got := fluxString(tc.in); got != tc.want {
			t.Errorf("fluxString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestQueryFlux(t *testing.T) {
	q := hv.Query{Metric: hv.PowerW, From: 1709251200000, To: 1709254800000, Devices: []string{`a"b`, "c"},
		Sites: []string{""}, Fluids: []hv.Fluid{hv.Gas}, Every: 900_000, Agg: hv.AggMax}
	got, server := queryFlux("db/rp", q)
	want := `from(bucket: "db/rp")
  |> range(start: 2024-03-01T00:00:00Z, stop: 2024-03-01T00:59:59.999999999Z)
  |> filter(fn: (r) => r._measurement == "power_w" and r._field == "value" and (r.device == "a\"b" or r.device == "c") and (not exists r.site or r.site == "") and (r.fluid == "gas"))
  |> aggregateWindow(every: 900000ms, fn: max, createEmpty: false, timeSrc: "_start")
  |> keep(columns: ["_time", "_value", "device", "site", "commune", "epci", "fluid"])`
	if got != want || !server {
		t.Errorf("got (server %v)\n%s\nwant\n%s", server, got, want)
	}
	q.Agg = hv.AggIncrease
	if got, server := queryFlux("db/rp", q); server || strings.Contains(got, "aggregateWindow") {
		t.Errorf("increase must be folded client-side:\n%s", got)
	}
}

// fakeWriter answers WriteRecord with the errors queued, then nil; it records the bodies.
type fakeWriter struct {
	errs   []error
	bodies []string
}

func (f *fakeWriter) WriteRecord(_ context.Context, line ...string) error {
	f.bodies = append(f.bodies, strings.Join(line, "\n"))
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func httpErr(code int, msg string) error {
	e := &http2.Error{StatusCode: code, Code: http.StatusText(code), Message: msg, Header: http.Header{}}
	return e
}

func fakeStore(w writer, q querier, batch int) (*Store, *[]time.Duration) {
	s := newStore(Config{Bucket: "db/rp", BatchSize: batch}, w, q, nil)
	var slept []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	return s, &slept
}

func TestWriteRetries(t *testing.T) {
	refused := http2.NewError(errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
	r := []hv.Reading{{Device: "d", Metric: hv.PowerW, Time: 1, Value: 1}}
	tests := []struct {
		name     string
		errs     []error
		want     error // nil, ErrInvalid or ErrUnavailable
		attempts int
	}{
		{"ok", nil, nil, 1},
		{"5xx then refused then ok", []error{httpErr(503, "busy"), refused}, nil, 3},
		{"429 honours Retry-After", []error{&http2.Error{StatusCode: 429, RetryAfter: 1}}, nil, 2},
		{"down for good", []error{refused, refused, refused, refused, refused}, hv.ErrUnavailable, writeAttempts},
		{"partial write is not retried", []error{httpErr(400, "partial write: field type conflict")}, hv.ErrInvalid, 1},
		{"missing database is spooled", []error{httpErr(404, "database not found")}, hv.ErrUnavailable, 1},
		{"bad token is spooled", []error{httpErr(401, "unauthorized")}, hv.ErrUnavailable, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWriter{errs: tc.errs}
			s, slept := fakeStore(w, nil, 0)
			err := s.Write(context.Background(), r)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("err %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if len(w.bodies) != tc.attempts {
				t.Errorf("%d attempts, want %d", len(w.bodies), tc.attempts)
			}
			if tc.name == "429 honours Retry-After" && (len(*slept) != 1 || (*slept)[0] != time.Second) {
				t.Errorf("slept %v, want [1s]", *slept)
			}
			if tc.name == "down for good" && fmt.Sprint(*slept) != "[200ms 400ms 800ms]" {
				t.Errorf("backoff %v", *slept)
			}
		})
	}
}

func TestWriteGivesUpAtDeadline(t *testing.T) {
	w := &fakeWriter{errs: []error{httpErr(503, ""), httpErr(503, ""), httpErr(503, "")}}
	s, slept := fakeStore(w, nil, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, []hv.Reading{{Device: "d", Metric: hv.PowerW, Time: 1, Value: 1}})
	if !errors.Is(err, hv.ErrUnavailable) || len(w.bodies) != 1 || len(*slept) != 0 {
		t.Fatalf("err %v after %d attempts and sleeps %v; want ErrUnavailable at once (200ms backoff > 100ms left)",
			err, len(w.bodies), *slept)
	}
}

func TestWriteChunksAndSkips(t *testing.T) {
	w := &fakeWriter{}
	s, _ := fakeStore(w, nil, 3)
	var rs []hv.Reading
	for i := range 8 {
		rs = append(rs, hv.Reading{Device: fmt.Sprintf("d%d", i), Metric: hv.PowerW, Time: int64(i), Value: 1})
	}
	rs[0].Device = "" // refused: the first line of the first chunk
	rs[4].Site = `x\` // refused: in the middle of the second chunk
	err := s.Write(context.Background(), rs)
	if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), "2 of 8") {
		t.Fatalf("err %v, want ErrInvalid for 2 of 8", err)
	}
	want := []string{
		"power_w,device=d1 value=1 1\npower_w,device=d2 value=1 2\npower_w,device=d3 value=1 3",
		"power_w,device=d5 value=1 5\npower_w,device=d6 value=1 6\npower_w,device=d7 value=1 7",
	}
	if fmt.Sprint(w.bodies) != fmt.Sprint(want) {
		t.Errorf("bodies:\n%q\nwant\n%q", w.bodies, want)
	}
}

// fakeQuerier answers every query with the same annotated CSV.
type fakeQuerier struct {
	csv  string
	last string
}

func (f *fakeQuerier) Query(_ context.Context, q string) (*api.QueryTableResult, error) {
	f.last = q
	return api.NewQueryTableResult(io.NopCloser(strings.NewReader(f.csv))), nil
}

// Two label sets of device a (it moved from site S1 to S2), one of b; a's first window starts before From, so
// InfluxDB labels it with From: the store relabels it with the window's start.
const aggCSV = `#datatype,string,long,string,string,double,dateTime:RFC3339
#group,false,false,true,true,false,false
#default,_result,,,,,
,result,table,device,site,_value,_time
,,0,a,S1,1,2024-03-01T00:30:00Z
,,0,a,S1,2,2024-03-01T01:00:00Z
,,1,a,S2,3,2024-03-01T02:00:00Z

#datatype,string,long,string,long,dateTime:RFC3339
#group,false,false,true,false,false
#default,_result,,,,
,result,table,device,_value,_time
,,2,b,7,2024-03-01T00:30:00Z
`

func TestQueryMergesAndRelabels(t *testing.T) {
	fq := &fakeQuerier{csv: aggCSV}
	s, _ := fakeStore(&fakeWriter{}, fq, 0)
	t0 := storetest.T0
	got, err := s.Query(context.Background(), hv.Query{Metric: hv.PowerW, From: t0 + 1_800_000, To: t0 + 3*3_600_000,
		Every: 3_600_000, Agg: hv.AggCount})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]hv.Series{
		{Device: "a", Metric: hv.PowerW, Unit: "W", Site: "S2", Points: []hv.Point{
			{Time: t0, Value: 1}, {Time: t0 + 3_600_000, Value: 2}, {Time: t0 + 7_200_000, Value: 3}}},
		{Device: "b", Metric: hv.PowerW, Unit: "W", Points: []hv.Point{{Time: t0, Value: 7}}},
	})
	if fmt.Sprint(got) != want {
		t.Errorf("got  %v\nwant %s", got, want)
	}
	if !strings.Contains(fq.last, "fn: count") {
		t.Errorf("count not pushed down:\n%s", fq.last)
	}
}

func TestQueryError(t *testing.T) {
	fq := &fakeQuerier{csv: "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,failed to parse,\n"}
	s, _ := fakeStore(&fakeWriter{}, fq, 0)
	if _, err := s.Query(context.Background(), hv.Query{Metric: hv.PowerW, From: 0, To: 1}); err == nil ||
		!strings.Contains(err.Error(), "failed to parse") {
		t.Errorf("err %v, want the server's message", err)
	}
}

func BenchmarkAppendLine(b *testing.B) {
	r := hv.Reading{Device: "lum-000123", Metric: hv.EnergyKWh, Value: 123456.789, Time: 1709251200000,
		Site: "cabinet-laon-12", Commune: "02408", EPCI: "200043495", Fluid: hv.Electricity}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = appendLine(buf[:0], &r); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkWrite writes batches of 1000 readings over 5000 series to the real influxd.
func BenchmarkWrite(b *testing.B) {
	s := openDB(b, Config{})
	defer s.Close()
	const batch, series = 1000, 5000
	load := storetest.NewMeterLoad(series, storetest.T0)
	rs := make([]hv.Reading, batch)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := testenv.CPUTime()
	for b.Loop() {
		load.Fill(rs)
		if err := s.Write(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	readings := float64(b.N * batch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/readings, "ns/reading")
	// the client's own CPU (encoding, HTTP): influxd runs in another process
	b.ReportMetric(float64(testenv.CPUTime()-cpu0)/readings, "client-cpu-ns/reading")
}

func TestGZipWrites(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/write" {
			body := io.Reader(r.Body)
			if r.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				body = zr
			}
			b, _ := io.ReadAll(body)
			mu.Lock()
			seen = append(seen, r.Header.Get("Content-Encoding")+"|"+r.URL.Query().Get("precision")+"|"+string(b))
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	for _, gz := range []bool{true, false} {
		seen = nil
		s, err := Open(context.Background(), Config{URL: srv.URL, Bucket: "db/rp", GZip: gz}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Write(context.Background(), []hv.Reading{{Device: "d", Metric: hv.PowerW, Time: 5, Value: 1}})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		enc := ""
		if gz {
			enc = "gzip"
		}
		// the ping's empty probe, then the point
		want := fmt.Sprint([]string{"|ms|", enc + "|ms|power_w,device=d value=1 5"})
		if fmt.Sprint(seen) != want {
			t.Errorf("gzip %v: server saw %q, want %q", gz, seen, want)
		}
	}
}
