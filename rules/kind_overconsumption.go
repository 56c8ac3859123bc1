package rules

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// KindOverconsumption names the overconsumption rule kind.
const KindOverconsumption = "overconsumption"

// Baselines of the overconsumption rule.
const (
	BaselineMedian     = "median"      // median of the same window in each of the Weeks previous weeks
	BaselineLastYear   = "last_year"   // the same window 52 weeks earlier (same weekday)
	BaselineDegreeDays = "degree_days" // E = c + m·DJU fitted on the previous 12 months; median when poor
)

// OverconsumptionConfig compares a meter's consumption over the last complete window (an hour, a Paris
// civil day or a Monday-to-Sunday week) with a baseline, and finds it more than ThresholdPct above.
//
//   - median: the median of the same window 1, 2 … Weeks weeks earlier (same weekday and hour, in Paris
//     civil time so DST does not shift it), each needing MinCoverage of its hours; Quantile above 0.5 takes
//     a higher order statistic instead, so that holidays among the weeks do not lower the baseline;
//   - last_year: the same window 52 weeks (364 days) earlier, so the same weekday;
//   - degree_days (day and week windows): the site's energy signature E = C + M·DJU per day fitted on the
//     12 months before the window, DJU from the nearest weather station (or Station) at BaseC; when the fit
//     is poor (R² below MinR2 or CV(RMSE) above MaxCVRMSE) the median baseline stands in, and the summary
//     says so. A linear signature holds in the heating season only: days (weeks) under MinDJU degree days
//     a day are left out of the fit, and a window under it is judged on the median. The fit reads daily
//     sums aligned on UTC days (an hour or two off Paris days, which a yearly regression does not notice),
//     on whole weeks for a week window, and is recomputed once per window.
type OverconsumptionConfig struct {
	Metric       hv.Metric `yaml:"metric"`        // a delta series; default energy_kwh_delta
	Window       Window    `yaml:"window"`        // hour, day (default) or week
	Baseline     string    `yaml:"baseline"`      // median (default), last_year or degree_days
	Weeks        int       `yaml:"weeks"`         // median: weeks looked back; default 4
	MinWeeks     int       `yaml:"min_weeks"`     // median: weeks with data needed; default 2
	Quantile     float64   `yaml:"quantile"`      // median: the order statistic taken; default 0.5
	ThresholdPct float64   `yaml:"threshold_pct"` // default 30
	// MinExcess is the excess over the baseline (in the metric's unit) below which nothing is reported: +50 %
	// of 2 kWh is not worth a technician's visit. Default 0.
	MinExcess   float64 `yaml:"min_excess"`
	MinCoverage float64 `yaml:"min_coverage"` // share of a window's hours that must have data; default 0.75
	BaseC       float64 `yaml:"base_c"`       // degree_days: DJU base; default 18
	MinR2       float64 `yaml:"min_r2"`       // degree_days: default 0.7
	MaxCVRMSE   float64 `yaml:"max_cv_rmse"`  // degree_days: default 0.3
	MinDJU      float64 `yaml:"min_dju"`      // degree_days: heating season, DJU a day; default 2
	// OffSeason is what a degree_days rule does with a window under MinDJU: median (default) judges it on the
	// median, skip does not judge it (the median of the summer weeks makes every restart of the heating an
	// overconsumption).
	OffSeason string `yaml:"off_season"`
	Station   string `yaml:"station"` // degree_days: weather device; default the nearest to each site
}

// DefaultOverconsumptionConfig is a day against the median of the 4 previous same weekdays, +30 %.
func DefaultOverconsumptionConfig() OverconsumptionConfig {
	return OverconsumptionConfig{Metric: hv.EnergyKWh.Delta(), Window: WindowDay, Baseline: BaselineMedian, Weeks: 4,
		MinWeeks: 2, Quantile: 0.5, ThresholdPct: 30, MinCoverage: 0.75, BaseC: DefaultDJUBase, MinR2: 0.7, MaxCVRMSE: 0.3,
		MinDJU: 2, OffSeason: "median"}
}

// OverconsumptionRule is the overconsumption rule, a window rule.
type OverconsumptionRule struct {
	*base
	cfg     OverconsumptionConfig
	station map[string]string // site → weather device (degree_days)

	mu   sync.Mutex
	fits map[string]djuFit // device → its model for the window starting at fit.for
}

type djuFit struct {
	forWindow time.Time
	model     DegreeDayModel
	err       error
}

var _ Rule = (*OverconsumptionRule)(nil)

// NewOverconsumption builds an overconsumption rule; it watches meters and lighting controllers.
func NewOverconsumption(rc RuleConfig, c OverconsumptionConfig, reg *registry.Registry) (*OverconsumptionRule, error) {
	var errs []fieldError
	if _, ok := c.Metric.DeltaOf(); !ok {
		errs = append(errs, ferr("metric", "metric %q is not the delta series of an index (energy_kwh_delta…)", c.Metric))
	}
	if !c.Window.valid() {
		errs = append(errs, ferr("window", "window %q is not one of hour, day, week", c.Window))
	}
	switch c.Baseline {
	case BaselineMedian, BaselineLastYear:
	case BaselineDegreeDays:
		if c.Window == WindowHour {
			errs = append(errs, ferr("baseline", "degree_days needs a day or week window: degree days are daily"))
		}
	default:
		errs = append(errs, ferr("baseline", "baseline %q is not one of median, last_year, degree_days", c.Baseline))
	}
	if c.Weeks < 1 || c.Weeks > 52 {
		errs = append(errs, ferr("weeks", "weeks must be 1 to 52"))
	}
	if c.MinWeeks < 1 || c.MinWeeks > c.Weeks {
		errs = append(errs, ferr("min_weeks", "min_weeks must be 1 to weeks (%d)", c.Weeks))
	}
	if c.Quantile < 0 || c.Quantile > 1 {
		errs = append(errs, ferr("quantile", "quantile must be in [0, 1]"))
	}
	if c.OffSeason != "median" && c.OffSeason != "skip" {
		errs = append(errs, ferr("off_season", "off_season %q is not one of median, skip", c.OffSeason))
	}
	if c.MinDJU < 0 {
		errs = append(errs, ferr("min_dju", "min_dju must not be negative"))
	}
	if !(c.ThresholdPct > 0) {
		errs = append(errs, ferr("threshold_pct", "threshold_pct must be positive"))
	}
	if c.MinExcess < 0 {
		errs = append(errs, ferr("min_excess", "min_excess must not be negative"))
	}
	if c.MinCoverage <= 0 || c.MinCoverage > 1 {
		errs = append(errs, ferr("min_coverage", "min_coverage must be in (0, 1]"))
	}
	if c.MinR2 < 0 || c.MinR2 > 1 || c.MaxCVRMSE <= 0 {
		errs = append(errs, ferr("min_r2", "min_r2 must be in [0, 1] and max_cv_rmse positive"))
	}
	if c.Station != "" && reg != nil {
		if d, _, ok := reg.Lookup(c.Station); !ok || d.Kind != hv.DeviceWeather {
			errs = append(errs, ferr("station", "station %q is not a weather device of the registry", c.Station))
		}
	}
	b, berrs := newBase(rc, KindOverconsumption, reg, func(d *hv.Device, _ *hv.Site) bool {
		return d.Kind == hv.DeviceMeter || d.Kind == hv.DeviceLightingController
	})
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	r := &OverconsumptionRule{base: b, cfg: c, station: map[string]string{}, fits: map[string]djuFit{}}
	if c.Baseline == BaselineDegreeDays {
		for _, t := range b.targets {
			if _, ok := r.station[t.site.ID]; ok {
				continue
			}
			if c.Station != "" {
				r.station[t.site.ID] = c.Station
			} else if st, ok := NearestStation(reg, *t.site); ok {
				r.station[t.site.ID] = st.ID
			}
		}
	}
	return r, nil
}

// Eval judges the last complete window before now.
func (r *OverconsumptionRule) Eval(ctx context.Context, now time.Time, q Querier) ([]Condition, error) {
	from, to := r.cfg.Window.lastComplete(now)
	qFrom := from
	if r.cfg.Baseline != BaselineLastYear { // the median, or the degree-day model's fallback
		qFrom = from.AddDate(0, 0, -7*r.cfg.Weeks)
	}
	ss, err := r.query(ctx, q, r.cfg.Metric, qFrom, to, time.Hour, hv.AggSum)
	if err != nil {
		return nil, err
	}
	var lastYear map[string][]hv.Point
	if r.cfg.Baseline == BaselineLastYear {
		prev, err := r.query(ctx, q, r.cfg.Metric, from.AddDate(0, 0, -364), to.AddDate(0, 0, -364), time.Hour, hv.AggSum)
		if err != nil {
			return nil, err
		}
		lastYear = make(map[string][]hv.Point, len(prev))
		for _, s := range prev {
			lastYear[s.t.dev.ID] = s.points
		}
	}
	var models map[string]djuFit
	var windowDJU map[string]float64
	if r.cfg.Baseline == BaselineDegreeDays {
		if models, windowDJU, err = r.degreeDayModels(ctx, q, ss, from, to); err != nil {
			return nil, err
		}
	}
	need := r.cfg.MinCoverage * float64(r.cfg.Window.hours())
	days := math.Round(to.Sub(from).Hours() / 24)
	var out []Condition
	for _, s := range ss {
		value, n := sumIn(s.points, from, to)
		if float64(n) < need {
			continue
		}
		var baseline float64
		var how string
		switch r.cfg.Baseline {
		case BaselineLastYear:
			v, n := sumIn(lastYear[s.t.dev.ID], from.AddDate(0, 0, -364), to.AddDate(0, 0, -364))
			if float64(n) < need {
				continue
			}
			baseline, how = v, "à la même période l'an dernier"
		case BaselineDegreeDays:
			fit, ok := models[s.t.dev.ID]
			dju, haveDJU := windowDJU[r.station[s.t.site.ID]]
			season := haveDJU && dju >= r.cfg.MinDJU*days
			if ok && fit.err == nil && season && fit.model.R2 >= r.cfg.MinR2 && fit.model.CVRMSE <= r.cfg.MaxCVRMSE {
				baseline = fit.model.Predict(days, dju)
				how = fmt.Sprintf("au modèle DJU (%s DJU, R² %s, CV %s %%)", frNum(dju, 1), frNum(fit.model.R2, 2), frNum(100*fit.model.CVRMSE, 0))
				break
			}
			if haveDJU && !season && r.cfg.OffSeason == "skip" {
				continue
			}
			var ok2 bool
			if baseline, ok2 = r.median(s.points, from, to, need); !ok2 {
				continue
			}
			why := "modèle DJU indisponible"
			switch {
			case haveDJU && !season:
				why = "hors saison de chauffe"
			case ok && fit.err == nil:
				why = fmt.Sprintf("modèle DJU peu fiable, R² %s, CV %s %%", frNum(fit.model.R2, 2), frNum(100*fit.model.CVRMSE, 0))
			}
			how = r.medianLabel() + " (" + why + ")"
		default:
			var ok bool
			if baseline, ok = r.median(s.points, from, to, need); !ok {
				continue
			}
			how = r.medianLabel()
		}
		if !(baseline > 0) {
			continue
		}
		limit := baseline * (1 + r.cfg.ThresholdPct/100)
		if !(value > limit) || value-baseline < r.cfg.MinExcess {
			continue
		}
		unit := unitFR(r.cfg.Metric)
		summary := fmt.Sprintf("Surconsommation %s : %s%s, soit %s %% par rapport %s (%s%s ; seuil +%s %%)",
			r.period(from), frNum(value, 1), unit, signed(100*(value/baseline-1)), how, frNum(baseline, 1), unit, frNum(r.cfg.ThresholdPct, 0))
		out = append(out, r.condition(s.t, value, Evidence{Metric: r.cfg.Metric, Device: s.t.dev.ID, From: from.UTC(), To: to.UTC(),
			Value: value, Baseline: baseline, Threshold: limit}, summary))
	}
	return out, nil
}

// medianLabel says in French what the median baseline is, after "par rapport".
func (r *OverconsumptionRule) medianLabel() string {
	if r.cfg.Quantile == 0.5 {
		return fmt.Sprintf("à la médiane des %d mêmes périodes précédentes", r.cfg.Weeks)
	}
	return fmt.Sprintf("au quantile %s %% des %d mêmes périodes précédentes", frNum(100*r.cfg.Quantile, 0), r.cfg.Weeks)
}

// median is the median consumption of the same window in each of the previous Weeks weeks with enough data.
func (r *OverconsumptionRule) median(points []hv.Point, from, to time.Time, need float64) (float64, bool) {
	var vs []float64
	for k := 1; k <= r.cfg.Weeks; k++ {
		v, n := sumIn(points, from.AddDate(0, 0, -7*k), to.AddDate(0, 0, -7*k))
		if float64(n) >= need {
			vs = append(vs, v)
		}
	}
	if len(vs) < r.cfg.MinWeeks {
		return 0, false
	}
	return quantile(vs, r.cfg.Quantile), true
}

// degreeDayModels returns each device's model for the window (fitted once per window and cached) and the
// degree days of the window at each station.
func (r *OverconsumptionRule) degreeDayModels(ctx context.Context, q Querier, ss []series, from, to time.Time) (map[string]djuFit, map[string]float64, error) {
	stations := map[string]bool{}
	for _, s := range ss {
		if st := r.station[s.t.site.ID]; st != "" {
			stations[st] = true
		}
	}
	windowDJU := map[string]float64{}
	days := int(math.Round(to.Sub(from).Hours() / 24))
	for st := range stations {
		dd, err := QueryDegreeDays(ctx, q, st, from, to, r.cfg.BaseC, parisLoc())
		if err != nil {
			return nil, nil, fmt.Errorf("rule %s: %w", r.spec.Name, err)
		}
		if len(dd) == days {
			var sum float64
			for _, d := range dd {
				sum += d.Value
			}
			windowDJU[st] = sum
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]djuFit, len(ss))
	var missing []series
	for _, s := range ss {
		if f, ok := r.fits[s.t.dev.ID]; ok && f.forWindow.Equal(from) {
			out[s.t.dev.ID] = f
		} else {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return out, windowDJU, nil
	}
	// The 12 months before the window, on whole UTC days.
	fitTo := from.UTC().Truncate(24 * time.Hour)
	fitFrom := fitTo.AddDate(-1, 0, 0)
	daily, err := r.query(ctx, q, r.cfg.Metric, fitFrom, fitTo, 24*time.Hour, hv.AggSum)
	if err != nil {
		return nil, nil, err
	}
	byDevice := make(map[string][]hv.Point, len(daily))
	for _, s := range daily {
		byDevice[s.t.dev.ID] = s.points
	}
	stationDJU := map[string]map[int64]float64{}
	for _, s := range missing {
		st := r.station[s.t.site.ID]
		f := djuFit{forWindow: from}
		if st == "" {
			f.err = fmt.Errorf("%w: no weather station", ErrPoorFit)
		} else {
			dd, ok := stationDJU[st]
			if !ok {
				list, err := QueryDegreeDays(ctx, q, st, fitFrom, fitTo, r.cfg.BaseC, time.UTC)
				if err != nil {
					return nil, nil, fmt.Errorf("rule %s: %w", r.spec.Name, err)
				}
				dd = make(map[int64]float64, len(list))
				for _, d := range list {
					dd[d.Day.UnixMilli()] = d.Value
				}
				stationDJU[st] = dd
			}
			f.model, f.err = r.fit(byDevice[s.t.dev.ID], dd)
		}
		r.fits[s.t.dev.ID] = f
		out[s.t.dev.ID] = f
	}
	return out, windowDJU, nil
}

// fit fits a device's model on its daily consumptions and the degree days of the same UTC days. A week
// window is fitted on whole weeks (Monday to Sunday, UTC): the weekday/weekend rhythm of a building's
// heating is noise day by day and averages out over a week, and the CV(RMSE) judged is that of the sums the
// window compares.
func (r *OverconsumptionRule) fit(daily []hv.Point, dju map[int64]float64) (DegreeDayModel, error) {
	if r.cfg.Window != WindowWeek { // a day window: days of the heating season, at least 60
		var x, y []float64
		for _, p := range daily {
			if v, ok := dju[p.Time]; ok && v >= r.cfg.MinDJU {
				x, y = append(x, v), append(y, p.Value)
			}
		}
		if len(x) < 60 {
			return DegreeDayModel{}, fmt.Errorf("%w: %d days with consumption and degree days", ErrPoorFit, len(x))
		}
		return FitDegreeDays(x, y)
	}
	type week struct {
		dju, e float64
		n      int
	}
	weeks := map[int64]*week{}
	const day = 24 * 3600 * 1000
	for _, p := range daily {
		v, ok := dju[p.Time]
		if !ok {
			continue
		}
		// 1970-01-01 was a Thursday: Monday-based weeks start 3 days later.
		start := hv.WindowStart(p.Time-4*day, 7*day) + 4*day
		w := weeks[start]
		if w == nil {
			w = &week{}
			weeks[start] = w
		}
		w.dju, w.e, w.n = w.dju+v, w.e+p.Value, w.n+1
	}
	var x, y []float64
	for _, start := range slices.Sorted(maps.Keys(weeks)) {
		if w := weeks[start]; w.n == 7 && w.dju >= 7*r.cfg.MinDJU {
			x, y = append(x, w.dju), append(y, w.e)
		}
	}
	if len(x) < 12 {
		return DegreeDayModel{}, fmt.Errorf("%w: %d whole weeks with consumption and degree days", ErrPoorFit, len(x))
	}
	m, err := FitDegreeDays(x, y)
	m.C /= 7 // per day, as Predict takes it
	return m, err
}

// period names the window in French: "le 12/01", "de 14:00 à 15:00 le 12/01", "la semaine du 06/01".
func (r *OverconsumptionRule) period(from time.Time) string {
	p := from.In(parisLoc())
	switch r.cfg.Window {
	case WindowHour:
		return fmt.Sprintf("de %s à %s le %s", p.Format("15:04"), p.Add(time.Hour).Format("15:04"), p.Format("02/01"))
	case WindowWeek:
		return "la semaine du " + p.Format("02/01")
	}
	return "le " + p.Format("02/01")
}

// signed writes a percentage with its sign, French style: "+45", "−12".
func signed(v float64) string {
	if v >= 0 {
		return "+" + frNum(v, 0)
	}
	return "−" + frNum(-v, 0)
}
