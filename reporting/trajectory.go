package reporting

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// The décret tertiaire dashboard: every building flagged tertiaire in an EPCI, its declared reference
// (references.go) and where its measured consumption stands on the trajectory (tertiaire.go) — each complete
// calendar year the rollups hold after the reference year, and the last twelve complete months, which is what
// a pilot steers by between two declarations.

// Status of a building on its trajectory.
const (
	StatusOnTrack     = "on_track"     // the latest period is at or below the linear target (or the absolute threshold)
	StatusAbove       = "above"        // above both
	StatusNoReference = "no_reference" // no reference declared in reporting.tertiaire_references
	StatusNoData      = "no_data"      // the meters do not cover a complete period yet
)

// StatusLabel is the French label of a status.
var StatusLabel = map[string]string{
	StatusOnTrack:     "sur la trajectoire",
	StatusAbove:       "au-dessus de la trajectoire",
	StatusNoReference: "référence non déclarée",
	StatusNoData:      "données insuffisantes",
}

// TertiaireRequest selects the buildings of a trajectory report.
type TertiaireRequest struct {
	EPCIs []string // SIREN codes; none: the whole département
	Site  string   // one building only; "" all
}

// TertiaireSite is one building of the report.
type TertiaireSite struct {
	Site          string  `json:"site"`
	Name          string  `json:"name"`
	Commune       string  `json:"commune"`
	EPCI          string  `json:"epci"`
	Usage         string  `json:"usage,omitempty"`
	SurfaceM2     float64 `json:"surface_m2"`
	ReferenceYear int     `json:"reference_year,omitempty"`
	Status        string  `json:"status"`
	// Trajectory holds the reference, the milestones and each complete calendar year measured; nil without
	// a reference.
	Trajectory *Trajectory `json:"trajectory,omitempty"`
	// Latest is the last twelve complete months placed on the trajectory as the year they end in;
	// LatestPeriod names them ("2025-11/2026-10").
	Latest       *TrajectoryYear `json:"latest,omitempty"`
	LatestPeriod string          `json:"latest_period,omitempty"`
}

// TertiaireSummary adds up the buildings that have a reference and a latest period.
type TertiaireSummary struct {
	Buildings      int     `json:"buildings"`
	WithReference  int     `json:"with_reference"`
	OnTrack        int     `json:"on_track"`
	ReferenceKWh   float64 `json:"reference_kwh"`
	LatestKWh      float64 `json:"latest_kwh"` // climate-adjusted where possible
	TargetKWh      float64 `json:"target_kwh"`
	ChangePct      float64 `json:"change_pct"`
	Target2030KWh  float64 `json:"target_2030_kwh"`
	Remaining2030  float64 `json:"remaining_2030_kwh"` // what is still to cut to reach −40 %
	LatestPeriod   string  `json:"latest_period,omitempty"`
	ReferenceYears []int   `json:"reference_years,omitempty"`
}

// TertiaireReport is the trajectory report of a set of buildings, sorted by EPCI then by the gap to the
// target, the furthest above first.
type TertiaireReport struct {
	Sites   []TertiaireSite  `json:"sites"`
	Summary TertiaireSummary `json:"summary"`
	Notes   []string         `json:"notes,omitempty"`
}

// referencesHolder lets the references be swapped (a reload) while reports run.
type referencesHolder struct{ p atomic.Pointer[References] }

// SetReferences sets the declared references the trajectory reports use (nil: none).
func (a *Analytics) SetReferences(refs References) { a.refs.p.Store(&refs) }

func (a *Analytics) references() References {
	if p := a.refs.p.Load(); p != nil {
		return *p
	}
	return nil
}

// Tertiaire reports the buildings subject to the décret tertiaire against their trajectories.
func (a *Analytics) Tertiaire(ctx context.Context, req TertiaireRequest) (*TertiaireReport, error) {
	ix := a.index()
	refs := a.references()
	var sites []hv.Site
	for _, s := range ix.sites {
		if s.Tertiaire && (len(req.EPCIs) == 0 || slices.Contains(req.EPCIs, s.EPCI)) && (req.Site == "" || s.ID == req.Site) {
			sites = append(sites, s)
		}
	}
	if req.Site != "" && len(sites) == 0 {
		return nil, fmt.Errorf("tertiaire: site %q: %w: not a building subject to the décret tertiaire", req.Site, hv.ErrInvalid)
	}
	rep := &TertiaireReport{Sites: []TertiaireSite{}}
	if len(refs) == 0 {
		rep.Notes = append(rep.Notes, "Aucune consommation de référence déclarée (reporting.tertiaire_references) : les trajectoires ne peuvent pas être calculées.")
	}

	// The periods: complete calendar years, and the last twelve complete months.
	now := a.now().In(a.loc)
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, a.loc)
	rolling := span(thisMonth.AddDate(-1, 0, 0), thisMonth, true)
	latestYear := thisMonth.AddDate(0, -1, 0).Year()
	rep.Summary.LatestPeriod = fmt.Sprintf("%s/%s", MonthOf(rolling.start, a.loc), MonthOf(thisMonth.AddDate(0, -1, 0), a.loc))
	firstYear := a.rollups.dayStart(a.rollups.since).Year()
	var years []period
	for y := firstYear; y < now.Year(); y++ {
		start := time.Date(y, 1, 1, 0, 0, 0, 0, a.loc)
		years = append(years, span(start, start.AddDate(1, 0, 0), true))
	}
	fluids := energyFluids
	sel := a.selectDevices(ix, scope{match: func(s hv.Site) bool {
		return s.Tertiaire && (len(req.EPCIs) == 0 || slices.Contains(req.EPCIs, s.EPCI))
	}}, fluids, "", hv.SiteBuilding, PerNone)
	d0 := rolling.d0
	if len(years) > 0 {
		d0 = min(d0, years[0].d0)
	}
	if err := a.ensureFresh(ctx, sel.metrics(), d0, rolling.d1); err != nil {
		return nil, fmt.Errorf("tertiaire: %w", err)
	}
	cl := a.newClimate(ctx)
	covered := a.coverage(ix, sel)

	type periodTotals struct {
		p      period
		totals map[string]map[hv.Fluid]float64
	}
	var done []periodTotals
	for _, p := range years {
		done = append(done, periodTotals{p, a.siteTotals(ix, sel, p)})
	}
	latest := a.siteTotals(ix, sel, rolling)
	refYears := map[int]bool{}
	for _, s := range sites {
		row := TertiaireSite{Site: s.ID, Name: s.Name, Commune: s.Commune, EPCI: s.EPCI, Usage: s.Usage, SurfaceM2: s.SurfaceM2,
			ReferenceYear: s.ReferenceYear}
		rep.Summary.Buildings++
		ref, ok := refs[s.ID]
		if !ok {
			row.Status = StatusNoReference
			rep.Sites = append(rep.Sites, row)
			continue
		}
		row.ReferenceYear = ref.Year
		rep.Summary.WithReference++
		refYears[ref.Year] = true
		in := TertiaireInput{Site: s, Category: OperatCategory(s.Usage), ReferenceYear: ref.Year, Reference: ref.KWh,
			ReferenceDJU: ref.DJU, HeatingShare: a.cfg.HeatingShare}
		station := ix.station[ix.site[s.ID]]
		djuOf := func(p period) (float64, error) {
			if ref.DJU == 0 || station == "" {
				return 0, nil
			}
			y, err := cl.yearDJU(station, p)
			if err != nil || y.days < y.want {
				return 0, err
			}
			return y.sum, nil
		}
		for _, pt := range done {
			if pt.p.start.Year() <= ref.Year || !covered(s.ID, pt.p) {
				continue
			}
			dju, err := djuOf(pt.p)
			if err != nil {
				return nil, fmt.Errorf("tertiaire: %w", err)
			}
			in.Years = append(in.Years, YearConsumption{Year: pt.p.start.Year(), KWh: pt.totals[s.ID], DJU: dju})
		}
		t, err := TertiaireTrajectory(in, nil)
		if err != nil {
			return nil, fmt.Errorf("tertiaire: %w", err)
		}
		row.Trajectory = &t
		row.Status = StatusNoData
		if covered(s.ID, rolling) {
			dju, err := djuOf(rolling)
			if err != nil {
				return nil, fmt.Errorf("tertiaire: %w", err)
			}
			ty, err := in.trajectoryYear(t, YearConsumption{Year: latestYear, KWh: latest[s.ID], DJU: dju})
			if err != nil {
				return nil, fmt.Errorf("tertiaire: site %q: %w", s.ID, err)
			}
			row.Latest, row.LatestPeriod = &ty, rep.Summary.LatestPeriod
			row.Status = StatusAbove
			if ty.Meets() {
				row.Status = StatusOnTrack
				rep.Summary.OnTrack++
			}
			rep.Summary.ReferenceKWh += t.ReferenceKWh
			rep.Summary.LatestKWh += ty.AdjustedKWh
			rep.Summary.TargetKWh += ty.TargetKWh
			rep.Summary.Target2030KWh += t.Targets[0].KWh
		}
		rep.Sites = append(rep.Sites, row)
	}
	if sm := &rep.Summary; sm.ReferenceKWh > 0 {
		sm.ChangePct = (sm.LatestKWh - sm.ReferenceKWh) / sm.ReferenceKWh * 100
		sm.Remaining2030 = max(0, sm.LatestKWh-sm.Target2030KWh)
	}
	for y := range refYears {
		rep.Summary.ReferenceYears = append(rep.Summary.ReferenceYears, y)
	}
	slices.Sort(rep.Summary.ReferenceYears)
	rep.Notes = append(rep.Notes, cl.notes...)
	rep.Notes = append(rep.Notes, "Ajustement climatique : part chauffage de l'année ramenée aux DJU de l'année de référence déclarés (sans DJU de référence, pas d'ajustement). Objectif intermédiaire linéaire entre l'année de référence et −40 % en 2030.")
	gap := func(s TertiaireSite) float64 {
		if s.Latest == nil {
			return -1e300 // without a latest period: last
		}
		return s.Latest.GapPct
	}
	slices.SortFunc(rep.Sites, func(x, y TertiaireSite) int {
		if c := strings.Compare(x.EPCI, y.EPCI); c != 0 {
			return c
		}
		if c := cmp.Compare(gap(y), gap(x)); c != 0 {
			return c
		}
		return strings.Compare(x.Site, y.Site)
	})
	return rep, nil
}

// coverage returns whether every selected meter of a site has rollups from the first day of a period: a
// meter whose data begins after it (history shorter than the period, or installed since) does not make a
// complete period. The rollups keep no trace of days that counted nothing, so this is the first day a meter
// counted something, and only the start is checked: the periods end before the current month, and a meter that
// stopped reporting is the rules engine's business (offline alerts), not a reason to hide a trajectory.
func (a *Analytics) coverage(ix *regIndex, sel selection) func(site string, p period) bool {
	const never = int32(math.MaxInt32)
	first := map[string][]int32{}
	r := a.rollups
	r.mu.RLock()
	for _, f := range sel.fluids {
		byDev := r.series[FluidMetric(f)]
		for _, di := range sel.devs[f] {
			d := ix.devices[di]
			day := never
			if s := byDev[d.ID]; s != nil && len(s.vals) > 0 {
				day = s.first
			}
			first[d.Site] = append(first[d.Site], day)
		}
	}
	r.mu.RUnlock()
	return func(site string, p period) bool {
		days := first[site]
		for _, d := range days {
			if d > p.d0 {
				return false
			}
		}
		return len(days) > 0
	}
}

// The trajectory CSV, for the pilots' spreadsheets (conventions of operat.go), one row per building:
//
//	identifiant_site, nom, commune_insee, epci, surface_m2
//	annee_reference, consommation_reference_kwh   declared reference (empty without one)
//	periode                                        the latest twelve complete months ("2025-02/2026-01")
//	consommation_kwh                               their consumption, kWh of final energy (gas kWh PCS)
//	consommation_ajustee_kwh, ajustement_climat    brought to the reference year's climate; oui/non
//	evolution_pct                                  adjusted consumption against the reference, % (−20: a 20 % cut)
//	objectif_pct, objectif_kwh                     the linear trajectory's cut and consumption for the period
//	ecart_kwh, ecart_pct                           adjusted consumption minus the objective (positive: above)
//	objectif_2030_kwh                              the −40 % milestone
//	statut                                         sur la trajectoire | au-dessus de la trajectoire |
//	                                               référence non déclarée | données insuffisantes
var tertiaireHeader = []string{
	"identifiant_site", "nom", "commune_insee", "epci", "surface_m2", "annee_reference", "consommation_reference_kwh",
	"periode", "consommation_kwh", "consommation_ajustee_kwh", "ajustement_climat", "evolution_pct", "objectif_pct",
	"objectif_kwh", "ecart_kwh", "ecart_pct", "objectif_2030_kwh", "statut",
}

// WriteTertiaire writes the report's buildings as the trajectory CSV.
func WriteTertiaire(w io.Writer, rep *TertiaireReport) error {
	records := [][]string{tertiaireHeader}
	for _, s := range rep.Sites {
		rec := make([]string, len(tertiaireHeader))
		copy(rec, []string{s.Site, s.Name, s.Commune, s.EPCI, trimmedDecimal(s.SurfaceM2, 1)})
		if s.ReferenceYear != 0 {
			rec[5] = strconv.Itoa(s.ReferenceYear)
		}
		if t := s.Trajectory; t != nil {
			rec[6] = kwhCell(t.ReferenceKWh)
			rec[16] = kwhCell(t.Targets[0].KWh)
		}
		if l := s.Latest; l != nil {
			adjusted := "non"
			if l.Adjusted {
				adjusted = "oui"
			}
			copy(rec[7:16], []string{s.LatestPeriod, kwhCell(l.KWh), kwhCell(l.AdjustedKWh), adjusted,
				trimmedDecimal(l.ChangePct, 1), trimmedDecimal(l.TargetPct, 1), kwhCell(l.TargetKWh), kwhCell(l.GapKWh),
				trimmedDecimal(l.GapPct, 1)})
		}
		rec[17] = StatusLabel[s.Status]
		records = append(records, rec)
	}
	return writeSpreadsheetCSV(w, records)
}
