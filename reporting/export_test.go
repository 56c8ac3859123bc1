package reporting_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/reporting"
)

// TestOperatExportOnFleet: a year (2025) of the Pays de Laon's simulated hourly history; the OPERAT rows hold
// every building subject to the décret tertiaire, and each row's energy is the direct sum of the raw delta
// points of the building's meters over the Paris calendar year, recomputed here.
func TestOperatExportOnFleet(t *testing.T) {
	testenv.Slow(t, "a year of simulated history: a few seconds")
	ctx := context.Background()
	from, to := date(2025, 1, 1), date(2026, 1, 1)
	reg, st, an := laonHistory(t, from, to)

	direct := tertiaireDeltas(t, st, reg, from, to)
	tertiaire := 0
	for _, s := range reg.Sites() {
		if s.Tertiaire {
			tertiaire++
		}
	}
	someSite := ""
	for k := range direct {
		someSite = k.site
		break
	}
	an.SetReferences(reporting.References{someSite: {Site: someSite, Year: 2012, KWh: map[hv.Fluid]float64{hv.Electricity: 123456}, DJU: 2500}})
	rows, err := an.OperatExport(ctx, 2025, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(direct) || tertiaire == 0 {
		t.Fatalf("%d rows for %d (building, energy) pairs metered in %d tertiaire buildings", len(rows), len(direct), tertiaire)
	}
	for _, row := range rows {
		got := row.KWh
		if row.Fluid == hv.Gas {
			got = row.GasM3 // m³, as metered
		}
		if want := direct[siteFluid{row.Site.ID, row.Fluid}]; math.Abs(got-want) > 1e-6*math.Max(1, want) {
			t.Errorf("%s %s: %v, direct sum %v", row.Site.ID, row.Fluid, got, want)
		}
		if row.Category == "" {
			t.Errorf("%s (%s): no activity category", row.Site.ID, row.Site.Usage)
		}
		if row.Site.ID == someSite && row.Fluid == hv.Electricity && (row.ReferenceKWh != 123456 || row.ReferenceYear != 2012 || row.ReferenceDJU != 2500) {
			t.Errorf("%s: reference %v kWh in %d (%v DJU), want the declared 123456 in 2012 (2 500)", row.Site.ID, row.ReferenceKWh, row.ReferenceYear, row.ReferenceDJU)
		}
		if row.DJU < 1500 || row.DJU > 3500 {
			t.Errorf("%s: %v DJU in 2025 at its station, want a northern-France year", row.Site.ID, row.DJU)
		}
	}
	var buf bytes.Buffer
	if err := reporting.WriteOPERAT(&buf, 2025, rows); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != len(rows)+1 {
		t.Errorf("the CSV has %d lines for %d rows", lines, len(rows))
	}
}

// TestOpenDataOnFleet: two months of the Pays de Laon; the open-data rows of each commune, sector and fluid
// equal the direct sums of the raw delta points of its sites of that kind, and no row names a site.
func TestOpenDataOnFleet(t *testing.T) {
	testenv.Slow(t, "simulated history: a few seconds")
	ctx := context.Background()
	from, to := date(2025, 2, 1), date(2025, 4, 1)
	reg, st, an := laonHistory(t, from, to)
	type key struct {
		commune, sector string
		fluid           hv.Fluid
		month           int
	}
	direct := map[key]float64{}
	for _, fl := range reporting.Fluids {
		ss, err := st.Query(ctx, hv.Query{Metric: reporting.FluidMetric(fl), From: from.UnixMilli(), To: to.UnixMilli(), Fluids: []hv.Fluid{fl}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			d, site, ok := reg.Device(s.Device)
			if !ok || d.Fluid != fl {
				continue
			}
			sector := reporting.SectorBuildings
			if site.Kind == hv.SiteLightingCabinet {
				sector = reporting.SectorLighting
			}
			for _, p := range s.Points {
				direct[key{site.Commune, sector, fl, int(time.UnixMilli(p.Time).In(from.Location()).Month())}] += p.Value
			}
		}
	}
	rows, err := an.OpenData(ctx, 2025)
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, r := range rows {
		want := direct[key{r.Commune, r.Sector, r.Fluid, r.Month}]
		if r.Month > 3 && r.Value != 0 {
			t.Errorf("%+v: consumption outside the history", r)
		}
		if math.Abs(r.Value-want) > 1e-6*math.Max(1, want) {
			t.Errorf("%s %s %s month %d: %v, direct sum %v", r.Commune, r.Sector, r.Fluid, r.Month, r.Value, want)
		}
		if want > 0 {
			compared++
		}
	}
	if compared < 50 {
		t.Fatalf("only %d rows with consumption compared", compared)
	}
	var buf bytes.Buffer
	if err := reporting.WriteOpenData(&buf, rows, "test"); err != nil {
		t.Fatal(err)
	}
	csv := buf.String()
	if !strings.HasPrefix(csv, "code_insee,commune,epci,annee,mois,secteur,fluide,consommation,unite,kwh,licence,source\n") ||
		!strings.Contains(csv, reporting.OpenDataLicence) {
		t.Errorf("open data CSV:\n%.400s", csv)
	}
	for _, s := range reg.Sites() {
		if strings.Contains(csv, s.ID+",") {
			t.Fatalf("the open data names site %s", s.ID)
		}
	}
}
