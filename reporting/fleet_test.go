package reporting_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/reporting"
)

// TestSimulatedEPCI: two months (across the spring DST change) of the Pays de Laon's simulated hourly
// history; the monthly report of each commune and fluid equals a direct sum of the raw delta points, bucketed
// by Paris month here, and the ranking equals the per-site sums.
func TestSimulatedEPCI(t *testing.T) {
	testenv.Slow(t, "simulated history: a few seconds")
	ctx := context.Background()
	from, to := date(2025, 2, 1), date(2025, 4, 1)
	reg, st, an := laonHistory(t, from, to)
	const epci = "200043495"

	// The direct sums: raw points of each delta series, labelled through the registry.
	type key struct {
		commune string
		fluid   hv.Fluid
		month   time.Month
	}
	direct := map[key]float64{}
	siteKWh := map[string]float64{} // February + March, every energy in kWh
	metrics := map[hv.Metric]bool{}
	for _, fl := range reporting.Fluids {
		metrics[reporting.FluidMetric(fl)] = true
	}
	for m := range metrics {
		ss, err := st.Query(ctx, hv.Query{Metric: m, From: from.UnixMilli(), To: to.UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			d, site, ok := reg.Device(s.Device)
			if !ok || reporting.FluidMetric(d.Fluid) != m {
				continue
			}
			for _, p := range s.Points {
				direct[key{site.Commune, d.Fluid, time.UnixMilli(p.Time).In(from.Location()).Month()}] += p.Value
				switch d.Fluid {
				case hv.Gas:
					siteKWh[site.ID] += p.Value * reporting.DefaultGasPCS
				case hv.Electricity, hv.Heat:
					siteKWh[site.ID] += p.Value
				}
			}
		}
	}
	e, _ := reg.Territory().EPCI(epci)
	checked := map[hv.Fluid]int{}
	for _, commune := range e.Communes {
		resp, err := an.Consumption(ctx, reporting.Request{Scope: "commune:" + commune, From: from, To: to.AddDate(0, 0, -1),
			Every: reporting.EveryMonth})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range resp.Rows {
			want := direct[key{commune, row.Fluid, row.Start.Month()}]
			if math.Abs(row.Value-want) > 1e-9*math.Max(1, want) {
				t.Errorf("%s %s %s: report %v, direct %v", commune, row.Fluid, row.Start.Month(), row.Value, want)
			}
			if row.Fluid == hv.Gas && math.Abs(*row.KWh-want*reporting.DefaultGasPCS) > 1e-9*math.Max(1, want) {
				t.Errorf("%s gas %s: %v kWh for %v m³", commune, row.Start.Month(), *row.KWh, want)
			}
			if want > 0 {
				checked[row.Fluid]++
			}
		}
	}
	// Every fluid of the EPCI was compared on non-zero totals.
	for _, fl := range reporting.Fluids {
		if checked[fl] == 0 && fl != hv.Heat {
			t.Errorf("no %s total compared", fl)
		}
	}
	t.Logf("compared %v commune-months with consumption", checked)

	rank, err := an.Rank(ctx, reporting.RankRequest{EPCI: epci, Year: 2025, Per: reporting.PerM2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rank.Rows) == 0 {
		t.Fatal("empty ranking")
	}
	for i, row := range rank.Rows {
		site, _ := reg.Site(row.Site)
		want := siteKWh[row.Site] / site.SurfaceM2
		if math.Abs(row.Value-want) > 1e-9*math.Max(1, want) || row.Rank != i+1 || (i > 0 && row.Value > rank.Rows[i-1].Value) {
			t.Errorf("rank %d %s: %v kWh/m², direct %v", row.Rank, row.Site, row.Value, want)
		}
	}
	if !slices.Contains(rank.Notes, "Année 2025 en cours : consommations partielles.") {
		t.Errorf("notes %q: want the partial year said", rank.Notes)
	}
}
