package reporting

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // months are cut in Europe/Paris, which must resolve in a container without zoneinfo

	hv "github.com/useda02/hyperviseur"
)

// The décret BACS: décret n° 2020-887 du 20 juillet 2020, amended by décret n° 2023-259 du 7 avril 2023,
// codified at articles R175-1 to R175-5-1 CCH. Non-residential buildings whose heating or cooling systems
// exceed 290 kW (70 kW since the 2023 amendment, with its own deadlines) need a building automation and
// control system that:
//   - monitors, logs and analyses energy consumption hourly, per functional zone;
//   - keeps the data at a monthly step for five years;
//   - compares consumption with reference values;
//   - detects losses of efficiency of the technical systems and tells the operator.
//
// The hypervisor logs hourly consumption in its store; this file does the rest for zones the caller lists
// (a functional zone is a site or one of its sub-meters): monthly totals, comparison with a reference month,
// a loss-of-efficiency finding when consumption, climate adjusted, stays above the reference by more than
// ThresholdPct for Months consecutive months, and the manager's CSV.
//
// Keeping five years of monthly data (for the caller configuring the store), either:
//   - keep the monthly totals themselves (MonthlyKWh's output, a few hundred bytes a zone a year) in SQLite
//     for BACSMonthsKept months and pass them back as BACSZone.Months; raw readings keep the default
//     storage.retention (400 days), enough to compute the month in progress and the last complete ones; or
//   - recompute from raw readings, which then must outlive the oldest month kept: storage.retention of at
//     least BACSRetention, i.e. "storage.retention: 44640h" (1 860 days; the setting is a Go duration, which
//     has no day unit). The store then holds about 4.6 times the default's data.

// BACSMonthsKept is how many complete months of monthly data the décret BACS has kept: five years.
const BACSMonthsKept = 60

// BACSRetention is the raw-reading retention that lets the oldest kept month be recomputed: the 60 complete
// months before the current one start at most 60 months (1 827 days, two leap days) + 31 days ago; 1 860 days
// leaves a margin.
const BACSRetention = 1860 * 24 * time.Hour

// Defaults of BACSOptions.
const (
	DefaultBACSThresholdPct = 10.0
	DefaultBACSMonths       = 2
	DefaultBACSMinCoverage  = 0.9
)

// bacsLocation is the default zone of the months: Europe/Paris, embedded by time/tzdata.
var bacsLocation = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		// Cannot happen with time/tzdata embedded; months cut in UTC would be silently wrong.
		panic("reporting: load Europe/Paris: " + err.Error())
	}
	return loc
})

// YearMonth is a calendar month.
type YearMonth struct {
	Year  int
	Month time.Month
}

// MonthOf is the month of t in loc.
func MonthOf(t time.Time, loc *time.Location) YearMonth {
	y, m, _ := t.In(loc).Date()
	return YearMonth{y, m}
}

func (m YearMonth) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// MarshalText renders the month as YYYY-MM, in JSON values and map keys alike.
func (m YearMonth) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses YYYY-MM.
func (m *YearMonth) UnmarshalText(b []byte) error {
	t, err := time.Parse("2006-01", string(b))
	if err != nil {
		return fmt.Errorf("month %q: %w: want YYYY-MM", b, hv.ErrInvalid)
	}
	*m = YearMonth{t.Year(), t.Month()}
	return nil
}

// Next is the month after m.
func (m YearMonth) Next() YearMonth {
	if m.Month == time.December {
		return YearMonth{m.Year + 1, time.January}
	}
	return YearMonth{m.Year, m.Month + 1}
}

// AddMonths is the month n months after m (before it when n is negative).
func (m YearMonth) AddMonths(n int) YearMonth {
	i := m.Year*12 + int(m.Month) - 1 + n
	return YearMonth{i / 12, time.Month(i%12 + 1)}
}

// Start is the month's first instant in loc.
func (m YearMonth) Start(loc *time.Location) time.Time {
	return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
}

// Before reports whether m comes before o.
func (m YearMonth) Before(o YearMonth) bool { return m.compare(o) < 0 }

// Hours is the month's length in loc, in hours: 743 or 745 for the months clocks change in.
func (m YearMonth) Hours(loc *time.Location) int {
	start := time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
	return int(start.AddDate(0, 1, 0).Sub(start) / time.Hour)
}

func (m YearMonth) compare(o YearMonth) int {
	return cmp.Or(cmp.Compare(m.Year, o.Year), cmp.Compare(m.Month, o.Month))
}

// HourlyKWh is the consumption of one hour, as the store's hourly sums of energy_kwh_delta give it
// (gas converted to kWh by the caller). Time is in the hour.
type HourlyKWh struct {
	Time time.Time
	KWh  float64
}

// MonthKWh is a month's total consumption and the number of distinct hours it was measured in.
type MonthKWh struct {
	Month YearMonth `json:"month"`
	KWh   float64   `json:"kwh"`
	Hours int       `json:"hours"`
}

// MonthlyKWh sums hourly consumption by calendar month in loc (nil: Europe/Paris), counting the distinct
// hours with a value; the months come out ascending.
func MonthlyKWh(hourly []HourlyKWh, loc *time.Location) ([]MonthKWh, error) {
	if loc == nil {
		loc = bacsLocation()
	}
	type acc struct {
		kwh   float64
		hours map[int64]struct{}
	}
	months := map[YearMonth]*acc{}
	for _, h := range hourly {
		if h.Time.IsZero() || !finiteNonNegative(h.KWh) {
			return nil, fmt.Errorf("monthly kwh: %w: %v kWh at %v", hv.ErrInvalid, h.KWh, h.Time)
		}
		m := MonthOf(h.Time, loc)
		a := months[m]
		if a == nil {
			a = &acc{hours: map[int64]struct{}{}}
			months[m] = a
		}
		a.kwh += h.KWh
		a.hours[h.Time.Truncate(time.Hour).Unix()] = struct{}{}
	}
	out := make([]MonthKWh, 0, len(months))
	for m, a := range months {
		out = append(out, MonthKWh{Month: m, KWh: a.kwh, Hours: len(a.hours)})
	}
	slices.SortFunc(out, func(a, b MonthKWh) int { return a.Month.compare(b.Month) })
	return out, nil
}

// BACSZone is one functional zone and what it is compared with.
type BACSZone struct {
	ID    string // unique among the zones analysed
	Site  string
	Fluid hv.Fluid // electricity, gas or heat
	// Hourly consumption, and months kept from earlier (MonthlyKWh's output, see BACSMonthsKept); a month
	// may come from either, not both.
	Hourly []HourlyKWh
	Months []MonthKWh
	// DJU holds the heating degree days of each month at the zone's weather station; a month missing is
	// unknown (0 is a summer month's real value).
	DJU map[YearMonth]float64
	// KWhPerDJU is the zone's heating slope, the kWh one more degree day costs (a degree-day fit's m in
	// E = c + m·DJU); 0: no climate adjustment. A month is adjusted additively,
	//	adjusted = kWh + KWhPerDJU × (referenceDJU − DJU),
	// rather than by a ratio of degree days, which would blow up in mid-season months of a few DJU.
	KWhPerDJU float64
	// Reference is a configured reference value per calendar month (kWh) and ReferenceDJU its degree days;
	// nil: the zone's own month of BACSOptions.ReferenceYear.
	Reference    map[time.Month]float64
	ReferenceDJU map[time.Month]float64
}

// BACSOptions tune the analysis; zero values take the defaults.
type BACSOptions struct {
	Location *time.Location // months are cut in this zone; nil: Europe/Paris
	// ReferenceYear: zones without a configured Reference compare each month with the same month of this
	// year in their own data (its months are marked MonthReference). 0: such zones have no reference.
	ReferenceYear int
	// PreviousYear: zones without a configured Reference compare each month with the same month one year
	// earlier in their own data (a rolling reference: what the service does). Exclusive with ReferenceYear.
	PreviousYear bool
	ThresholdPct float64 // a month is over when above its reference by more than this; default 10
	Months       int     // consecutive months over that make a finding; default 2
	// MinCoverage is the share of a month's hours that must have a value for the month to be compared;
	// default 0.9. A meter reporting less often than hourly (a daily gas index) fills few hours and its
	// months show incomplete: it does not log hourly as the décret requires.
	MinCoverage float64
}

// withDefaults fills the zero values.
func (o BACSOptions) withDefaults() BACSOptions {
	if o.Location == nil {
		o.Location = bacsLocation()
	}
	if o.ThresholdPct == 0 {
		o.ThresholdPct = DefaultBACSThresholdPct
	}
	if o.Months == 0 {
		o.Months = DefaultBACSMonths
	}
	if o.MinCoverage == 0 {
		o.MinCoverage = DefaultBACSMinCoverage
	}
	return o
}

// Validate checks the options once defaults are applied, naming the bad one.
func (o BACSOptions) Validate() error {
	o = o.withDefaults()
	switch {
	case !(o.ThresholdPct > 0) || math.IsInf(o.ThresholdPct, 0):
		return fmt.Errorf("bacs options: threshold_pct: %w: %v, want > 0", hv.ErrInvalid, o.ThresholdPct)
	case o.Months < 1:
		return fmt.Errorf("bacs options: months: %w: %d, want ≥ 1", hv.ErrInvalid, o.Months)
	case !(o.MinCoverage > 0 && o.MinCoverage <= 1):
		return fmt.Errorf("bacs options: min_coverage: %w: %v, want in (0, 1]", hv.ErrInvalid, o.MinCoverage)
	case o.ReferenceYear < 0:
		return fmt.Errorf("bacs options: reference_year: %w: %d", hv.ErrInvalid, o.ReferenceYear)
	case o.ReferenceYear > 0 && o.PreviousYear:
		return fmt.Errorf("bacs options: reference_year: %w: a fixed reference year and the previous year both asked",
			hv.ErrInvalid)
	}
	return nil
}

// MonthStatus says how a zone's month compares with its reference; the values are the CSV's labels.
type MonthStatus string

// Month statuses.
const (
	MonthOK          MonthStatus = "conforme"       // compared, within the threshold
	MonthOver        MonthStatus = "depassement"    // compared, above the reference by more than the threshold
	MonthIncomplete  MonthStatus = "incomplet"      // too few hours measured to compare
	MonthNoReference MonthStatus = "sans_reference" // no reference value for the month
	MonthReference   MonthStatus = "reference"      // a month of the reference year
)

// ZoneMonth is one month of one zone against its reference.
type ZoneMonth struct {
	Zone  string    `json:"zone"`
	Site  string    `json:"site"`
	Fluid hv.Fluid  `json:"fluid"`
	Month YearMonth `json:"month"`
	KWh   float64   `json:"kwh"`
	// Hours measured of ExpectedHours in the month.
	Hours         int     `json:"hours"`
	ExpectedHours int     `json:"expected_hours"`
	DJU           float64 `json:"dju"`
	HasDJU        bool    `json:"has_dju"`
	// AdjustedKWh is KWh brought to the reference's climate; KWh when not Adjusted.
	AdjustedKWh     float64 `json:"adjusted_kwh"`
	Adjusted        bool    `json:"adjusted"`
	ReferenceKWh    float64 `json:"reference_kwh"`
	ReferenceDJU    float64 `json:"reference_dju"`
	HasReference    bool    `json:"has_reference"`
	HasReferenceDJU bool    `json:"has_reference_dju"`
	// ExcessPct is AdjustedKWh against ReferenceKWh, in % (positive: above); set for MonthOK and MonthOver.
	ExcessPct float64     `json:"excess_pct"`
	Status    MonthStatus `json:"status"`
	Loss      bool        `json:"loss"` // part of a BACSFinding
}

// Coverage is the share of the month's hours measured.
func (m ZoneMonth) Coverage() float64 {
	if m.ExpectedHours == 0 {
		return 0
	}
	return float64(m.Hours) / float64(m.ExpectedHours)
}

// BACSFinding is a presumed loss of efficiency: a run of consecutive months over the reference.
type BACSFinding struct {
	Zone  string    `json:"zone"`
	Site  string    `json:"site"`
	Fluid hv.Fluid  `json:"fluid"`
	From  YearMonth `json:"from"`
	To    YearMonth `json:"to"`
	// Evidence is the run's months; ExcessKWh their adjusted consumption above the reference, summed.
	Evidence     []ZoneMonth `json:"evidence"`
	ExcessKWh    float64     `json:"excess_kwh"`
	MaxExcessPct float64     `json:"max_excess_pct"`
	Message      string      `json:"message"` // for the operator, in French
}

// BACSReport is the monthly comparison of zones and the losses it found; months sorted by zone then month,
// findings by zone then start.
type BACSReport struct {
	Months   []ZoneMonth   `json:"months"`
	Findings []BACSFinding `json:"findings"`
}

// AnalyzeBACS aggregates each zone's consumption by month, compares every month with its reference after
// climate adjustment, and reports as a finding every run of at least opts.Months consecutive months above the
// reference by more than opts.ThresholdPct. A month not compared (incomplete, without reference, of the
// reference year, or missing) breaks a run.
func AnalyzeBACS(zones []BACSZone, opts BACSOptions) (BACSReport, error) {
	if err := opts.Validate(); err != nil {
		return BACSReport{}, fmt.Errorf("analyze bacs: %w", err)
	}
	opts = opts.withDefaults()
	var r BACSReport
	seen := make(map[string]bool, len(zones))
	for _, z := range zones {
		if z.ID == "" {
			return BACSReport{}, fmt.Errorf("analyze bacs: %w: a zone without id", hv.ErrInvalid)
		}
		if seen[z.ID] {
			return BACSReport{}, fmt.Errorf("analyze bacs: zone %q: %w: given twice", z.ID, hv.ErrInvalid)
		}
		seen[z.ID] = true
		months, err := z.compare(opts)
		if err != nil {
			return BACSReport{}, fmt.Errorf("analyze bacs: zone %q: %w", z.ID, err)
		}
		r.Findings = append(r.Findings, findLosses(months, opts)...)
		r.Months = append(r.Months, months...)
	}
	slices.SortStableFunc(r.Months, func(a, b ZoneMonth) int {
		return cmp.Or(strings.Compare(a.Zone, b.Zone), a.Month.compare(b.Month))
	})
	slices.SortStableFunc(r.Findings, func(a, b BACSFinding) int {
		return cmp.Or(strings.Compare(a.Zone, b.Zone), a.From.compare(b.From))
	})
	return r, nil
}

// monthly merges the zone's kept months with those of its hourly consumption.
func (z BACSZone) monthly(loc *time.Location) ([]MonthKWh, error) {
	if err := checkEnergy(z.Fluid, 0); err != nil {
		return nil, err
	}
	if !finiteNonNegative(z.KWhPerDJU) {
		return nil, fmt.Errorf("%w: kwh_per_dju %v", hv.ErrInvalid, z.KWhPerDJU)
	}
	for m, v := range z.Reference {
		if !finiteNonNegative(v) {
			return nil, fmt.Errorf("%w: reference of %s: %v kWh", hv.ErrInvalid, m, v)
		}
	}
	for m, v := range z.ReferenceDJU {
		if !finiteNonNegative(v) {
			return nil, fmt.Errorf("%w: reference DJU of %s: %v", hv.ErrInvalid, m, v)
		}
	}
	for m, v := range z.DJU {
		if !finiteNonNegative(v) {
			return nil, fmt.Errorf("%w: DJU of %s: %v", hv.ErrInvalid, m, v)
		}
	}
	months, err := MonthlyKWh(z.Hourly, loc)
	if err != nil {
		return nil, err
	}
	for _, k := range z.Months {
		if !finiteNonNegative(k.KWh) || k.Hours < 0 || k.Hours > k.Month.Hours(loc) {
			return nil, fmt.Errorf("%w: month %s: %v kWh over %d hours", hv.ErrInvalid, k.Month, k.KWh, k.Hours)
		}
		if slices.ContainsFunc(months, func(m MonthKWh) bool { return m.Month == k.Month }) {
			return nil, fmt.Errorf("%w: month %s given twice (kept and hourly)", hv.ErrInvalid, k.Month)
		}
		months = append(months, k)
	}
	slices.SortFunc(months, func(a, b MonthKWh) int { return a.Month.compare(b.Month) })
	return months, nil
}

// compare builds the zone's months with their reference and status.
func (z BACSZone) compare(opts BACSOptions) ([]ZoneMonth, error) {
	months, err := z.monthly(opts.Location)
	if err != nil {
		return nil, err
	}
	ownReference := z.Reference == nil && (opts.ReferenceYear > 0 || opts.PreviousYear)
	byMonth := make(map[YearMonth]MonthKWh, len(months))
	for _, m := range months {
		byMonth[m.Month] = m
	}
	out := make([]ZoneMonth, 0, len(months))
	for _, k := range months {
		zm := ZoneMonth{Zone: z.ID, Site: z.Site, Fluid: z.Fluid, Month: k.Month, KWh: k.KWh, Hours: k.Hours,
			ExpectedHours: k.Month.Hours(opts.Location), AdjustedKWh: k.KWh}
		zm.DJU, zm.HasDJU = z.DJU[k.Month]
		complete := zm.Coverage() >= opts.MinCoverage
		switch {
		case ownReference:
			ref := YearMonth{opts.ReferenceYear, k.Month.Month}
			if opts.PreviousYear {
				ref.Year = k.Month.Year - 1
			}
			rm, ok := byMonth[ref]
			if ok && float64(rm.Hours) >= opts.MinCoverage*float64(ref.Hours(opts.Location)) {
				zm.ReferenceKWh, zm.HasReference = rm.KWh, true
			}
			zm.ReferenceDJU, zm.HasReferenceDJU = z.DJU[ref]
		default:
			zm.ReferenceKWh, zm.HasReference = z.Reference[k.Month.Month]
			zm.ReferenceDJU, zm.HasReferenceDJU = z.ReferenceDJU[k.Month.Month]
		}
		if z.KWhPerDJU > 0 && zm.HasDJU && zm.HasReferenceDJU {
			zm.AdjustedKWh = math.Max(0, k.KWh+z.KWhPerDJU*(zm.ReferenceDJU-zm.DJU))
			zm.Adjusted = true
		}
		switch {
		case ownReference && !opts.PreviousYear && k.Month.Year == opts.ReferenceYear:
			zm.Status = MonthReference
		case !complete:
			zm.Status = MonthIncomplete
		case !zm.HasReference || !(zm.ReferenceKWh > 0):
			zm.Status = MonthNoReference
		default:
			zm.ExcessPct = (zm.AdjustedKWh - zm.ReferenceKWh) / zm.ReferenceKWh * 100
			zm.Status = MonthOK
			if zm.ExcessPct > opts.ThresholdPct {
				zm.Status = MonthOver
			}
		}
		out = append(out, zm)
	}
	return out, nil
}

// findLosses marks the runs of at least opts.Months consecutive months over the reference in one zone's
// months (ascending) and returns them as findings.
func findLosses(months []ZoneMonth, opts BACSOptions) []BACSFinding {
	var out []BACSFinding
	flush := func(run []int) {
		if len(run) < opts.Months {
			return
		}
		f := BACSFinding{Zone: months[run[0]].Zone, Site: months[run[0]].Site, Fluid: months[run[0]].Fluid,
			From: months[run[0]].Month, To: months[run[len(run)-1]].Month, MaxExcessPct: math.Inf(-1)}
		adjusted := true
		for _, i := range run {
			months[i].Loss = true
			m := months[i]
			f.Evidence = append(f.Evidence, m)
			f.ExcessKWh += m.AdjustedKWh - m.ReferenceKWh
			f.MaxExcessPct = math.Max(f.MaxExcessPct, m.ExcessPct)
			adjusted = adjusted && m.Adjusted
		}
		what := "consommation"
		if adjusted {
			what = "consommation ajustée au climat"
		}
		f.Message = fmt.Sprintf("Perte d'efficacité présumée, zone %s (site %s, %s) : %s supérieure de plus de "+
			"%s %% à la référence pendant %d mois consécutifs, de %s à %s (écart maximal %s %%, excédent %s kWh).",
			f.Zone, f.Site, energyLabel(f.Fluid), what, trimmedDecimal(opts.ThresholdPct, 1), len(run), f.From, f.To,
			trimmedDecimal(f.MaxExcessPct, 1), trimmedDecimal(f.ExcessKWh, 0))
		out = append(out, f)
	}
	var run []int
	for i, m := range months {
		if m.Status != MonthOver {
			flush(run)
			run = nil
			continue
		}
		if len(run) > 0 && months[run[len(run)-1]].Month.Next() != m.Month {
			flush(run)
			run = nil
		}
		run = append(run, i)
	}
	flush(run)
	return out
}

var bacsHeader = []string{
	"site", "zone", "energie", "mois", "conso_kwh", "heures_mesurees", "heures_attendues", "dju",
	"conso_ajustee_kwh", "reference_kwh", "dju_reference", "ecart_pct", "statut", "perte_efficacite",
}

// WriteBACS writes the report's months as CSV for the building manager, in the OPERAT file's format (";",
// UTF-8 with BOM, decimal point; see operat.go), one row per zone and month:
//
//	site, zone           the zone's site and id
//	energie              électricité | gaz naturel | réseau de chaleur
//	mois                 YYYY-MM
//	conso_kwh            the month's consumption, kWh (one decimal)
//	heures_mesurees      hours with a value, of heures_attendues in the month (743–745 around clock changes)
//	dju                  the month's heating degree days; empty: unknown
//	conso_ajustee_kwh    consumption brought to the reference's climate; empty: not adjusted
//	reference_kwh        the month's reference; dju_reference its degree days; empty: none
//	ecart_pct            adjusted consumption against the reference, % (positive: above)
//	statut               conforme | depassement | incomplet | sans_reference | reference (MonthStatus)
//	perte_efficacite     oui when the month belongs to a loss-of-efficiency finding, else non
func WriteBACS(w io.Writer, r BACSReport) error {
	records := make([][]string, 0, len(r.Months)+1)
	records = append(records, bacsHeader)
	opt := func(v float64, ok bool, prec int) string {
		if !ok {
			return ""
		}
		return trimmedDecimal(v, prec)
	}
	for _, m := range r.Months {
		compared := m.Status == MonthOK || m.Status == MonthOver
		loss := "non"
		if m.Loss {
			loss = "oui"
		}
		records = append(records, []string{
			m.Site, m.Zone, energyLabel(m.Fluid), m.Month.String(), trimmedDecimal(m.KWh, 1), strconv.Itoa(m.Hours),
			strconv.Itoa(m.ExpectedHours), opt(m.DJU, m.HasDJU, 1), opt(m.AdjustedKWh, m.Adjusted, 1),
			opt(m.ReferenceKWh, m.HasReference, 1), opt(m.ReferenceDJU, m.HasReferenceDJU, 1),
			opt(m.ExcessPct, compared, 1), string(m.Status), loss,
		})
	}
	if err := writeSpreadsheetCSV(w, records); err != nil {
		return fmt.Errorf("write bacs: %w", err)
	}
	return nil
}
