package rules

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// KindBaseload names the baseload rule kind.
const KindBaseload = "baseload"

// Modes of the baseload rule.
const (
	BaseloadNight   = "night"   // the last complete night (Night) against the occupied reference
	BaseloadWeekend = "weekend" // the last complete weekend (Saturday 00:00 to Monday 00:00)
)

// BaseloadConfig finds heating, lighting or equipment left on in an empty building: the mean consumption
// rate at night (or over the weekend) above Ratio × the rate when the building is in use.
//
// The reference is the occupied rate (Occupied hours of working days, Monday to Friday) of the days of the
// ReferenceDays before the window on which the building was in use, taken at the Quantile of those daily
// means. A day is in use when its occupied rate is at least InUseFactor × the rate of its own night: a
// school in August, a salle des fêtes on a weekday is not, and comparing empty with empty would only find
// a night "as high as the day". With fewer than 3 days in use the device is not judged; a high quantile
// keeps the reference of a school at its term-time level after two weeks of holidays.
//
// With WeatherNormalise, rates are divided by the heating degree-hours (BaseC − outdoor temperature, at the
// nearest weather station or Station) of their own hours: a heating consumption is then compared between a
// cold weekend and the milder week before at equal weather. The condition's baseline is the reference rate
// brought to the window's weather; days and windows without heating need (under 1 degree-hour an hour) are
// not judged.
//
// The floor max(MinRate, MinRatePerM2 × the site's surface) keeps out the rates too small to be waste: the
// hot water of a closed school in summer is "as high as" its occupied level, and costs nothing.
type BaseloadConfig struct {
	Metric        hv.Metric  `yaml:"metric"`         // a delta series; default energy_kwh_delta
	Mode          string     `yaml:"mode"`           // night (default) or weekend
	Night         ClockRange `yaml:"night"`          // default 00:00-05:00 (Paris)
	Occupied      ClockRange `yaml:"occupied"`       // default 08:00-18:00, working days
	ReferenceDays int        `yaml:"reference_days"` // default 28
	Quantile      float64    `yaml:"quantile"`       // of the daily occupied means; default 0.75
	Ratio         float64    `yaml:"ratio"`          // default 0.5
	// MinRate is a floor on the night (weekend) rate, in the metric's unit per hour (kW for energy): below
	// it nothing is reported, however high the ratio. Default 0.
	MinRate      float64 `yaml:"min_rate"`
	MinRatePerM2 float64 `yaml:"min_rate_per_m2"` // the floor per m² of the site; default 0
	InUseFactor  float64 `yaml:"in_use_factor"`   // default 1.3
	// WeatherNormalise compares rates per heating degree-hour (see above). Default false.
	WeatherNormalise bool    `yaml:"weather_normalise"`
	BaseC            float64 `yaml:"base_c"`       // degree-hour base, °C; default 18
	Station          string  `yaml:"station"`      // weather device; default the nearest to each site
	MinCoverage      float64 `yaml:"min_coverage"` // share of the window's hours that must have data; default 0.75
}

// DefaultBaseloadConfig compares 00:00-05:00 with half the occupied rate.
func DefaultBaseloadConfig() BaseloadConfig {
	return BaseloadConfig{Metric: hv.EnergyKWh.Delta(), Mode: BaseloadNight, Night: ClockRange{0, 5 * 60},
		Occupied: ClockRange{8 * 60, 18 * 60}, ReferenceDays: 28, Quantile: 0.75, Ratio: 0.5, InUseFactor: 1.3, BaseC: DefaultDJUBase, MinCoverage: 0.75}
}

// BaseloadRule is the baseload rule, a window rule.
type BaseloadRule struct {
	*base
	cfg     BaseloadConfig
	station map[string]string // site → weather device (WeatherNormalise)
}

var _ Rule = (*BaseloadRule)(nil)

// NewBaseload builds a baseload rule; it watches meters only.
func NewBaseload(rc RuleConfig, c BaseloadConfig, reg *registry.Registry) (*BaseloadRule, error) {
	var errs []fieldError
	if _, ok := c.Metric.DeltaOf(); !ok {
		errs = append(errs, ferr("metric", "metric %q is not the delta series of an index (energy_kwh_delta…)", c.Metric))
	}
	if c.Mode != BaseloadNight && c.Mode != BaseloadWeekend {
		errs = append(errs, ferr("mode", "mode %q is not one of night, weekend", c.Mode))
	}
	if c.Night.From == c.Night.To {
		errs = append(errs, ferr("night", "night must be a clock range HH:MM-HH:MM"))
	}
	if c.Occupied.From >= c.Occupied.To {
		errs = append(errs, ferr("occupied", "occupied must be a clock range HH:MM-HH:MM within one day"))
	}
	if c.ReferenceDays < 1 || c.ReferenceDays > 366 {
		errs = append(errs, ferr("reference_days", "reference_days must be 1 to 366"))
	}
	if c.Quantile < 0 || c.Quantile > 1 {
		errs = append(errs, ferr("quantile", "quantile must be in [0, 1]"))
	}
	if !(c.Ratio > 0) {
		errs = append(errs, ferr("ratio", "ratio must be positive"))
	}
	if c.MinRate < 0 || c.MinRatePerM2 < 0 {
		errs = append(errs, ferr("min_rate", "min_rate and min_rate_per_m2 must not be negative"))
	}
	if c.Station != "" && reg != nil {
		if d, _, ok := reg.Lookup(c.Station); !ok || d.Kind != hv.DeviceWeather {
			errs = append(errs, ferr("station", "station %q is not a weather device of the registry", c.Station))
		}
	}
	if c.InUseFactor < 1 {
		errs = append(errs, ferr("in_use_factor", "in_use_factor must be at least 1"))
	}
	if c.MinCoverage <= 0 || c.MinCoverage > 1 {
		errs = append(errs, ferr("min_coverage", "min_coverage must be in (0, 1]"))
	}
	b, berrs := newBase(rc, KindBaseload, reg, func(d *hv.Device, _ *hv.Site) bool {
		return d.Kind == hv.DeviceMeter
	})
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	r := &BaseloadRule{base: b, cfg: c, station: map[string]string{}}
	if c.WeatherNormalise {
		r.station = stationsOf(b, reg, c.Station)
	}
	return r, nil
}

// stationsOf maps each site of a rule's targets to its weather device: station when given, else the nearest.
func stationsOf(b *base, reg *registry.Registry, station string) map[string]string {
	out := map[string]string{}
	for _, t := range b.targets {
		if _, ok := out[t.site.ID]; ok {
			continue
		}
		if station != "" {
			out[t.site.ID] = station
		} else if st, ok := NearestStation(reg, *t.site); ok {
			out[t.site.ID] = st.ID
		}
	}
	return out
}

// degreeHours reads the hourly mean temperature of the stations of the rule's sites over [from, to) and
// returns, per station, max(0, base − T) by hour start (Unix ms).
func degreeHours(ctx context.Context, q Querier, stations map[string]string, from, to time.Time, base float64) (map[string]map[int64]float64, error) {
	var ids []string
	for _, st := range stations {
		if !slices.Contains(ids, st) {
			ids = append(ids, st)
		}
	}
	out := map[string]map[int64]float64{}
	if len(ids) == 0 {
		return out, nil
	}
	ss, err := q.Query(ctx, hv.Query{Metric: hv.TemperatureC, Devices: ids, From: from.UnixMilli(), To: to.UnixMilli(),
		Every: time.Hour.Milliseconds(), Agg: hv.AggMean})
	if err != nil {
		return nil, fmt.Errorf("degree-hours: %w", err)
	}
	for _, s := range ss {
		m := make(map[int64]float64, len(s.Points))
		for _, p := range s.Points {
			m[p.Time] = math.Max(0, base-p.Value)
		}
		out[s.Device] = m
	}
	return out, nil
}

// rateIn is the mean rate of the points in [from, to), and, with dh, the rate per degree-hour (the sum over
// the hours that have a degree-hour value) and the mean degree-hours of those hours; n counts the points.
func rateIn(points []hv.Point, from, to time.Time, dh map[int64]float64) (rate, perDH, meanDH float64, n int) {
	f, t := from.UnixMilli(), to.UnixMilli()
	i, _ := slices.BinarySearchFunc(points, f, func(p hv.Point, t int64) int { return cmpInt(p.Time, t) })
	var sum, wSum, dhSum float64
	var nw int
	for ; i < len(points) && points[i].Time < t; i++ {
		sum += points[i].Value
		n++
		if d, ok := dh[points[i].Time]; ok {
			wSum += points[i].Value
			dhSum += d
			nw++
		}
	}
	if n > 0 {
		rate = sum / float64(n)
	}
	if nw > 0 && dhSum > 0 {
		perDH, meanDH = wSum/dhSum, dhSum/float64(nw)
	}
	return rate, perDH, meanDH, n
}

// window is the span Eval judges at now: the last complete night, or the last complete weekend.
func (r *BaseloadRule) window(now time.Time) (from, to time.Time) {
	if r.cfg.Mode == BaseloadNight {
		return r.cfg.Night.lastOccurrence(now)
	}
	_, monday := WindowWeek.lastComplete(now)
	return monday.AddDate(0, 0, -2), monday
}

// Eval judges the last complete night (or weekend) against the occupied reference of the days before it.
func (r *BaseloadRule) Eval(ctx context.Context, now time.Time, q Querier) ([]Condition, error) {
	from, to := r.window(now)
	y, m, d := from.In(parisLoc()).Date()
	refTo := time.Date(y, m, d, 0, 0, 0, 0, parisLoc())
	refFrom := refTo.AddDate(0, 0, -r.cfg.ReferenceDays)
	ss, err := r.query(ctx, q, r.cfg.Metric, refFrom, to, time.Hour, hv.AggSum)
	if err != nil {
		return nil, err
	}
	var dhs map[string]map[int64]float64
	if r.cfg.WeatherNormalise {
		if dhs, err = degreeHours(ctx, q, r.station, refFrom, to, r.cfg.BaseC); err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.spec.Name, err)
		}
	}
	hours := to.Sub(from).Hours()
	unit := rateUnit(r.cfg.Metric)
	var out []Condition
	for _, s := range ss {
		dh := dhs[r.station[s.t.site.ID]]
		mean, perDH, meanDH, n := rateIn(s.points, from, to, dh)
		if n == 0 || float64(n) < r.cfg.MinCoverage*hours || mean < math.Max(r.cfg.MinRate, r.cfg.MinRatePerM2*s.t.site.SurfaceM2) {
			continue
		}
		ref, ok := r.reference(s.points, refFrom, refTo, dh)
		if !ok {
			continue
		}
		value, what, same := mean, "de nuit ("+r.cfg.Night.String()+")", ""
		if r.cfg.Mode == BaseloadWeekend {
			what = "du week-end"
		}
		if r.cfg.WeatherNormalise {
			if meanDH < 1 {
				continue // no heating need over the window: nothing to compare
			}
			// The reference per degree-hour, brought to the window's weather.
			value, ref, same = perDH*meanDH, ref*meanDH, " à météo égale"
		}
		limit := r.cfg.Ratio * ref
		if !(value > limit) {
			continue
		}
		summary := fmt.Sprintf("Consommation %s de %s %s, soit %s %% du niveau en occupation%s (%s %s ; seuil %s %%)",
			what, frNum(mean, 2), unit, frNum(100*value/ref, 0), same, frNum(ref, 2), unit, frNum(100*r.cfg.Ratio, 0))
		out = append(out, r.condition(s.t, mean, Evidence{Metric: r.cfg.Metric, Device: s.t.dev.ID, From: from.UTC(), To: to.UTC(),
			Value: value, Baseline: ref, Threshold: limit}, summary))
	}
	return out, nil
}

// reference is the Quantile of the daily mean rates over the Occupied hours of the working days of
// [from, to) on which the building was in use; false with fewer than 3 such days (a day counts with half its
// occupied hours and half its night present).
func (r *BaseloadRule) reference(points []hv.Point, from, to time.Time, dh map[int64]float64) (float64, bool) {
	var daily []float64
	occ, night := r.cfg.Occupied, r.cfg.Night
	for day := from; day.Before(to); day = day.AddDate(0, 0, 1) {
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		y, m, d := day.Date()
		oFrom := time.Date(y, m, d, occ.From/60, occ.From%60, 0, 0, parisLoc())
		rate, perDH, meanDH, n := rateIn(points, oFrom, oFrom.Add(time.Duration(occ.Hours()*float64(time.Hour))), dh)
		if n == 0 || float64(n) < occ.Hours()/2 {
			continue
		}
		// The night of that day: the one ending on it (00:00-05:00 ends the same morning).
		_, nTo := night.lastOccurrence(time.Date(y, m, d, 23, 59, 0, 0, parisLoc()))
		nRate, _, _, nn := rateIn(points, nTo.Add(-time.Duration(night.Hours()*float64(time.Hour))), nTo, nil)
		if nn == 0 || float64(nn) < night.Hours()/2 || rate < r.cfg.InUseFactor*nRate {
			continue // not in use that day
		}
		if r.cfg.WeatherNormalise {
			if meanDH < 1 {
				continue // no heating need that day
			}
			rate = perDH
		}
		daily = append(daily, rate)
	}
	if len(daily) < 3 {
		return 0, false
	}
	ref := quantile(daily, r.cfg.Quantile)
	return ref, ref > 0
}

// quantile is the q-quantile of vs by linear interpolation between order statistics; vs is sorted in place.
func quantile(vs []float64, q float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	slices.Sort(vs)
	pos := q * float64(len(vs)-1)
	i := int(pos)
	if i >= len(vs)-1 {
		return vs[len(vs)-1]
	}
	return vs[i] + (vs[i+1]-vs[i])*(pos-float64(i))
}

// rateUnit is the unit of a delta series summed per hour: kWh per hour is kW, m³ per hour m³/h.
func rateUnit(m hv.Metric) string {
	switch m.Unit() {
	case "kWh":
		return "kW"
	case "m3":
		return "m³/h"
	case "h":
		return "h/h"
	}
	return m.Unit() + "/h"
}
