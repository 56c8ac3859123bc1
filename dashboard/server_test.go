package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
)

const (
	epciLaon = "200043495" // CA du Pays de Laon
	epciSQ   = "200071892" // CA du Saint-Quentinois
)

// now is the test clock: series default to the 24 h before it.
var now = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

// fakeStore implements hv.Store over a slice, with the domain's own filter and aggregate.
type fakeStore struct {
	readings []hv.Reading
	err      error
	queries  []hv.Query
}

var _ hv.Store = (*fakeStore)(nil)

func (f *fakeStore) Write(_ context.Context, rs []hv.Reading) error {
	f.readings = append(f.readings, rs...)
	return nil
}

func (f *fakeStore) Query(_ context.Context, q hv.Query) ([]hv.Series, error) {
	f.queries = append(f.queries, q)
	if f.err != nil {
		return nil, f.err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	byDevice := map[string]*hv.Series{}
	var order []string
	for _, r := range f.readings {
		if !q.Matches(r) || r.Time < q.From || r.Time >= q.To {
			continue
		}
		s := byDevice[r.Device]
		if s == nil {
			s = &hv.Series{Device: r.Device, Metric: r.Metric, Site: r.Site, Commune: r.Commune, EPCI: r.EPCI, Fluid: r.Fluid}
			byDevice[r.Device] = s
			order = append(order, r.Device)
		}
		s.Points = append(s.Points, hv.Point{Time: r.Time, Value: r.Value})
	}
	slices.Sort(order)
	out := make([]hv.Series, 0, len(order))
	for _, d := range order {
		s := byDevice[d]
		slices.SortFunc(s.Points, func(a, b hv.Point) int { return int(a.Time - b.Time) })
		s.Points = hv.Aggregate(s.Points, q.Every, q.Agg)
		out = append(out, *s)
	}
	return out, nil
}

func (f *fakeStore) Last(context.Context, []hv.Metric, int64) ([]hv.Reading, error) { return nil, nil }
func (f *fakeStore) Ping(context.Context) error                                     { return f.err }
func (f *fakeStore) Close() error                                                   { return nil }

type fixture struct {
	srv    *Server
	h      http.Handler
	store  *fakeStore
	tokens map[string]string // principal name → plain token
	ready  error
	hub    *live.Hub
	// With sessionMode (session_test.go): the user accounts, and each principal's login used by do and send
	// instead of its token.
	accounts *Accounts
	sessions map[string]sessionCreds
	clock    time.Time
}

// newFixture builds a server over a registry of two EPCI, hourly power readings of every device over the
// last two days, and one unregistered device.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, "testdata/registry.yaml", nil)
}

// newFixtureWith builds the fixture on another registry file; edit may add dependencies.
func newFixtureWith(t *testing.T, registryFile string, edit func(reg *registry.Registry, st *live.State, d *Deps)) *fixture {
	t.Helper()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Load(tr, registryFile)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: &fakeStore{}, tokens: map[string]string{}, hub: live.NewHub()}
	st := live.New()
	for _, d := range reg.Devices() {
		_, site, _ := reg.Device(d.ID)
		var rs []hv.Reading
		for h := 48; h >= 1; h-- {
			rs = append(rs, hv.Reading{Device: d.ID, Metric: hv.PowerW, Value: float64(h), Time: now.Add(-time.Duration(h) * time.Hour).UnixMilli(),
				Site: site.ID, Commune: site.Commune, EPCI: site.EPCI, Fluid: d.Fluid})
		}
		_ = f.store.Write(context.Background(), rs)
		st.Update(rs)
	}
	ghost := hv.Reading{Device: "ghost", Metric: hv.PowerW, Value: 7, Time: now.Add(-time.Hour).UnixMilli()}
	_ = f.store.Write(context.Background(), []hv.Reading{ghost})
	st.Update([]hv.Reading{ghost})
	unreg := registry.NewUnregistered(10)
	unreg.Observe("ghost", []byte(`{"power_w":7}`), now.Add(-time.Hour))

	var cfg []TokenConfig
	for _, p := range []Principal{
		{Name: "admin", Role: RoleAdmin},
		{Name: "technicien", Role: RoleTechnicien},
		{Name: "pilote", Role: RolePilote, EPCIs: []string{epciLaon}},
		{Name: "lecteur", Role: RoleLecteur},
		{Name: "lecteur-sq", Role: RoleLecteur, EPCIs: []string{epciSQ}},
	} {
		plain, sum, err := GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[p.Name] = plain
		cfg = append(cfg, TokenConfig{Name: p.Name, Role: p.Role, EPCIs: p.EPCIs, SHA256: sum})
	}
	auth, err := NewTokenAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{
		Store: f.store, Registry: reg, Unregistered: unreg, Live: st, Auth: auth,
		Ready: func(context.Context) error { return f.ready },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "# HELP hv_up up\nhv_up 1\n")
		}),
		Formats:        []string{"chirpstack", "json", "lineprotocol", "tts"},
		Hub:            f.hub,
		AllowedOrigins: []string{"https://hyperviseur.example.fr"},
	}
	if edit != nil {
		edit(reg, st, &deps)
	}
	if sessionMode {
		f.addAccounts(t, &deps, AccountsOptions{})
	}
	f.srv = New(deps, nil)
	f.srv.now = func() time.Time { return now }
	f.h = f.srv.Handler()
	if sessionMode {
		f.loginAll(t)
	}
	return f
}

// do sends a request as a principal ("" = anonymous) and decodes the JSON answer.
func (f *fixture) do(t *testing.T, method, target, who string) (int, map[string]any, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if who != "" {
		tok, ok := f.tokens[who]
		if !ok {
			tok = who // a literal bad token
		}
		f.authorize(req, who, tok)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var body map[string]any
	if ct := rec.Header().Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: invalid JSON %q: %v", method, target, rec.Body, err)
		}
	}
	return rec.Code, body, rec.Header()
}

func TestPublicRoutes(t *testing.T) {
	f := newFixture(t)
	code, body, _ := f.do(t, "GET", "/healthz", "")
	if code != 200 || body["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, body)
	}
	code, body, _ = f.do(t, "GET", "/readyz", "")
	if code != 200 || body["status"] != "ready" {
		t.Errorf("readyz: %d %v", code, body)
	}
	f.ready = errors.New("broker: not connected")
	code, body, _ = f.do(t, "GET", "/readyz", "")
	if code != 503 || body["error"] != "broker: not connected" {
		t.Errorf("readyz not ready: %d %v", code, body)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "hv_up 1") {
		t.Errorf("metrics: %d %q", rec.Code, rec.Body)
	}
	code, body, _ = f.do(t, "GET", "/api/openapi.json", "")
	if code != 200 || body["openapi"] != "3.1.0" {
		t.Errorf("openapi: %d", code)
	}
}

// TestAccess runs every API route for every role: anonymous is 401, a role without access 403, and a scoped
// pilote asking for another EPCI's data gets 403 (territory is public) or 404 (devices and sites), never data.
func TestAccess(t *testing.T) {
	f := newFixture(t)
	roles := []string{"admin", "technicien", "pilote", "lecteur", "lecteur-sq", ""}
	tests := []struct {
		target string
		want   []int // per role, in the order above
	}{
		{"/api/v1/me", []int{200, 200, 200, 200, 200, 401}},
		{"/api/v1/territory", []int{200, 200, 200, 200, 200, 401}},
		{"/api/v1/sites", []int{200, 200, 200, 200, 200, 401}},
		{"/api/v1/devices", []int{200, 200, 200, 200, 200, 401}},
		{"/api/v1/devices/unregistered", []int{200, 200, 403, 403, 403, 401}},
		{"/api/v1/devices/elec-laon/latest", []int{200, 200, 200, 200, 404, 401}},
		{"/api/v1/devices/elec-sq/latest", []int{200, 200, 404, 200, 200, 401}},
		{"/api/v1/devices/ghost/latest", []int{200, 200, 404, 404, 404, 401}},
		{"/api/v1/devices/nope/latest", []int{404, 404, 404, 404, 404, 401}},
		{"/api/v1/series?metric=power_w", []int{200, 200, 200, 200, 200, 401}},
		{"/api/v1/series?metric=power_w&epci=" + epciSQ, []int{200, 200, 403, 200, 200, 401}},
		{"/api/v1/series?metric=power_w&commune=02691", []int{200, 200, 403, 200, 200, 401}},
		{"/api/v1/series?metric=power_w&device=elec-sq", []int{200, 200, 404, 200, 200, 401}},
		{"/api/v1/series?metric=power_w&site=ecole-sq", []int{200, 200, 404, 200, 200, 401}},
		{"/api/v1/series?metric=power_w&device=ghost", []int{200, 200, 404, 404, 404, 401}},
		{"/api/v1/ingest/formats", []int{200, 200, 200, 200, 200, 401}},
		{"/api/v1/no-such-route", []int{404, 404, 404, 404, 404, 401}},
	}
	for _, tt := range tests {
		for i, who := range roles {
			name := who
			if name == "" {
				name = "anonymous"
			}
			t.Run(tt.target+"/"+name, func(t *testing.T) {
				code, body, hdr := f.do(t, "GET", tt.target, who)
				if code != tt.want[i] {
					t.Fatalf("got %d %v, want %d", code, body, tt.want[i])
				}
				if code >= 400 {
					if msg, _ := body["error"].(string); msg == "" {
						t.Errorf("no JSON error in %v", body)
					}
				}
				if code == 401 && hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if code == 200 && who != "" && strings.Contains(tt.target, "series") {
					for _, s := range body["series"].([]any) {
						if epci := s.(map[string]any)["epci"]; who == "pilote" && epci != epciLaon {
							t.Errorf("pilote got a series of EPCI %v", epci)
						}
					}
				}
			})
		}
	}
}

func TestBadCredentials(t *testing.T) {
	f := newFixture(t)
	code, body, hdr := f.do(t, "GET", "/api/v1/sites", "hvt_not-a-real-token")
	if code != 401 || body["error"] != "invalid credentials" || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("got %d %v %v", code, body, hdr)
	}
	code, body, hdr = f.do(t, "POST", "/api/v1/sites", "admin")
	if code != 405 || body["error"] != "method not allowed" || !strings.Contains(hdr.Get("Allow"), "GET") {
		t.Fatalf("POST: got %d %v %v", code, body, hdr)
	}
	code, body, _ = f.do(t, "GET", "/nowhere", "")
	if code != 404 || body["error"] != "not found" {
		t.Fatalf("unknown path: got %d %v", code, body)
	}
}

func TestScopedViews(t *testing.T) {
	f := newFixture(t)

	_, body, _ := f.do(t, "GET", "/api/v1/territory", "pilote")
	epcis := body["epci"].([]any)
	if len(epcis) != 1 || epcis[0].(map[string]any)["nom"] != "CA du Pays de Laon" {
		t.Fatalf("pilote territory EPCI: %v", epcis)
	}
	e := epcis[0].(map[string]any)
	communes := body["communes"].([]any)
	if int(e["communes"].(float64)) != len(communes) || e["population"].(float64) < 24220 {
		t.Errorf("pilote territory: EPCI %v, %d communes", e, len(communes))
	}
	for _, c := range communes {
		if c.(map[string]any)["epci"] != epciLaon {
			t.Fatalf("pilote sees commune %v", c)
		}
	}
	_, body, _ = f.do(t, "GET", "/api/v1/territory", "admin")
	if n := len(body["communes"].([]any)); n != 797 || len(body["epci"].([]any)) != 20 {
		t.Errorf("admin territory: %d communes", n)
	}

	ids := func(list []any) []string {
		var out []string
		for _, x := range list {
			out = append(out, x.(map[string]any)["id"].(string))
		}
		return out
	}
	_, body, _ = f.do(t, "GET", "/api/v1/sites", "pilote")
	if got := ids(body["sites"].([]any)); !slices.Equal(got, []string{"mairie-laon", "meteo-laon"}) {
		t.Errorf("pilote sites: %v", got)
	}
	_, body, _ = f.do(t, "GET", "/api/v1/sites?commune=02691", "admin")
	if got := ids(body["sites"].([]any)); !slices.Equal(got, []string{"ecole-sq"}) {
		t.Errorf("admin sites in Saint-Quentin: %v", got)
	}

	_, body, _ = f.do(t, "GET", "/api/v1/devices", "pilote")
	if got := ids(body["devices"].([]any)); !slices.Equal(got, []string{"elec-laon", "gaz-laon", "meteo-laon"}) {
		t.Errorf("pilote devices: %v", got)
	}
	if _, ok := body["unregistered"]; ok {
		t.Error("pilote sees unregistered devices")
	}
	_, body, _ = f.do(t, "GET", "/api/v1/devices?fluid=electricity", "technicien")
	devs := body["devices"].([]any)
	if got := ids(devs); !slices.Equal(got, []string{"elec-laon", "elec-sq"}) {
		t.Errorf("technicien electricity devices: %v", got)
	}
	d := devs[0].(map[string]any)
	if d["interval"] != "10m" || d["epci"] != epciLaon || d["commune"] != "02408" || d["site_name"] != "Mairie de Laon" ||
		d["last_seen"] != "2025-01-15T11:00:00Z" {
		t.Errorf("device view: %v", d)
	}
	if u := body["unregistered"].([]any); len(u) != 1 || u[0].(map[string]any)["id"] != "ghost" {
		t.Errorf("technicien unregistered: %v", u)
	}

	code, body, _ := f.do(t, "GET", "/api/v1/devices/elec-laon/latest", "pilote")
	readings := body["readings"].([]any)
	if code != 200 || len(readings) != 1 || body["registered"] != true || body["epci"] != epciLaon {
		t.Fatalf("latest: %d %v", code, body)
	}
	want := map[string]any{"metric": "power_w", "value": 1.0, "unit": "W", "time": "2025-01-15T11:00:00Z"}
	if fmt.Sprint(readings[0]) != fmt.Sprint(want) {
		t.Errorf("latest reading: got %v, want %v", readings[0], want)
	}
	_, body, _ = f.do(t, "GET", "/api/v1/devices/ghost/latest", "admin")
	if body["registered"] != false || len(body["readings"].([]any)) != 1 {
		t.Errorf("latest of an unregistered device: %v", body)
	}
}

func TestSeriesQuery(t *testing.T) {
	f := newFixture(t)
	code, body, _ := f.do(t, "GET", "/api/v1/series?metric=power_w&device=elec-laon,elec-sq&from=2025-01-15T00:00:00Z&to=1736942400000", "admin")
	if code != 200 {
		t.Fatalf("got %d %v", code, body)
	}
	series := body["series"].([]any)
	if len(series) != 2 || body["from"] != "2025-01-15T00:00:00Z" || body["to"] != "2025-01-15T12:00:00Z" {
		t.Fatalf("got %v", body)
	}
	s0 := series[0].(map[string]any)
	if s0["device"] != "elec-laon" || s0["unit"] != "W" || s0["epci"] != epciLaon || len(s0["points"].([]any)) != 12 {
		t.Errorf("series[0]: %v", s0)
	}
	// Repeated parameters and aggregation: 12 hourly points (values 12..1) summed in 6-hour windows.
	code, body, _ = f.do(t, "GET", "/api/v1/series?metric=power_w&device=elec-laon&device=elec-laon&from=2025-01-15T00:00:00Z&every=6h&agg=sum", "admin")
	if code != 200 || body["every"] != "6h" || body["agg"] != "sum" {
		t.Fatalf("got %d %v", code, body)
	}
	pts := body["series"].([]any)[0].(map[string]any)["points"].([]any)
	if fmt.Sprint(pts) != "[map[t:1.7368992e+12 v:57] map[t:1.7369208e+12 v:21]]" {
		t.Errorf("aggregated points: %v", pts)
	}
	// Default range: the last 24 h.
	f.store.queries = nil
	f.do(t, "GET", "/api/v1/series?metric=power_w,energy_kwh_delta", "admin")
	if len(f.store.queries) != 2 || f.store.queries[0].To != now.UnixMilli() || f.store.queries[0].From != now.Add(-24*time.Hour).UnixMilli() ||
		f.store.queries[1].Metric != hv.EnergyKWh.Delta() {
		t.Errorf("queries: %+v", f.store.queries)
	}
	// The pilote's query is narrowed to its EPCI whatever it asks.
	f.store.queries = nil
	code, body, _ = f.do(t, "GET", "/api/v1/series?metric=power_w&fluid=electricity", "pilote")
	if code != 200 || len(f.store.queries) != 1 || !slices.Equal(f.store.queries[0].EPCIs, []string{epciLaon}) {
		t.Fatalf("pilote query: %d %+v", code, f.store.queries)
	}
	if s := body["series"].([]any); len(s) != 1 || s[0].(map[string]any)["device"] != "elec-laon" {
		t.Errorf("pilote series: %v", s)
	}
	// An unscoped lecteur does not see unregistered devices' series; staff does.
	_, body, _ = f.do(t, "GET", "/api/v1/series?metric=power_w", "lecteur")
	for _, s := range body["series"].([]any) {
		if s.(map[string]any)["device"] == "ghost" {
			t.Error("lecteur sees an unregistered device")
		}
	}
	_, body, _ = f.do(t, "GET", "/api/v1/series?metric=power_w&device=ghost", "admin")
	if len(body["series"].([]any)) != 1 {
		t.Errorf("admin ghost series: %v", body)
	}
}

func TestSeriesBadParams(t *testing.T) {
	f := newFixture(t)
	tests := []struct{ query, param string }{
		{"", "metric"},
		{"metric=watts", "metric"},
		{"metric=power_w&from=yesterday", "from"},
		{"metric=power_w&to=2025-13-01T00:00:00Z", "to"},
		{"metric=power_w&from=2025-01-15T00:00:00Z&to=2025-01-14T00:00:00Z", "to"},
		{"metric=power_w&every=15%20minutes", "every"},
		{"metric=power_w&every=500ms", "every"},
		{"metric=power_w&every=-1h", "every"},
		{"metric=power_w&from=2024-01-01T00:00:00Z&every=1s", "every"},
		{"metric=power_w&agg=median&every=1h", "agg"},
		{"metric=power_w&agg=sum", "agg"},
		{"metric=power_w&commune=02999", "commune"},
		{"metric=power_w&epci=123", "epci"},
		{"metric=power_w&fluid=fioul", "fluid"},
		{"metric=power_w&metrics=energy_kwh", "metrics"},
		{"metric=a,b,c,d,e,f,g,h,i,j,k", "metric"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, body, _ := f.do(t, "GET", "/api/v1/series?"+tt.query, "admin")
			msg, _ := body["error"].(string)
			if code != 400 || !strings.HasPrefix(msg, tt.param+":") {
				t.Fatalf("got %d %q, want 400 naming %s", code, msg, tt.param)
			}
		})
	}
}

func TestSeriesLimitsAndStoreErrors(t *testing.T) {
	f := newFixture(t)
	var many []hv.Reading
	for i := range MaxPoints + 1 {
		many = append(many, hv.Reading{Device: "elec-laon", Metric: hv.VoltageV, Value: 230, Time: now.Add(-time.Hour).UnixMilli() + int64(i),
			Site: "mairie-laon", Commune: "02408", EPCI: epciLaon, Fluid: hv.Electricity})
	}
	_ = f.store.Write(context.Background(), many)
	code, body, _ := f.do(t, "GET", "/api/v1/series?metric=voltage_v", "admin")
	if msg, _ := body["error"].(string); code != 400 || !strings.HasPrefix(msg, "every: too many points") {
		t.Fatalf("raw flood: got %d %v", code, body)
	}
	code, body, _ = f.do(t, "GET", "/api/v1/series?metric=voltage_v&every=1m", "admin")
	if code != 200 {
		t.Fatalf("aggregated: got %d %v", code, body)
	}
	for _, tt := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("influx: %w", hv.ErrUnavailable), 503},
		{fmt.Errorf("query: %w", hv.ErrInvalid), 400},
		{errors.New("boom"), 500},
	} {
		f.store.err = tt.err
		code, body, _ := f.do(t, "GET", "/api/v1/series?metric=power_w", "admin")
		if code != tt.code || body["error"] == "" || strings.Contains(fmt.Sprint(body), "boom") {
			t.Errorf("store error %v: got %d %v", tt.err, code, body)
		}
	}
}

// TestOpenAPI checks the document lists exactly the routes the server serves, with their methods, and says
// which need a token.
func TestOpenAPI(t *testing.T) {
	f := newFixture(t)
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	served := map[string]bool{}
	for _, rt := range f.srv.routes {
		if isWebRoute(rt.path) {
			continue // the UI's files, not the API
		}
		key := rt.path + " " + strings.ToLower(rt.method)
		served[key] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s is served but not documented", rt.method, rt.path)
			continue
		}
		sec, _ := op["security"].([]any)
		if public := rt.roles == nil; public != (len(sec) == 0) {
			t.Errorf("%s %s: documented security %v, public %v", rt.method, rt.path, sec, public)
		}
		resp := op["responses"].(map[string]any)
		if resp["200"] == nil && resp["201"] == nil && resp["204"] == nil && resp["101"] == nil { // 101: the websocket
			t.Errorf("%s %s: no success response documented", rt.method, rt.path)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[path+" "+method] {
				t.Errorf("%s %s is documented but not served", method, path)
			}
		}
	}
	// Every $ref points at a component.
	var all map[string]any
	_ = json.Unmarshal(openAPI, &all)
	comps := all["components"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				if sec, ok := comps[parts[0]].(map[string]any); !ok || sec[parts[1]] == nil {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
}

func TestNewPanicsWithoutAuth(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New without Auth did not panic")
		}
	}()
	New(Deps{Store: &fakeStore{}, Registry: &registry.Registry{}, Live: live.New()}, nil)
}
