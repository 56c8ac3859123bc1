package reporting

import (
	"errors"
	"math"
	"strings"
	"testing"

	hv "github.com/useda02/hyperviseur"
)

// complianceNear fails the test when got differs from want by more than 1e-6 (relative to want, or absolute near 0).
func complianceNear(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// tertiaireSchool is a building of 1 000 m² with a 2010 reference.
func tertiaireSchool() hv.Site {
	return hv.Site{ID: "ecole-laon-1", Name: "École Jean Mermoz", Kind: hv.SiteBuilding, Usage: "école",
		Commune: "02408", SurfaceM2: 1000, Tertiaire: true, ReferenceYear: 2010}
}

func TestTertiaireLinearTargetPct(t *testing.T) {
	for _, c := range []struct {
		name          string
		refYear, year int
		want          float64
	}{
		{"before the reference", 2010, 2005, 0},
		{"the reference year", 2010, 2010, 0},
		{"halfway to 2030", 2010, 2020, 20},
		{"2026 from 2010: 16/20 of 40", 2010, 2026, 32},
		{"2026 from 2019: 7/11 of 40", 2019, 2026, 40.0 * 7 / 11},
		{"2030", 2015, 2030, 40},
		{"halfway 2030-2040", 2010, 2035, 45},
		{"2040", 2010, 2040, 50},
		{"2045", 2010, 2045, 55},
		{"2050", 2010, 2050, 60},
		{"past 2050", 2010, 2060, 60},
	} {
		t.Run(c.name, func(t *testing.T) {
			complianceNear(t, "target", LinearTargetPct(c.refYear, c.year), c.want)
		})
	}
}

// TestTertiaireTrajectory: reference 100 000 kWh of electricity in 2010 on 1 000 m², no heating share, no
// degree days: targets 60 000 / 50 000 / 40 000 kWh; 80 000 kWh in 2026 is −20 % against a linear target of
// −32 % (68 000 kWh): 12 000 kWh, 17.65 % above.
func TestTertiaireTrajectory(t *testing.T) {
	in := TertiaireInput{
		Site:      tertiaireSchool(),
		Reference: map[hv.Fluid]float64{hv.Electricity: 100_000},
		Years: []YearConsumption{
			{Year: 2026, KWh: map[hv.Fluid]float64{hv.Electricity: 80_000}},
			{Year: 2020, KWh: map[hv.Fluid]float64{hv.Electricity: 75_000}},
			{Year: 2035, KWh: map[hv.Fluid]float64{hv.Electricity: 55_000}},
		},
	}
	tr, err := TertiaireTrajectory(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	complianceNear(t, "reference", tr.ReferenceKWh, 100_000)
	complianceNear(t, "reference kWh/m²", tr.ReferenceKWhM2, 100)
	if tr.ReferenceYear != 2010 || tr.SurfaceM2 != 1000 || tr.Absolute != nil {
		t.Fatalf("trajectory %+v: reference year and surface from the site, no absolute thresholds", tr)
	}
	wantTargets := []Target{{2030, 40, 60_000, 60, 0}, {2040, 50, 50_000, 50, 0}, {2050, 60, 40_000, 40, 0}}
	if len(tr.Targets) != len(wantTargets) {
		t.Fatalf("targets %+v", tr.Targets)
	}
	for i, w := range wantTargets {
		g := tr.Targets[i]
		if g.Year != w.Year || g.ReductionPct != w.ReductionPct {
			t.Fatalf("target %d: %+v, want %+v", i, g, w)
		}
		complianceNear(t, "target kWh", g.KWh, w.KWh)
		complianceNear(t, "target kWh/m²", g.KWhM2, w.KWhM2)
	}

	want := []struct {
		year                              int
		kwh, change, targetPct, targetKWh float64
		gapKWh, gapPct                    float64
		onTrack                           bool
	}{
		{2020, 75_000, -25, 20, 80_000, -5_000, -6.25, true},
		{2026, 80_000, -20, 32, 68_000, 12_000, 12_000.0 / 68_000 * 100, false},
		{2035, 55_000, -45, 45, 55_000, 0, 0, true}, // exactly on the line is on track
	}
	if len(tr.Years) != len(want) {
		t.Fatalf("years %+v", tr.Years)
	}
	for i, w := range want {
		y := tr.Years[i]
		if y.Year != w.year {
			t.Fatalf("year %d is %d: years must come out sorted", i, y.Year)
		}
		complianceNear(t, "kWh", y.KWh, w.kwh)
		complianceNear(t, "adjusted kWh", y.AdjustedKWh, w.kwh)
		complianceNear(t, "change %", y.ChangePct, w.change)
		complianceNear(t, "target %", y.TargetPct, w.targetPct)
		complianceNear(t, "target kWh", y.TargetKWh, w.targetKWh)
		complianceNear(t, "gap kWh", y.GapKWh, w.gapKWh)
		complianceNear(t, "gap %", y.GapPct, w.gapPct)
		if y.Adjusted || y.OnTrack != w.onTrack || y.Meets() != w.onTrack {
			t.Errorf("%d: adjusted %v on track %v, want false %v", w.year, y.Adjusted, y.OnTrack, w.onTrack)
		}
	}
}

// TestTertiaireClimateAdjustment: reference 2015 of 50 000 kWh gas + 30 000 kWh electricity at 2 500 DJU;
// 2024 at 2 000 DJU (a mild year). Gas is all heating: 40 000 × 2 500 / 2 000 = 50 000 kWh.
func TestTertiaireClimateAdjustment(t *testing.T) {
	base := TertiaireInput{
		Site:          tertiaireSchool(),
		ReferenceYear: 2015,
		Reference:     map[hv.Fluid]float64{hv.Gas: 50_000, hv.Electricity: 30_000},
		ReferenceDJU:  2500,
		Years: []YearConsumption{
			{Year: 2024, KWh: map[hv.Fluid]float64{hv.Gas: 40_000, hv.Electricity: 30_000}, DJU: 2000},
		},
	}
	for _, c := range []struct {
		name           string
		edit           func(*TertiaireInput)
		gas, elec      float64 // adjusted kWh
		adjusted       bool
		change, gapKWh float64
		wantElecShare  float64
		wantGasShare   float64
	}{
		// Target 2024 from 2015: 40 × 9/15 = 24 % → 60 800 kWh.
		{"defaults: gas heats, electricity does not", nil, 50_000, 30_000, true, 0, 80_000 - 60_800, 0, 1},
		// Electricity half heating: 15 000 + 15 000 × 1.25 = 33 750.
		{"electrically heated", func(in *TertiaireInput) { in.ElectricHeating = true },
			50_000, 33_750, true, 3.75 / 0.8, 83_750 - 60_800, 0.5, 1},
		// Gas 80 % heating: 8 000 + 32 000 × 1.25 = 48 000.
		{"heating share override", func(in *TertiaireInput) { in.HeatingShare = map[hv.Fluid]float64{hv.Gas: 0.8} },
			48_000, 30_000, true, -2.5, 78_000 - 60_800, 0, 0.8},
		{"no degree days for the year", func(in *TertiaireInput) { in.Years[0].DJU = 0 },
			40_000, 30_000, false, -12.5, 70_000 - 60_800, 0, 1},
		{"no reference degree days", func(in *TertiaireInput) { in.ReferenceDJU = 0 },
			40_000, 30_000, false, -12.5, 70_000 - 60_800, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := base
			in.Years = []YearConsumption{base.Years[0]}
			if c.edit != nil {
				c.edit(&in)
			}
			tr, err := TertiaireTrajectory(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			y := tr.Years[0]
			if y.Adjusted != c.adjusted || len(y.Energies) != 2 {
				t.Fatalf("year %+v, want adjusted %v with two energies", y, c.adjusted)
			}
			elec, gas := y.Energies[0], y.Energies[1]
			if elec.Fluid != hv.Electricity || gas.Fluid != hv.Gas {
				t.Fatalf("energies %+v, want electricity then gas", y.Energies)
			}
			complianceNear(t, "electricity share", elec.HeatingShare, c.wantElecShare)
			complianceNear(t, "gas share", gas.HeatingShare, c.wantGasShare)
			complianceNear(t, "gas adjusted", gas.AdjustedKWh, c.gas)
			complianceNear(t, "electricity adjusted", elec.AdjustedKWh, c.elec)
			complianceNear(t, "actual", y.KWh, 70_000)
			complianceNear(t, "adjusted", y.AdjustedKWh, c.gas+c.elec)
			complianceNear(t, "change %", y.ChangePct, c.change)
			complianceNear(t, "target kWh", y.TargetKWh, 60_800)
			complianceNear(t, "gap kWh", y.GapKWh, c.gapKWh)
		})
	}
}

func TestTertiaireClimateAdjusted(t *testing.T) {
	for _, c := range []struct {
		name                      string
		kwh, share, dju, ref, got float64
		ok                        bool
	}{
		{"cold year scaled down", 60_000, 1, 3000, 2500, 50_000, true},
		{"mild year scaled up", 40_000, 1, 2000, 2500, 50_000, true},
		{"half heating", 40_000, 0.5, 2000, 2500, 45_000, true},
		{"no heating", 40_000, 0, 2000, 2500, 40_000, true},
		{"unknown year", 40_000, 1, 0, 2500, 40_000, false},
		{"unknown reference", 40_000, 1, 2000, 0, 40_000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ClimateAdjusted(c.kwh, c.share, c.dju, c.ref)
			complianceNear(t, "adjusted", got, c.got)
			if ok != c.ok {
				t.Errorf("ok %v, want %v", ok, c.ok)
			}
		})
	}
}

// TestTertiaireGasM3: 4 000 m³ at 11.25 kWh/m³ are 45 000 kWh PCS.
func TestTertiaireGasM3(t *testing.T) {
	in := TertiaireInput{
		Site:      tertiaireSchool(),
		Reference: map[hv.Fluid]float64{hv.Gas: 60_000},
		Years:     []YearConsumption{{Year: 2024, GasM3: 4000, GasKWhPerM3: 11.25}},
	}
	tr, err := TertiaireTrajectory(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	complianceNear(t, "gas kWh", tr.Years[0].KWh, 45_000)
	complianceNear(t, "change %", tr.Years[0].ChangePct, -25)
}

// TestTertiaireAbsolute: thresholds are configuration; these are test values, not the arrêté's.
func TestTertiaireAbsolute(t *testing.T) {
	table := AbsoluteTable{"test-category": {2030: 90, 2040: 80}}
	in := TertiaireInput{
		Site:      tertiaireSchool(),
		Category:  "test-category",
		Reference: map[hv.Fluid]float64{hv.Electricity: 100_000},
		Years: []YearConsumption{
			{Year: 2026, KWh: map[hv.Fluid]float64{hv.Electricity: 80_000}}, // 80 kWh/m² ≤ 90 (2030)
			{Year: 2035, KWh: map[hv.Fluid]float64{hv.Electricity: 85_000}}, // 85 > 80 (2040)
			{Year: 2045, KWh: map[hv.Fluid]float64{hv.Electricity: 75_000}}, // past the last configured: 80
		},
	}
	tr, err := TertiaireTrajectory(in, table)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Absolute == nil || tr.Targets[0].AbsoluteKWhM2 != 90 || tr.Targets[1].AbsoluteKWhM2 != 80 ||
		tr.Targets[2].AbsoluteKWhM2 != 0 {
		t.Fatalf("targets %+v, absolute %v", tr.Targets, tr.Absolute)
	}
	for i, w := range []struct {
		threshold, gap float64
		met, meets     bool
	}{
		{90, -10, true, true}, // off the relative line (−20 % for −32 %) but under the absolute value
		{80, 5, false, false},
		{80, -5, true, true},
	} {
		y := tr.Years[i]
		complianceNear(t, "threshold", y.AbsoluteKWhM2, w.threshold)
		complianceNear(t, "absolute gap", y.AbsoluteGapKWhM2, w.gap)
		if y.AbsoluteMet != w.met || y.Meets() != w.meets {
			t.Errorf("%d: met %v meets %v, want %v %v", y.Year, y.AbsoluteMet, y.Meets(), w.met, w.meets)
		}
	}
	if tr.Years[0].OnTrack {
		t.Error("2026 at −20 % is on the relative track; want off (−32 %)")
	}

	in.Category = "other"
	tr, err = TertiaireTrajectory(in, table)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Absolute != nil || tr.Years[0].AbsoluteKWhM2 != 0 || tr.Years[0].AbsoluteMet {
		t.Errorf("category without thresholds: %+v", tr.Years[0])
	}
}

func TestTertiaireInvalid(t *testing.T) {
	valid := func() TertiaireInput {
		return TertiaireInput{
			Site:      tertiaireSchool(),
			Reference: map[hv.Fluid]float64{hv.Electricity: 100_000},
			Years:     []YearConsumption{{Year: 2024, KWh: map[hv.Fluid]float64{hv.Electricity: 80_000}}},
		}
	}
	for _, c := range []struct {
		name  string
		edit  func(*TertiaireInput)
		table AbsoluteTable
		want  string
	}{
		{"reference year before 2010", func(in *TertiaireInput) { in.ReferenceYear = 2009 }, nil, "reference year 2009"},
		{"reference year after 2019", func(in *TertiaireInput) { in.ReferenceYear = 2020 }, nil, "reference year 2020"},
		{"no surface", func(in *TertiaireInput) { in.Site.SurfaceM2 = 0 }, nil, "surface"},
		{"no reference", func(in *TertiaireInput) { in.Reference = nil }, nil, "no reference consumption"},
		{"water", func(in *TertiaireInput) { in.Years[0].KWh[hv.Water] = 10 }, nil, `"water" is not an energy`},
		{"negative", func(in *TertiaireInput) { in.Years[0].KWh[hv.Electricity] = -1 }, nil, "-1 kWh"},
		{"NaN", func(in *TertiaireInput) { in.Reference[hv.Electricity] = math.NaN() }, nil, "NaN kWh"},
		{"duplicate year", func(in *TertiaireInput) { in.Years = append(in.Years, in.Years[0]) }, nil, "year 2024 given twice"},
		{"heating share above 1", func(in *TertiaireInput) { in.HeatingShare = map[hv.Fluid]float64{hv.Gas: 1.5} },
			nil, "heating share of gas 1.5"},
		{"gas in m³ without coefficient", func(in *TertiaireInput) { in.Years[0].GasM3 = 100 }, nil, "conversion coefficient 0"},
		{"gas in kWh and m³", func(in *TertiaireInput) {
			in.Years[0].KWh[hv.Gas] = 1000
			in.Years[0].GasM3, in.Years[0].GasKWhPerM3 = 100, 11
		}, nil, "both in kWh and in m³"},
		{"threshold off milestone", func(in *TertiaireInput) { in.Category = "c" }, AbsoluteTable{"c": {2035: 80}},
			"year 2035 is not a milestone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := valid()
			c.edit(&in)
			_, err := TertiaireTrajectory(in, c.table)
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), "ecole-laon-1") {
				t.Fatalf("error %v, want ErrInvalid naming the site and %q", err, c.want)
			}
		})
	}
}
