package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// newConsumptionFixture serves the consumption analytics over the fixture's store, holding two days of
// hourly electricity deltas for Laon's town hall (1 kWh an hour) and Saint-Quentin's school (2 kWh an hour);
// built says whether the rollups are built before the first request.
func newConsumptionFixture(t *testing.T, built bool) *fixture {
	t.Helper()
	var f *fixture
	f = newFixtureWith(t, "testdata/registry.yaml", func(reg *registry.Registry, _ *live.State, d *Deps) {
		cfg := reporting.DefaultConfig()
		cfg.Now = func() time.Time { return now }
		rollups := reporting.NewRollups(d.Store, cfg, nil)
		var rs []hv.Reading
		start := time.Date(2025, 1, 13, 0, 0, 0, 0, sun.Paris()) // days are Paris days
		for h := range 48 {
			at := start.Add(time.Duration(h) * time.Hour).UnixMilli()
			for dev, kwh := range map[string]float64{"elec-laon": 1, "elec-sq": 2} {
				_, site, _ := reg.Device(dev)
				rs = append(rs, hv.Reading{Device: dev, Metric: hv.EnergyKWh.Delta(), Time: at, Value: kwh, Site: site.ID,
					Commune: site.Commune, EPCI: site.EPCI, Fluid: hv.Electricity})
			}
		}
		if err := d.Store.Write(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
		if built {
			if err := rollups.Build(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		d.Consumption = reporting.NewAnalytics(d.Store, rollups, func() *registry.Registry { return reg }, cfg)
	})
	return f
}

func TestConsumptionScope(t *testing.T) {
	f := newConsumptionFixture(t, true)
	const q = "&fluid=electricity&from=2025-01-13&to=2025-01-14&every=day"
	for _, c := range []struct {
		who, scope string
		want       int
	}{
		{"admin", "departement", 200},
		{"admin", "site:mairie-laon", 200},
		{"admin", "site:nope", 404},
		{"admin", "ville:laon", 400},
		{"pilote", "epci:" + epciLaon, 200},
		{"pilote", "", 200}, // its EPCI by default
		{"pilote", "epci:" + epciSQ, 403},
		{"pilote", "commune:02691", 403},
		{"pilote", "site:ecole-sq", 403},
		{"pilote", "departement", 403},
		{"lecteur-sq", "commune:02408", 403},
		{"lecteur", "commune:02691", 200},
		{"", "departement", 401},
	} {
		t.Run(c.who+" "+c.scope, func(t *testing.T) {
			code, body, _ := f.do(t, "GET", "/api/v1/consumption?scope="+c.scope+q, c.who)
			if code != c.want {
				t.Fatalf("HTTP %d %v, want %d", code, body, c.want)
			}
		})
	}
	// The values: two days of 24 kWh at the town hall; 72 kWh a day over the département.
	for scope, want := range map[string]float64{"site:mairie-laon": 24, "departement": 72} {
		_, body, _ := f.do(t, "GET", "/api/v1/consumption?scope="+scope+q, "admin")
		rows := body["rows"].([]any)
		if len(rows) != 2 {
			t.Fatalf("%s: %d rows, want 2 days", scope, len(rows))
		}
		for _, r := range rows {
			if v := r.(map[string]any)["value"].(float64); v != want {
				t.Errorf("%s: %v kWh a day, want %v", scope, v, want)
			}
		}
	}
	if code, body, _ := f.do(t, "GET", "/api/v1/consumption/ranking?year=2025&fluid=electricity", "pilote"); code != 200 ||
		len(body["rows"].([]any)) != 1 {
		t.Errorf("pilote ranking: %d %v, want its EPCI's one building", code, body)
	}
	if code, _, _ := f.do(t, "GET", "/api/v1/consumption/ranking?year=2025&epci="+epciSQ, "pilote"); code != 403 {
		t.Errorf("pilote ranking of another EPCI: %d, want 403", code)
	}
}

func TestConsumptionNotReady(t *testing.T) {
	f := newConsumptionFixture(t, false)
	code, body, hdr := f.do(t, "GET", "/api/v1/consumption?scope=departement&from=2025-01-13&to=2025-01-14&every=day", "admin")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("before the rollups are built: %d %v, want 503 with Retry-After", code, body)
	}
}

func TestOperatExportAPI(t *testing.T) {
	f := newConsumptionFixture(t, true)
	for _, c := range []struct {
		who, query string
		want       int
	}{
		{"admin", "year=2025", 200},
		{"pilote", "year=2025", 200},
		{"pilote", "year=2025&epci=" + epciSQ, 403},
		{"lecteur", "year=deux", 400},
	} {
		req := httptest.NewRequest("GET", "/api/v1/exports/operat?"+c.query, nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens[c.who])
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.who, c.query, rec.Code, rec.Body, c.want)
			continue
		}
		if c.want != 200 {
			continue
		}
		// The town hall of Laon (1 850 m², tertiaire) is in both; Saint-Quentin's school is not subject.
		body := rec.Body.String()
		if !strings.Contains(body, "mairie-laon") || strings.Contains(body, "ecole-sq") {
			t.Errorf("%s: export\n%s", c.who, body)
		}
	}
}

func TestOpenDataAPI(t *testing.T) {
	f := newConsumptionFixture(t, true)
	get := func(who string) (int, string) {
		req := httptest.NewRequest("GET", "/api/v1/exports/opendata?year=2025", nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens[who])
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, all := get("admin")
	if code != 200 || !strings.Contains(all, "02408,Laon,"+epciLaon+",2025,1,bâtiments publics,electricity,48.000,kWh") ||
		!strings.Contains(all, "02691,") || strings.Contains(all, "mairie-laon") {
		t.Fatalf("admin: %d\n%s", code, all)
	}
	if code, mine := get("pilote"); code != 200 || strings.Contains(mine, "02691,") || !strings.Contains(mine, "02408,") {
		t.Errorf("pilote of Laon: %d\n%s", code, mine)
	}
}

// TestTotalsCollector: the scrape exposes each EPCI's consumption of the year per fluid, computed from the
// rollups (two days of electricity: 48 kWh at Laon's town hall, 96 kWh at Saint-Quentin's school).
func TestTotalsCollector(t *testing.T) {
	f := newConsumptionFixture(t, true)
	reg := prometheus.NewRegistry()
	reg.MustRegister(reporting.NewTotalsCollector(f.srv.deps.Consumption))
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["epci"]+" "+labels["fluid"]+" "+labels["unit"]] = m.GetGauge().GetValue()
		}
	}
	if got[epciLaon+" electricity kWh"] != 48 || got[epciSQ+" electricity kWh"] != 96 {
		t.Errorf("totals %v", got)
	}
}

func TestPowerAPIScope(t *testing.T) {
	f := newConsumptionFixture(t, true)
	for _, c := range []struct {
		who, target string
		want        int
	}{
		{"admin", "/api/v1/power/sites/ecole-sq?from=2025-01-13&to=2025-01-14", 200},
		{"pilote", "/api/v1/power/sites/ecole-sq?from=2025-01-13&to=2025-01-14", 404},
		{"pilote", "/api/v1/power/sites/mairie-laon?from=2025-01-13&to=2025-01-14&every=1h", 200},
		{"pilote", "/api/v1/power/sites/mairie-laon?from=2025-01-13&to=2025-01-14&every=soon", 400},
		{"pilote", "/api/v1/power/sites/mairie-laon/subscription?year=2025", 200},
		{"pilote", "/api/v1/power/sites/ecole-sq/subscription?year=2025", 404},
		{"pilote", "/api/v1/power/peaks?epci=" + epciLaon + "&from=2025-01-13&to=2025-01-14", 200},
		{"pilote", "/api/v1/power/peaks?epci=" + epciSQ + "&from=2025-01-13&to=2025-01-14", 403},
		{"admin", "/api/v1/power/peaks?epci=123&from=2025-01-13&to=2025-01-14", 400},
	} {
		if code, body, _ := f.do(t, "GET", c.target, c.who); code != c.want {
			t.Errorf("%s %s: %d %v, want %d", c.who, c.target, code, body, c.want)
		}
	}
	// The fixture's power readings (h W at h hours before noon on 15 January) reach the load curve.
	_, body, _ := f.do(t, "GET", "/api/v1/power/sites/mairie-laon?from=2025-01-13&to=2025-01-15&every=1h", "admin")
	if pts := body["points"].([]any); len(pts) == 0 {
		t.Errorf("load curve without points: %v", body)
	}
}
