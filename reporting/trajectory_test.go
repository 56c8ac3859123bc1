package reporting_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// trajRegistry: Laon's town hall (1 000 m², electricity and gas, reference 2015), a collège of Laon (2 000 m²,
// electricity, reference 2019), a gymnase of Laon flagged tertiaire but with no reference declared, and Laon's
// weather station. Saint-Quentin's school is not subject to the décret.
const trajRegistry = `
sites:
  - {id: mairie-laon, name: "Mairie de Laon", kind: building, usage: mairie, commune: "02408", surface_m2: 1000, tertiaire: true, reference_year: 2015}
  - {id: college-laon, name: "Collège de Laon", kind: building, usage: collège, commune: "02408", surface_m2: 2000, tertiaire: true}
  - {id: gymnase-laon, name: "Gymnase de Laon", kind: building, usage: gymnase, commune: "02408", surface_m2: 1200, tertiaire: true}
  - {id: ecole-sq, name: "École Saint-Quentin", kind: building, usage: école, commune: "02691", surface_m2: 500}
  - {id: station-laon, name: "Station météo de Laon", kind: weather_station, commune: "02408"}
devices:
  - {id: elec-mairie, site: mairie-laon, kind: meter, fluid: electricity}
  - {id: gaz-mairie, site: mairie-laon, kind: meter, fluid: gas}
  - {id: elec-college, site: college-laon, kind: meter, fluid: electricity}
  - {id: elec-gymnase, site: gymnase-laon, kind: meter, fluid: electricity}
  - {id: elec-ecole, site: ecole-sq, kind: meter, fluid: electricity}
  - {id: meteo-laon, site: station-laon, kind: weather}
`

const trajReferences = "\ufeffidentifiant_site;annee_reference;type_energie;consommation_kwh;dju_reference\n" +
	"mairie-laon;2015;électricité;80000;2200\n" +
	"mairie-laon;2015;gaz naturel;40000;2200\n" +
	"college-laon;2019;electricity;10000;\n"

// TestTertiaireReport: hand-computed trajectories. The clock is 10 February 2026, so the complete year is 2025
// and the last twelve complete months run from February 2025 to January 2026. Gas is converted at 10 kWh/m³.
//
//	mairie 2025: electricity 1 + 50 000 + 9 = 50 010 kWh; gas (1 + 3 000) m³ = 30 010 kWh, all heating,
//	  adjusted to the reference year's 2 200 DJU from 2025's 2 540: 30 010 × 2 200 / 2 540; target from 2015:
//	  −40 × 10/15 = −26.667 % of 120 000 = 88 000 kWh → on track.
//	mairie latest: 50 000 + 9 + 1 000 = 51 009 kWh, gas 3 002 m³ = 30 020 kWh; January 2026 has no
//	  temperatures, so not adjusted: 81 029 kWh against 2026's −29.333 % = 84 800 → on track.
//	collège 2025: 100 + 5 000 + 3 900 = 9 000 kWh (no reference DJU: not adjusted) against 2025's
//	  −40 × 6/11 % of 10 000 = 7 818.18 kWh → above; latest 8 900 kWh against 2026's −40 × 7/11 % → above.
func TestTertiaireReport(t *testing.T) {
	reg := loadRegistry(t, trajRegistry)
	e := func(dev string, at time.Time, v float64) hv.Reading { return reading(t, reg, dev, elecDelta, at, v) }
	g := func(at time.Time, v float64) hv.Reading { return reading(t, reg, "gaz-mairie", volDelta, at, v) }
	rs := []hv.Reading{
		e("elec-mairie", paris(2025, 1, 1, 0, 30), 1),
		e("elec-mairie", paris(2025, 3, 15, 12, 0), 50000),
		e("elec-mairie", paris(2025, 12, 31, 12, 0), 9),
		e("elec-mairie", paris(2026, 1, 20, 12, 0), 1000),
		e("elec-mairie", paris(2026, 2, 5, 12, 0), 7), // after the latest period
		g(paris(2025, 1, 1, 1, 0), 1),
		g(paris(2025, 2, 20, 8, 0), 3000),
		g(paris(2026, 1, 31, 23, 0), 2),
		e("elec-college", paris(2025, 1, 1, 10, 0), 100),
		e("elec-college", paris(2025, 6, 1, 10, 0), 5000),
		e("elec-college", paris(2025, 10, 1, 10, 0), 3900),
		e("elec-gymnase", paris(2025, 1, 1, 10, 0), 100),
		e("elec-gymnase", paris(2026, 1, 31, 10, 0), 100),
		e("elec-ecole", paris(2025, 1, 1, 10, 0), 100),
	}
	// tinyReadings' temperatures: 2 540 DJU over 2025, none in 2026.
	for at := date(2025, 1, 1); at.Before(date(2026, 1, 1)); at = at.Add(time.Hour) {
		temp := 6.0
		if !at.Before(date(2025, 7, 1)) {
			temp = 16
		}
		rs = append(rs, reading(t, reg, "meteo-laon", hv.TemperatureC, at, temp))
	}
	cfg := reporting.DefaultConfig()
	cfg.Since = date(2024, 1, 1)
	cfg.Now = func() time.Time { return paris(2026, 2, 10, 12, 0) }
	cfg.GasPCS = 10
	st := openStore(t)
	backfill(t, st, rs)
	r := reporting.NewRollups(st, cfg, nil)
	if err := r.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	an := reporting.NewAnalytics(st, r, func() *registry.Registry { return reg }, cfg)

	rep, err := an.Tertiaire(context.Background(), reporting.TertiaireRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sites[0].Status != reporting.StatusNoReference || len(rep.Notes) == 0 {
		t.Fatalf("without references: %+v, notes %q", rep.Sites, rep.Notes)
	}

	refs, err := reporting.ReadReferences(strings.NewReader(trajReferences), "refs.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := refs.Check(reg.Sites()); err != nil {
		t.Fatal(err)
	}
	an.SetReferences(refs)
	rep, err = an.Tertiaire(context.Background(), reporting.TertiaireRequest{EPCIs: []string{"200043495"}})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]reporting.TertiaireSite{}
	var order []string
	for _, s := range rep.Sites {
		byID[s.Site] = s
		order = append(order, s.Site)
	}
	// Furthest above the target first; without a latest period last.
	if want := "college-laon,mairie-laon,gymnase-laon"; strings.Join(order, ",") != want {
		t.Fatalf("order %v, want %s (ecole-sq is not tertiaire)", order, want)
	}

	m := byID["mairie-laon"]
	if m.Status != reporting.StatusOnTrack || m.Trajectory == nil || len(m.Trajectory.Years) != 1 || m.Latest == nil {
		t.Fatalf("mairie: %+v", m)
	}
	y := m.Trajectory.Years[0]
	wantAdj := 50010 + 30010*2200.0/2540
	if y.Year != 2025 || !near(y.KWh, 80020) || !near(y.AdjustedKWh, wantAdj) || !y.Adjusted || !near(y.TargetKWh, 88000) || !y.OnTrack {
		t.Errorf("mairie 2025: %+v, want 80 020 kWh, adjusted %.3f, target 88 000", y, wantAdj)
	}
	if !near(m.Trajectory.ReferenceKWh, 120000) || !near(m.Trajectory.Targets[0].KWh, 72000) {
		t.Errorf("mairie reference %v, 2030 target %v; want 120 000 and 72 000", m.Trajectory.ReferenceKWh, m.Trajectory.Targets[0].KWh)
	}
	l := m.Latest
	if l.Year != 2026 || !near(l.KWh, 81029) || l.Adjusted || !near(l.TargetKWh, 120000*(1-0.4*11/15)) || m.LatestPeriod != "2025-02/2026-01" {
		t.Errorf("mairie latest (%s): %+v, want 81 029 kWh unadjusted, target %v", m.LatestPeriod, l, 120000*(1-0.4*11/15))
	}

	c := byID["college-laon"]
	if c.Status != reporting.StatusAbove || c.ReferenceYear != 2019 || len(c.Trajectory.Years) != 1 {
		t.Fatalf("collège: %+v", c)
	}
	cy := c.Trajectory.Years[0]
	if !near(cy.KWh, 9000) || cy.Adjusted || !near(cy.TargetKWh, 10000*(1-0.4*6/11)) || cy.OnTrack || !near(cy.KWhM2, 4.5) {
		t.Errorf("collège 2025: %+v", cy)
	}
	if !near(c.Latest.TargetPct, 40*7.0/11) || !near(c.Latest.KWh, 8900) {
		t.Errorf("collège latest %v kWh, target %v %%, want 8 900 and %v", c.Latest.KWh, c.Latest.TargetPct, 40*7.0/11)
	}
	if byID["gymnase-laon"].Status != reporting.StatusNoReference {
		t.Errorf("gymnase: %+v", byID["gymnase-laon"])
	}

	sm := rep.Summary
	if sm.Buildings != 3 || sm.WithReference != 2 || sm.OnTrack != 1 || !near(sm.ReferenceKWh, 130000) ||
		!near(sm.LatestKWh, 81029+8900) || !near(sm.Target2030KWh, 72000+6000) || !near(sm.Remaining2030, 81029+8900-78000) {
		t.Errorf("summary %+v", sm)
	}

	// One site; a site not subject to the décret is refused.
	one, err := an.Tertiaire(context.Background(), reporting.TertiaireRequest{Site: "college-laon"})
	if err != nil || len(one.Sites) != 1 {
		t.Fatalf("one site: %v, %+v", err, one)
	}
	if _, err := an.Tertiaire(context.Background(), reporting.TertiaireRequest{Site: "ecole-sq"}); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("ecole-sq: %v, want ErrInvalid", err)
	}

	var buf bytes.Buffer
	if err := reporting.WriteTertiaire(&buf, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(buf.String(), "\ufeff"), "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "college-laon;Collège de Laon;02408;200043495;2000;2019;10000;") ||
		!strings.Contains(lines[1], ";au-dessus de la trajectoire") || !strings.Contains(lines[3], ";référence non déclarée") {
		t.Errorf("CSV:\n%s", buf.String())
	}
}

func TestReadReferences(t *testing.T) {
	const head = "identifiant_site;annee_reference;type_energie;consommation_kwh;dju_reference\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", "refs.csv:1: invalid: empty file"},
		{"header", "site;year\n", `refs.csv:1: invalid: header "site;year"`},
		{"year", head + "s1;2005;électricité;1;\n", `refs.csv:2: annee_reference: invalid: "2005", want a year from 2010 to 2019`},
		{"energy", head + "s1;2015;fioul;1;\n", `refs.csv:2: type_energie: invalid: "fioul"`},
		{"kwh", head + "s1;2015;gaz;1,5;\n", `refs.csv:2: consommation_kwh: invalid: "1,5", want kWh ≥ 0 with a decimal point`},
		{"negative", head + "s1;2015;gaz;-1;\n", `refs.csv:2: consommation_kwh: invalid: "-1"`},
		{"dju", head + "s1;2015;gaz;1;0\n", `refs.csv:2: dju_reference: invalid: "0"`},
		{"columns", head + "s1;2015;gaz\n", "refs.csv:2: invalid: 3 columns, want 5"},
		{"two years", head + "s1;2015;gaz;1;\ns1;2016;électricité;1;\n", `refs.csv:3: annee_reference: invalid: 2016, but an earlier row of site "s1" says 2015`},
		{"twice", head + "s1;2015;gaz;1;\ns1;2015;gaz naturel;2;\n", `refs.csv:3: type_energie: invalid: site "s1" gives gaz naturel twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reporting.ReadReferences(strings.NewReader(tc.doc), "refs.csv")
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}

	refs, err := reporting.ReadReferences(strings.NewReader(trajReferences), "refs.csv")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := reporting.WriteReferences(&buf, refs); err != nil {
		t.Fatal(err)
	}
	again, err := reporting.ReadReferences(&buf, "again.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 || again["mairie-laon"].KWh[hv.Gas] != 40000 || again["mairie-laon"].DJU != 2200 ||
		again["college-laon"].Year != 2019 || again["college-laon"].DJU != 0 {
		t.Errorf("round trip: %+v", again)
	}

	reg := loadRegistry(t, trajRegistry)
	for _, tc := range []struct{ site, year, want string }{
		{"nowhere", "2015", `site "nowhere": invalid: not in the registry`},
		{"ecole-sq", "2015", `site "ecole-sq": invalid: not flagged tertiaire`},
		{"mairie-laon", "2016", `site "mairie-laon": invalid: reference year 2016, the registry says 2015`},
	} {
		refs, err := reporting.ReadReferences(strings.NewReader(head+tc.site+";"+tc.year+";gaz;1;\n"), "refs.csv")
		if err != nil {
			t.Fatal(err)
		}
		if err := refs.Check(reg.Sites()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.site, err, tc.want)
		}
	}
}
