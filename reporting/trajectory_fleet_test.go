package reporting_test

import (
	"context"
	"math"
	"slices"
	"testing"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// TestTertiaireOnFleet: a year (2025) of the Pays de Laon's simulated history and the references its
// buildings declared (simulators.References: the model over the reference year, raised by a drawn saving).
// Every building subject to the décret has a trajectory; the latest period (2025, the clock being 2 January
// 2026) equals the direct sum of the raw delta series of its meters; and the cut the report measures against
// the reference recovers the saving the simulator drew, within the year-to-year weather the climate adjustment
// does not remove.
func TestTertiaireOnFleet(t *testing.T) {
	testenv.Slow(t, "a year of simulated history: a few seconds")
	ctx := context.Background()
	from, to := date(2025, 1, 1), date(2026, 1, 1)
	reg, st, an := laonHistory(t, from, to)

	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := fleet.Load(tr, fleet.Options{Seed: 1, EPCIs: []string{"200043495"}})
	if err != nil {
		t.Fatal(err)
	}
	sim := simulators.NewRunner(f, 1, from).References(reporting.DefaultGasPCS)
	refs := reporting.References{}
	saved := map[string]float64{}
	for _, r := range sim {
		refs[r.Site] = reporting.Reference{Site: r.Site, Year: r.Year, KWh: r.KWh, DJU: r.DJU}
		saved[r.Site] = r.SavedPct
	}
	if err := refs.Check(reg.Sites()); err != nil {
		t.Fatal(err)
	}
	an.SetReferences(refs)
	rep, err := an.Tertiaire(ctx, reporting.TertiaireRequest{})
	if err != nil {
		t.Fatal(err)
	}

	direct := map[string]float64{} // kWh per site over 2025, from the raw deltas
	for k, v := range tertiaireDeltas(t, st, reg, from, to) {
		if k.fluid == hv.Gas {
			v *= reporting.DefaultGasPCS
		}
		direct[k.site] += v
	}
	if len(rep.Sites) != len(sim) || len(sim) < 5 {
		t.Fatalf("%d buildings in the report, %d references", len(rep.Sites), len(sim))
	}
	var errs []float64
	statuses := map[string]int{}
	for _, s := range rep.Sites {
		statuses[s.Status]++
		if s.Latest == nil || s.LatestPeriod != "2025-01/2025-12" || len(s.Trajectory.Years) != 1 {
			t.Errorf("%s: %s, latest %v (%s), %d complete years", s.Site, s.Status, s.Latest, s.LatestPeriod, len(s.Trajectory.Years))
			continue
		}
		if want := direct[s.Site]; math.Abs(s.Latest.KWh-want) > 1e-6*want {
			t.Errorf("%s: %v kWh in 2025, direct sum %v", s.Site, s.Latest.KWh, want)
		}
		if !s.Latest.Adjusted {
			t.Errorf("%s: not climate-adjusted (%s station)", s.Site, s.Commune)
		}
		errs = append(errs, s.Latest.ChangePct+saved[s.Site])
	}
	slices.Sort(errs)
	// The model's consumption is not proportional to degree days (base loads, hot water, electric heating is
	// not adjusted), so the recovered cut is off by the weather of 2025 against each reference year.
	t.Logf("%d buildings, %v; measured cut − drawn saving: min %.1f, median %.1f, max %.1f points",
		len(errs), statuses, errs[0], errs[len(errs)/2], errs[len(errs)-1])
	if errs[0] < -8 || errs[len(errs)-1] > 8 {
		t.Errorf("measured cut − drawn saving from %.1f to %.1f points, want within ±8", errs[0], errs[len(errs)-1])
	}
	if statuses[reporting.StatusOnTrack] == 0 || statuses[reporting.StatusAbove] == 0 {
		t.Errorf("statuses %v: want buildings on both sides of the trajectory", statuses)
	}
}
