package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// newBACSFixture serves the BACS report over the fixture's store: Laon's town hall draws 1 kWh an hour in
// November and December 2023, 2 kWh in November and December 2024 (twice the previous year: a loss of
// efficiency over both months); Saint-Quentin's school 1 kWh an hour in December 2024.
func newBACSFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, "testdata/registry.yaml", func(reg *registry.Registry, _ *live.State, d *Deps) {
		var rs []hv.Reading
		add := func(dev string, from, to time.Time, kwh float64) {
			_, site, _ := reg.Device(dev)
			for at := from.Add(30 * time.Minute); at.Before(to); at = at.Add(time.Hour) {
				rs = append(rs, hv.Reading{Device: dev, Metric: hv.EnergyKWh.Delta(), Time: at.UnixMilli(), Value: kwh,
					Site: site.ID, Commune: site.Commune, EPCI: site.EPCI, Fluid: hv.Electricity})
			}
		}
		month := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, sun.Paris()) }
		add("elec-laon", month(2023, 11), month(2024, 1), 1)
		add("elec-laon", month(2024, 11), month(2025, 1), 2)
		add("elec-sq", month(2024, 12), month(2025, 1), 1)
		if err := d.Store.Write(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
		cfg := reporting.DefaultConfig()
		cfg.Now = func() time.Time { return now }
		archive, err := reporting.OpenMonthlyArchive(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { archive.Close() })
		rollups := reporting.NewRollups(d.Store, cfg, nil)
		d.BACS = reporting.NewBACS(d.Store, rollups, archive, func() *registry.Registry { return reg }, cfg, 0, nil)
	})
}

func TestBACSReportAPI(t *testing.T) {
	f := newBACSFixture(t)
	code, body, _ := f.do(t, "GET", "/api/v1/bacs?site=mairie-laon&from=2024-11&to=2024-12", "pilote")
	if code != 200 {
		t.Fatalf("HTTP %d %v", code, body)
	}
	if body["site"] != "mairie-laon" || body["from"] != "2024-11" || body["to"] != "2024-12" || body["reference"] != "previous_year" {
		t.Errorf("header fields: %v", body)
	}
	if zones := body["zones"].([]any); len(zones) != 2 { // elec-laon and gaz-laon
		t.Errorf("zones %v, want the town hall's two meters", zones)
	}
	months := body["months"].([]any)
	if len(months) != 2 {
		t.Fatalf("months %v, want November and December 2024 of elec-laon (the gas meter has no data)", months)
	}
	nov := months[0].(map[string]any)
	if nov["zone"] != "elec-laon" || nov["month"] != "2024-11" || nov["kwh"] != 1440.0 || nov["reference_kwh"] != 720.0 ||
		nov["excess_pct"] != 100.0 || nov["status"] != "depassement" || nov["loss"] != true {
		t.Errorf("November 2024: %v", nov)
	}
	findings := body["findings"].([]any)
	if len(findings) != 1 || findings[0].(map[string]any)["from"] != "2024-11" || findings[0].(map[string]any)["to"] != "2024-12" {
		t.Errorf("findings %v, want one from 2024-11 to 2024-12", findings)
	}
}

func TestBACSExportAPI(t *testing.T) {
	f := newBACSFixture(t)
	req := httptest.NewRequest("GET", "/api/v1/exports/bacs?site=mairie-laon&from=2024-11&to=2024-12", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["technicien"])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
	}
	if ct, cd := rec.Header().Get("Content-Type"), rec.Header().Get("Content-Disposition"); !strings.HasPrefix(ct, "text/csv") ||
		cd != `attachment; filename="bacs-mairie-laon-2024-11-2024-12.csv"` {
		t.Errorf("Content-Type %q, Content-Disposition %q", ct, cd)
	}
	lines := strings.Split(strings.TrimRight(strings.TrimPrefix(rec.Body.String(), "\ufeff"), "\r\n"), "\n")
	want := []string{
		"site;zone;energie;mois;conso_kwh;heures_mesurees;heures_attendues;dju;conso_ajustee_kwh;reference_kwh;dju_reference;ecart_pct;statut;perte_efficacite",
		"mairie-laon;elec-laon;électricité;2024-11;1440;720;720;;;720;;100;depassement;oui",
		"mairie-laon;elec-laon;électricité;2024-12;1488;744;744;;;744;;100;depassement;oui",
	}
	if !strings.HasPrefix(rec.Body.String(), "\ufeff") || len(lines) != len(want) {
		t.Fatalf("CSV %q, want a BOM and %d lines", rec.Body, len(want))
	}
	for i := range want {
		if strings.TrimRight(lines[i], "\r") != want[i] {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}
}

// TestBACSScope: a pilote or a scoped reader asking for a site outside its EPCIs gets 404, as for an
// unknown site; the parameters are checked; without the service the routes answer 404.
func TestBACSScope(t *testing.T) {
	f := newBACSFixture(t)
	for _, c := range []struct {
		who, query string
		want       int
	}{
		{"pilote", "site=mairie-laon", 200},
		{"pilote", "site=ecole-sq", 404},
		{"lecteur-sq", "site=mairie-laon", 404},
		{"lecteur-sq", "site=ecole-sq", 200},
		{"admin", "site=nope", 404},
		{"admin", "", 400},
		{"admin", "site=ecole-sq&from=2024-13", 400},
		{"admin", "site=ecole-sq&from=2025-01&to=2024-12", 400},
		{"", "site=ecole-sq", 401},
	} {
		for _, path := range []string{"/api/v1/bacs?", "/api/v1/exports/bacs?"} {
			t.Run(c.who+" "+path+c.query, func(t *testing.T) {
				if code, body, _ := f.do(t, "GET", path+c.query, c.who); code != c.want {
					t.Errorf("HTTP %d %v, want %d", code, body, c.want)
				}
			})
		}
	}
	off := newFixture(t)
	if code, _, _ := off.do(t, "GET", "/api/v1/bacs?site=mairie-laon", "admin"); code != http.StatusNotFound {
		t.Errorf("without the BACS service: HTTP %d, want 404", code)
	}
}
