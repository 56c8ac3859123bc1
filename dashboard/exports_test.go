package dashboard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
)

// get sends a GET as a principal and returns the recorder, body unread; ctx nil: the background.
func (f *fixture) get(t *testing.T, ctx context.Context, target, who string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	if ctx != nil {
		req = req.WithContext(ctx)
	}
	req.Header.Set("Authorization", "Bearer "+f.tokens[who])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestExportSeriesBytes(t *testing.T) {
	f := newFixture(t)
	// The fixture's hourly power of elec-laon: 3 W at 09:00, 2 W at 10:00, 1 W at 11:00.
	rec := f.get(t, nil, "/api/v1/exports/csv?kind=series&metric=power_w&device=elec-laon&from=2025-01-15T09:00:00Z&to=2025-01-15T12:00:00Z", "admin")
	want := "\ufefftime;device;metric;value;unit;site;commune;epci;fluid\n" +
		"2025-01-15T09:00:00Z;elec-laon;power_w;3;W;mairie-laon;02408;200043495;electricity\n" +
		"2025-01-15T10:00:00Z;elec-laon;power_w;2;W;mairie-laon;02408;200043495;electricity\n" +
		"2025-01-15T11:00:00Z;elec-laon;power_w;1;W;mairie-laon;02408;200043495;electricity\n"
	h := rec.Result().Header
	if rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("CSV: %d\n%s\nwant:\n%s", rec.Code, rec.Body, want)
	}
	if h.Get("Content-Type") != "text/csv; charset=utf-8" ||
		h.Get("Content-Disposition") != `attachment; filename="series-power_w-20250115-20250115.csv"` ||
		h.Get("X-Export-Rows-Estimate") != "18" || // three hours of a 10-minute meter
		rec.Result().Trailer.Get("X-Export-Rows") != "3" {
		t.Errorf("headers %v, trailer %v", h, rec.Result().Trailer)
	}

	// JSON, two devices by the hour: NDJSON rows by time then device, then the end line.
	rec = f.get(t, nil, "/api/v1/exports/json?kind=series&metric=power_w&device=elec-sq&device=elec-laon&from=2025-01-15T09:00:00Z&to=2025-01-15T11:00:00Z&every=1h&agg=max", "admin")
	wantJSON := `{"time":"2025-01-15T09:00:00Z","device":"elec-laon","metric":"power_w","value":3,"unit":"W","site":"mairie-laon","commune":"02408","epci":"200043495","fluid":"electricity"}
{"time":"2025-01-15T09:00:00Z","device":"elec-sq","metric":"power_w","value":3,"unit":"W","site":"ecole-sq","commune":"02691","epci":"200071892","fluid":"electricity"}
{"time":"2025-01-15T10:00:00Z","device":"elec-laon","metric":"power_w","value":2,"unit":"W","site":"mairie-laon","commune":"02408","epci":"200043495","fluid":"electricity"}
{"time":"2025-01-15T10:00:00Z","device":"elec-sq","metric":"power_w","value":2,"unit":"W","site":"ecole-sq","commune":"02691","epci":"200071892","fluid":"electricity"}
{"end":true,"rows":4}
`
	if rec.Code != 200 || rec.Body.String() != wantJSON || rec.Result().Header.Get("X-Export-Rows-Estimate") != "4" ||
		rec.Result().Header.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
		t.Fatalf("JSON: %d %v\n%s\nwant:\n%s", rec.Code, rec.Result().Header, rec.Body, wantJSON)
	}
}

func TestExportScopeAndErrors(t *testing.T) {
	f := newConsumptionFixture(t, true)
	const series = "/api/v1/exports/csv?kind=series&metric=power_w&from=2025-01-15T00:00:00Z&to=2025-01-15T12:00:00Z"
	const cons = "/api/v1/exports/json?kind=consumption&from=2025-01-13&to=2025-01-14&every=day"
	for _, c := range []struct {
		name, who, target string
		code              int
		msg               string // prefix of the error
	}{
		{"another EPCI's device", "pilote", series + "&device=elec-sq", 404, `device "elec-sq" not found`},
		{"another EPCI's site", "pilote", series + "&site=ecole-sq", 404, `site "ecole-sq" not found`},
		{"another EPCI", "pilote", series + "&epci=" + epciSQ, 403, "epci:"},
		{"another commune", "pilote", series + "&commune=02691", 403, "commune:"},
		{"another EPCI's consumption", "pilote", cons + "&scope=epci:" + epciSQ, 403, "scope:"},
		{"another site's consumption", "pilote", cons + "&scope=site:ecole-sq", 403, "scope:"},
		{"no kind", "admin", "/api/v1/exports/csv?metric=power_w", 400, "kind:"},
		{"unknown parameter", "admin", series + "&format=csv", 400, "format:"},
		{"bad per", "admin", cons + "&scope=departement&per=m3", 400, "per"},
		{"too many rows", "admin", "/api/v1/exports/csv?kind=series&metric=power_w&from=1990-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", 400, "from, to: about"},
		{"too many windows", "admin", "/api/v1/exports/csv?kind=series&metric=power_w&from=1990-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&every=1m", 400, "every:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := f.get(t, nil, c.target, c.who)
			h := rec.Result().Header
			if rec.Code != c.code || !strings.HasPrefix(h.Get("Content-Type"), "application/json") ||
				!strings.Contains(rec.Body.String(), `"error":"`+strings.ReplaceAll(c.msg, `"`, `\"`)) {
				t.Fatalf("%d %s %q, want %d %q", rec.Code, h.Get("Content-Type"), rec.Body, c.code, c.msg)
			}
			if h.Get("X-Export-Rows-Estimate") != "" || h.Get("Content-Disposition") != "" {
				t.Errorf("error with export headers: %v", h)
			}
		})
	}
	// Without a filter a pilote exports its EPCI's devices only.
	rec := f.get(t, nil, series, "pilote")
	if rec.Code != 200 || strings.Contains(rec.Body.String(), epciSQ) || !strings.Contains(rec.Body.String(), ";elec-laon;") ||
		strings.Contains(rec.Body.String(), "ghost") {
		t.Errorf("pilote export: %d\n%s", rec.Code, rec.Body)
	}
}

func TestExportConsumption(t *testing.T) {
	f := newConsumptionFixture(t, true)
	rec := f.get(t, nil, "/api/v1/exports/csv?kind=consumption&scope=site:mairie-laon&fluid=electricity&from=2025-01-13&to=2025-01-14&every=day", "pilote")
	want := "\ufeffstart;end;fluid;unit;value;kwh\n" +
		"2025-01-13T00:00:00+01:00;2025-01-14T00:00:00+01:00;electricity;kWh;24;24\n" +
		"2025-01-14T00:00:00+01:00;2025-01-15T00:00:00+01:00;electricity;kWh;24;24\n"
	h := rec.Result().Header
	if rec.Code != 200 || rec.Body.String() != want || h.Get("X-Export-Rows-Estimate") != "2" ||
		h.Get("Content-Disposition") != `attachment; filename="consommation-site-mairie-laon-day-20250113-20250114.csv"` {
		t.Fatalf("%d %v\n%s\nwant:\n%s", rec.Code, h, rec.Body, want)
	}
	// Rollups not built yet: the consumption API's 503, before any body.
	f = newConsumptionFixture(t, false)
	rec = f.get(t, nil, "/api/v1/exports/csv?kind=consumption&scope=departement&from=2025-01-13&to=2025-01-14&every=day", "admin")
	if rec.Code != 503 || rec.Result().Header.Get("Retry-After") == "" || rec.Result().Header.Get("Content-Disposition") != "" {
		t.Errorf("not ready: %d %v %s", rec.Code, rec.Result().Header, rec.Body)
	}
}

// hookStore counts the queries of an export and runs a hook after each.
type hookStore struct {
	hv.Store
	n    int
	hook func(n int) error
}

func (h *hookStore) Query(ctx context.Context, q hv.Query) ([]hv.Series, error) {
	h.n++
	res, err := h.Store.Query(ctx, q)
	if err == nil && h.hook != nil {
		err = h.hook(h.n)
	}
	return res, err
}

// voltageFixture adds 30 days of 10-minute voltage of elec-laon to the fixture, behind a hookStore.
func voltageFixture(t *testing.T) (*fixture, *hookStore) {
	hs := &hookStore{}
	f := newFixtureWith(t, "testdata/registry.yaml", func(_ *registry.Registry, _ *live.State, d *Deps) {
		var rs []hv.Reading
		for at := now.Add(-30 * 24 * time.Hour); at.Before(now); at = at.Add(10 * time.Minute) {
			rs = append(rs, hv.Reading{Device: "elec-laon", Metric: hv.VoltageV, Value: 230, Time: at.UnixMilli(),
				Site: "mairie-laon", Commune: "02408", EPCI: epciLaon, Fluid: hv.Electricity})
		}
		_ = d.Store.Write(context.Background(), rs)
		hs.Store = d.Store
		d.Store = hs
	})
	return f, hs
}

const voltage30d = "/api/v1/exports/json?kind=series&metric=voltage_v&device=elec-laon&from=2024-12-16T12:00:00Z&to=2025-01-15T12:00:00Z"

func TestExportChunksAndCancel(t *testing.T) {
	f, hs := voltageFixture(t)
	rec := f.get(t, nil, voltage30d, "admin")
	if n := strings.Count(rec.Body.String(), "\n"); rec.Code != 200 || n != 30*144+1 || hs.n != 5 ||
		!strings.HasSuffix(rec.Body.String(), `{"end":true,"rows":4320}`+"\n") {
		t.Fatalf("%d, %d lines after %d queries, want 4 320 rows read a week at a time", rec.Code, n, hs.n)
	}
	// Every row once, in order.
	lines := strings.Split(rec.Body.String(), "\n")
	for i := range 30 * 144 {
		at := now.Add(-30*24*time.Hour + time.Duration(i)*10*time.Minute).UTC().Format(time.RFC3339)
		if !strings.HasPrefix(lines[i], `{"time":"`+at+`"`) {
			t.Fatalf("line %d: %s, want %s", i, lines[i], at)
		}
	}

	// The client leaves during the second chunk: no third query.
	hs.n = 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs.hook = func(n int) error {
		if n == 2 {
			cancel()
		}
		return nil
	}
	rec = f.get(t, ctx, voltage30d, "admin")
	if hs.n != 2 || strings.Contains(rec.Body.String(), `"end"`) {
		t.Errorf("cancelled: %d queries, body ends %q; want 2 queries and no end line", hs.n, rec.Body.String()[max(0, rec.Body.Len()-60):])
	}
}

func TestExportCutShort(t *testing.T) {
	f, hs := voltageFixture(t)
	hs.hook = func(n int) error {
		if n == 2 {
			return errors.New("boom")
		}
		return nil
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", voltage30d, nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["admin"])
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler: the connection is cut", v)
			}
		}()
		f.h.ServeHTTP(rec, req)
	}()
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasSuffix(body, `{"end":true,"rows":1008,"error":"export: query voltage_v: boom"}`+"\n") ||
		rec.Result().Trailer.Get("X-Export-Rows") != "" {
		t.Errorf("%d, body ends %q", rec.Code, body[max(0, len(body)-100):])
	}
}

// TestExportOverHTTP: through a real server the estimate comes first, the count in the trailer, and an
// export that fails midway ends in a transfer error, not a clean end.
func TestExportOverHTTP(t *testing.T) {
	f, hs := voltageFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	get := func() (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", srv.URL+strings.Replace(voltage30d, "/json?", "/csv?", 1), nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens["admin"])
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	resp, body, err := get()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Export-Rows-Estimate") != "4320" ||
		resp.Trailer.Get("X-Export-Rows") != "4320" || strings.Count(string(body), "\n") != 4321 {
		t.Fatalf("%v %d %v trailer %v, %d lines", err, resp.StatusCode, resp.Header, resp.Trailer, strings.Count(string(body), "\n"))
	}
	hs.n = 0
	hs.hook = func(n int) error {
		if n == 3 {
			return errors.New("boom")
		}
		return nil
	}
	resp, body, err = get()
	if err == nil || resp.StatusCode != 200 || resp.Trailer.Get("X-Export-Rows") != "" || strings.Count(string(body), "\n") != 1+2*1008 {
		t.Errorf("cut short: %v %d trailer %v, %d lines", err, resp.StatusCode, resp.Trailer, strings.Count(string(body), "\n"))
	}
}
