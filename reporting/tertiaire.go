package reporting

import (
	"fmt"
	"maps"
	"math"
	"slices"

	hv "github.com/useda02/hyperviseur"
)

// The décret tertiaire: décret n° 2019-771 du 23 juillet 2019, codified at articles R174-22 to R174-32 of the
// Code de la construction et de l'habitation (CCH), applying art. L174-1 (loi ELAN, art. 175), with its
// method in the arrêté du 10 avril 2020 (NOR LOGL2005904A). Buildings, parts of buildings or sets of
// buildings with at least 1 000 m² of tertiary use must cut their final energy consumption, either
//   - relative to a reference year (a full year of operation, 2010 at the earliest; OPERAT offers 2010–2019):
//     −40 % in 2030, −50 % in 2040, −60 % in 2050; or
//   - down to an absolute value in kWh/m²/year set by arrêté for each activity category ("valeur absolue").
// Either objective meets the obligation. Consumption is declared yearly on ADEME's OPERAT platform, per
// building and energy, with the surface and activity category; the heating and cooling share is adjusted
// for the year's climate (degree days, DJU).
//
// This file computes a building's trajectory for steering (are we on the way?), from consumptions the
// caller supplies. Its climate adjustment is the simple heating-share ratio described at ClimateAdjusted,
// not the arrêté's exact method: OPERAT computes the declared, adjusted figures itself.

// Bounds of the reference year accepted here: art. L174-1 CCH sets 2010 as the earliest, OPERAT offers
// 2010–2019.
const (
	FirstReferenceYear = 2010
	LastReferenceYear  = 2019
)

// Milestone is a deadline of the relative objective: consumption at most (100 − ReductionPct) % of the
// reference.
type Milestone struct {
	Year         int
	ReductionPct float64
}

// Milestones returns the three deadlines of art. L174-1 CCH: −40 % in 2030, −50 % in 2040, −60 % in 2050.
func Milestones() []Milestone {
	return []Milestone{{2030, 40}, {2040, 50}, {2050, 60}}
}

// DefaultElectricHeatingShare is the share of an electrically heated site's electricity taken as heating
// when the caller gives none. It is an assumption of this package (heating is roughly half of an all-electric
// public building's consumption), not a regulatory value: give HeatingShare from a sub-meter or a degree-day
// fit when one exists.
const DefaultElectricHeatingShare = 0.5

// DefaultHeatingShare is the share of an energy's consumption that heats the building, the part the climate
// adjustment scales: gas and district heat are taken as all heating (hot water and cooking are folded in),
// electricity as none unless the site is electrically heated.
func DefaultHeatingShare(f hv.Fluid, electricHeating bool) float64 {
	switch f {
	case hv.Gas, hv.Heat:
		return 1
	case hv.Electricity:
		if electricHeating {
			return DefaultElectricHeatingShare
		}
	}
	return 0
}

// ClimateAdjusted brings kWh consumed in a year of dju degree days to the climate of a year of refDJU degree
// days: the heating share scales with the ratio of degree days, the rest is kept,
//
//	adjusted = kWh × ((1 − share) + share × refDJU / dju).
//
// Without both degree days (either ≤ 0) the consumption is returned unadjusted and ok is false.
func ClimateAdjusted(kwh, share, dju, refDJU float64) (adjusted float64, ok bool) {
	if dju <= 0 || refDJU <= 0 {
		return kwh, false
	}
	return kwh * ((1 - share) + share*refDJU/dju), true
}

// GasKWh converts a gas volume as counted by the meter (m³) to kWh PCS (higher heating value), the unit of
// gas invoices and of OPERAT. kwhPerM3 is the conversion coefficient printed on the invoice for the period:
// the gas's PCS times the pressure and temperature correction of the delivery point, ≈ 10–12 kWh/m³ for
// natural gas; it varies by month and network, hence an input.
func GasKWh(m3, kwhPerM3 float64) (float64, error) {
	if !finiteNonNegative(m3) {
		return 0, fmt.Errorf("gas kwh: %w: volume %v m³", hv.ErrInvalid, m3)
	}
	if !(kwhPerM3 > 0) || math.IsInf(kwhPerM3, 0) {
		return 0, fmt.Errorf("gas kwh: %w: conversion coefficient %v kWh/m³, want > 0", hv.ErrInvalid, kwhPerM3)
	}
	return m3 * kwhPerM3, nil
}

// AbsoluteThresholds maps a milestone year (2030, 2040, 2050) to the absolute value in kWh/m²/year of one
// activity category. The values are set by arrêté per category (and modulated for climate, altitude and
// intensity of use): they are configuration, none is built in.
type AbsoluteThresholds map[int]float64

// AbsoluteTable maps an activity category, as the caller names it (OPERAT's nomenclature), to its
// thresholds.
type AbsoluteTable map[string]AbsoluteThresholds

// Validate checks that every threshold is at a milestone year and positive.
func (t AbsoluteTable) Validate() error {
	for cat, th := range t {
		for y, v := range th {
			if !slices.ContainsFunc(Milestones(), func(m Milestone) bool { return m.Year == y }) {
				return fmt.Errorf("absolute thresholds of %q: %w: year %d is not a milestone (2030, 2040, 2050)",
					cat, hv.ErrInvalid, y)
			}
			if !(v > 0) || math.IsInf(v, 0) {
				return fmt.Errorf("absolute thresholds of %q: %w: %d: %v kWh/m², want > 0", cat, hv.ErrInvalid, y, v)
			}
		}
	}
	return nil
}

// inForce returns the threshold that applies to a year: the first configured milestone at or after it, or
// the last configured one past them all (the obligation reached does not lapse).
func (th AbsoluteThresholds) inForce(year int) (float64, bool) {
	years := slices.Sorted(maps.Keys(th))
	if len(years) == 0 {
		return 0, false
	}
	for _, y := range years {
		if y >= year {
			return th[y], true
		}
	}
	return th[years[len(years)-1]], true
}

// YearConsumption is a building's final energy consumption over one calendar year.
type YearConsumption struct {
	Year int
	// KWh per energy: electricity, gas (kWh PCS) and heat (district heating). Water is not an energy.
	KWh map[hv.Fluid]float64
	// GasM3 is the year's gas volume as the meter counts it, converted with GasKWhPerM3 (see GasKWh); when
	// set, KWh holds no gas.
	GasM3       float64
	GasKWhPerM3 float64
	// DJU is the year's heating degree days at the site's weather station (0: unknown, no adjustment).
	DJU float64
}

// energies returns the year's kWh per energy, gas converted from m³ when given.
func (y YearConsumption) energies() (map[hv.Fluid]float64, error) {
	out := make(map[hv.Fluid]float64, len(y.KWh)+1)
	for f, v := range y.KWh {
		if err := checkEnergy(f, v); err != nil {
			return nil, err
		}
		out[f] = v
	}
	if y.GasM3 != 0 || y.GasKWhPerM3 != 0 {
		if _, ok := y.KWh[hv.Gas]; ok {
			return nil, fmt.Errorf("%w: gas given both in kWh and in m³", hv.ErrInvalid)
		}
		kwh, err := GasKWh(y.GasM3, y.GasKWhPerM3)
		if err != nil {
			return nil, err
		}
		out[hv.Gas] = kwh
	}
	return out, nil
}

// TertiaireInput is what the trajectory of one building is computed from.
type TertiaireInput struct {
	Site hv.Site
	// Category is the building's activity category (OPERAT's nomenclature): it selects the absolute
	// thresholds.
	Category string
	// SurfaceM2 is the tertiary surface declared (0: Site.SurfaceM2).
	SurfaceM2 float64
	// ReferenceYear (0: Site.ReferenceYear), its consumption per energy in kWh of final energy, and its
	// degree days (0: no climate adjustment).
	ReferenceYear int
	Reference     map[hv.Fluid]float64
	ReferenceDJU  float64
	Years         []YearConsumption
	// ElectricHeating flags a site heated by electricity (see DefaultHeatingShare); HeatingShare overrides
	// the default share of any energy, from 0 to 1.
	ElectricHeating bool
	HeatingShare    map[hv.Fluid]float64
}

// heatingShare returns the share of f's consumption that the climate adjustment scales.
func (in TertiaireInput) heatingShare(f hv.Fluid) float64 {
	if s, ok := in.HeatingShare[f]; ok {
		return s
	}
	return DefaultHeatingShare(f, in.ElectricHeating)
}

// Target is a milestone of a building: its relative target, and the absolute threshold when one is
// configured for its category.
type Target struct {
	Year          int     `json:"year"`
	ReductionPct  float64 `json:"reduction_pct"`
	KWh           float64 `json:"kwh"`
	KWhM2         float64 `json:"kwh_m2"`
	AbsoluteKWhM2 float64 `json:"absolute_kwh_m2,omitempty"` // 0: no threshold configured
}

// EnergyYear is one energy's consumption in one year.
type EnergyYear struct {
	Fluid        hv.Fluid `json:"fluid"`
	KWh          float64  `json:"kwh"`
	HeatingShare float64  `json:"heating_share"`
	AdjustedKWh  float64  `json:"adjusted_kwh"` // KWh when the year is not adjusted
}

// TrajectoryYear is one year of a building against its trajectory. Comparisons use the climate-adjusted
// consumption, which is the actual one when the degree days are missing (Adjusted false).
type TrajectoryYear struct {
	Year        int     `json:"year"`
	KWh         float64 `json:"kwh"`
	AdjustedKWh float64 `json:"adjusted_kwh"`
	Adjusted    bool    `json:"adjusted"`
	KWhM2       float64 `json:"kwh_m2"` // adjusted
	// ChangePct is the adjusted consumption against the reference: −20 is a 20 % cut.
	ChangePct float64 `json:"change_pct"`
	// The linear trajectory's target for the year (see LinearTargetPct), and the gap to it: positive is
	// above the target, GapPct relative to the target.
	TargetPct float64 `json:"target_pct"`
	TargetKWh float64 `json:"target_kwh"`
	GapKWh    float64 `json:"gap_kwh"`
	GapPct    float64 `json:"gap_pct"`
	OnTrack   bool    `json:"on_track"` // GapKWh ≤ 0
	// The absolute threshold in force (the next configured milestone's), the gap to it, and whether it is
	// met; all zero without a threshold for the category.
	AbsoluteKWhM2    float64      `json:"absolute_kwh_m2,omitempty"`
	AbsoluteGapKWhM2 float64      `json:"absolute_gap_kwh_m2,omitempty"`
	AbsoluteMet      bool         `json:"absolute_met,omitempty"`
	Energies         []EnergyYear `json:"energies"`
}

// Meets reports whether the year is on the relative trajectory or under the absolute threshold: either
// objective fulfils the obligation.
func (y TrajectoryYear) Meets() bool { return y.OnTrack || y.AbsoluteMet }

// Trajectory is a building's path from its reference year to the 2050 milestone.
type Trajectory struct {
	Site           hv.Site  `json:"site"`
	Category       string   `json:"category,omitempty"`
	SurfaceM2      float64  `json:"surface_m2"`
	ReferenceYear  int      `json:"reference_year"`
	ReferenceKWh   float64  `json:"reference_kwh"`
	ReferenceKWhM2 float64  `json:"reference_kwh_m2"`
	ReferenceDJU   float64  `json:"reference_dju,omitempty"`
	Targets        []Target `json:"targets"`
	// Absolute holds the category's configured thresholds; nil when none.
	Absolute AbsoluteThresholds `json:"absolute,omitempty"`
	Years    []TrajectoryYear   `json:"years"` // ascending
}

// LinearTargetPct is the reduction (in %) expected in year from a building whose reference year is refYear.
// The décret only fixes the milestones; in between, the target is a choice of this package: a straight line
// from 0 % in the reference year to −40 % in 2030, then from milestone to milestone, and −60 % past 2050.
// Years up to the reference year have no reduction to make.
func LinearTargetPct(refYear, year int) float64 {
	prevYear, prevPct := refYear, 0.0
	if year <= prevYear {
		return 0
	}
	for _, m := range Milestones() {
		if year <= m.Year {
			return prevPct + (m.ReductionPct-prevPct)*float64(year-prevYear)/float64(m.Year-prevYear)
		}
		prevYear, prevPct = m.Year, m.ReductionPct
	}
	return prevPct
}

// TertiaireTrajectory computes the trajectory of a building; abs (may be nil) holds the absolute thresholds
// per category. Errors wrap hv.ErrInvalid and name the site.
func TertiaireTrajectory(in TertiaireInput, abs AbsoluteTable) (Trajectory, error) {
	t, err := tertiaireTrajectory(in, abs)
	if err != nil {
		return Trajectory{}, fmt.Errorf("tertiaire trajectory of site %q: %w", in.Site.ID, err)
	}
	return t, nil
}

func tertiaireTrajectory(in TertiaireInput, abs AbsoluteTable) (Trajectory, error) {
	t := Trajectory{Site: in.Site, Category: in.Category, SurfaceM2: in.SurfaceM2, ReferenceYear: in.ReferenceYear,
		ReferenceDJU: in.ReferenceDJU}
	if t.SurfaceM2 == 0 {
		t.SurfaceM2 = in.Site.SurfaceM2
	}
	if t.ReferenceYear == 0 {
		t.ReferenceYear = in.Site.ReferenceYear
	}
	if !(t.SurfaceM2 > 0) || math.IsInf(t.SurfaceM2, 0) {
		return t, fmt.Errorf("%w: surface %v m², want > 0", hv.ErrInvalid, t.SurfaceM2)
	}
	if t.ReferenceYear < FirstReferenceYear || t.ReferenceYear > LastReferenceYear {
		return t, fmt.Errorf("%w: reference year %d, want %d–%d", hv.ErrInvalid, t.ReferenceYear,
			FirstReferenceYear, LastReferenceYear)
	}
	if !finiteNonNegative(in.ReferenceDJU) {
		return t, fmt.Errorf("%w: reference DJU %v", hv.ErrInvalid, in.ReferenceDJU)
	}
	for f, s := range in.HeatingShare {
		if err := checkEnergy(f, 0); err != nil {
			return t, fmt.Errorf("heating share: %w", err)
		}
		if !(s >= 0 && s <= 1) {
			return t, fmt.Errorf("%w: heating share of %s %v, want 0–1", hv.ErrInvalid, f, s)
		}
	}
	for f, v := range in.Reference {
		if err := checkEnergy(f, v); err != nil {
			return t, fmt.Errorf("reference: %w", err)
		}
		t.ReferenceKWh += v
	}
	if !(t.ReferenceKWh > 0) {
		return t, fmt.Errorf("%w: no reference consumption", hv.ErrInvalid)
	}
	t.ReferenceKWhM2 = t.ReferenceKWh / t.SurfaceM2

	if th, ok := abs[in.Category]; ok && len(th) > 0 {
		if err := (AbsoluteTable{in.Category: th}).Validate(); err != nil {
			return t, err
		}
		t.Absolute = maps.Clone(th)
	}
	for _, m := range Milestones() {
		kwh := t.ReferenceKWh * (1 - m.ReductionPct/100)
		t.Targets = append(t.Targets, Target{Year: m.Year, ReductionPct: m.ReductionPct, KWh: kwh,
			KWhM2: kwh / t.SurfaceM2, AbsoluteKWhM2: t.Absolute[m.Year]})
	}

	years := slices.Clone(in.Years)
	slices.SortFunc(years, func(a, b YearConsumption) int { return a.Year - b.Year })
	for i, y := range years {
		if i > 0 && years[i-1].Year == y.Year {
			return t, fmt.Errorf("%w: year %d given twice", hv.ErrInvalid, y.Year)
		}
		ty, err := in.trajectoryYear(t, y)
		if err != nil {
			return t, fmt.Errorf("year %d: %w", y.Year, err)
		}
		t.Years = append(t.Years, ty)
	}
	return t, nil
}

// trajectoryYear places one year of consumption on the trajectory t.
func (in TertiaireInput) trajectoryYear(t Trajectory, y YearConsumption) (TrajectoryYear, error) {
	if !finiteNonNegative(y.DJU) {
		return TrajectoryYear{}, fmt.Errorf("%w: DJU %v", hv.ErrInvalid, y.DJU)
	}
	kwh, err := y.energies()
	if err != nil {
		return TrajectoryYear{}, err
	}
	ty := TrajectoryYear{Year: y.Year, Adjusted: y.DJU > 0 && in.ReferenceDJU > 0}
	for _, f := range energyOrder(kwh) {
		e := EnergyYear{Fluid: f, KWh: kwh[f], HeatingShare: in.heatingShare(f)}
		e.AdjustedKWh, _ = ClimateAdjusted(e.KWh, e.HeatingShare, y.DJU, in.ReferenceDJU)
		ty.Energies = append(ty.Energies, e)
		ty.KWh += e.KWh
		ty.AdjustedKWh += e.AdjustedKWh
	}
	ty.KWhM2 = ty.AdjustedKWh / t.SurfaceM2
	ty.ChangePct = (ty.AdjustedKWh - t.ReferenceKWh) / t.ReferenceKWh * 100
	ty.TargetPct = LinearTargetPct(t.ReferenceYear, y.Year)
	ty.TargetKWh = t.ReferenceKWh * (1 - ty.TargetPct/100)
	ty.GapKWh = ty.AdjustedKWh - ty.TargetKWh
	ty.GapPct = ty.GapKWh / ty.TargetKWh * 100
	ty.OnTrack = ty.GapKWh <= 0
	if th, ok := t.Absolute.inForce(y.Year); ok {
		ty.AbsoluteKWhM2 = th
		ty.AbsoluteGapKWhM2 = ty.KWhM2 - th
		ty.AbsoluteMet = ty.AbsoluteGapKWhM2 <= 0
	}
	return ty, nil
}

// energyFluids are the energies of the décret tertiaire this package knows, in the order reports list them.
var energyFluids = []hv.Fluid{hv.Electricity, hv.Gas, hv.Heat}

// checkEnergy rejects what is not a known energy or not a finite, non-negative quantity.
func checkEnergy(f hv.Fluid, v float64) error {
	if !slices.Contains(energyFluids, f) {
		return fmt.Errorf("%w: fluid %q is not an energy of the décret tertiaire (want electricity, gas or heat)",
			hv.ErrInvalid, f)
	}
	if !finiteNonNegative(v) {
		return fmt.Errorf("%w: %s: %v kWh", hv.ErrInvalid, f, v)
	}
	return nil
}

// energyOrder lists the energies present in the maps, in energyFluids' order.
func energyOrder(ms ...map[hv.Fluid]float64) []hv.Fluid {
	var out []hv.Fluid
	for _, f := range energyFluids {
		for _, m := range ms {
			if _, ok := m[f]; ok {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// finiteNonNegative reports whether v is a usable quantity: not NaN, not infinite, not negative.
func finiteNonNegative(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }
