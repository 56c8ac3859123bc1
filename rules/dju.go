package rules

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// DJU (degrés-jours unifiés): the heating degree days the French energy trade corrects consumption with.

// DefaultDJUBase is the French convention's base temperature, °C.
const DefaultDJUBase = 18.0

// minDJUSamples is the fewest temperature samples a day needs for its degree days: a station that reported
// three hours of a day has not seen its minimum and maximum.
const minDJUSamples = 12

// DegreeDay is the heating degree days of one civil day.
type DegreeDay struct {
	Day      time.Time // the day's midnight, in the location it was computed for
	Value    float64   // max(0, base − (Tmin + Tmax) / 2)
	Min, Max float64   // the day's extreme temperatures, °C
	Samples  int
}

// DegreeDays computes the degree days of each civil day of loc (nil: Europe/Paris) covered by temperature
// points (°C, sorted by time), Météo-France method: max(0, base − (Tmin + Tmax)/2) with Tmin and Tmax taken
// from the samples from midnight to midnight (23 or 25 hours on DST days). Days with fewer than 12 samples
// are left out. simulators/model.Weather.DegreeDays is the same definition on the model itself.
func DegreeDays(points []hv.Point, base float64, loc *time.Location) []DegreeDay {
	if loc == nil {
		loc = parisLoc()
	}
	var out []DegreeDay
	var cur DegreeDay
	var curEnd int64
	flush := func() {
		if cur.Samples >= minDJUSamples {
			cur.Value = math.Max(0, base-(cur.Min+cur.Max)/2)
			out = append(out, cur)
		}
	}
	for _, p := range points {
		if cur.Samples == 0 || p.Time >= curEnd {
			if cur.Samples > 0 {
				flush()
			}
			y, m, d := time.UnixMilli(p.Time).In(loc).Date()
			day := time.Date(y, m, d, 0, 0, 0, 0, loc)
			cur = DegreeDay{Day: day, Min: p.Value, Max: p.Value}
			curEnd = day.AddDate(0, 0, 1).UnixMilli()
		}
		cur.Min, cur.Max = math.Min(cur.Min, p.Value), math.Max(cur.Max, p.Value)
		cur.Samples++
	}
	if cur.Samples > 0 {
		flush()
	}
	return out
}

// QueryDegreeDays reads the temperature of a weather station over [from, to) and returns its degree days
// by civil day of loc (nil: Paris).
func QueryDegreeDays(ctx context.Context, q Querier, station string, from, to time.Time, base float64, loc *time.Location) ([]DegreeDay, error) {
	ss, err := q.Query(ctx, hv.Query{Metric: hv.TemperatureC, Devices: []string{station}, From: from.UnixMilli(), To: to.UnixMilli()})
	if err != nil {
		return nil, fmt.Errorf("degree days of %s: %w", station, err)
	}
	for _, s := range ss {
		if s.Device == station {
			return DegreeDays(s.Points, base, loc), nil
		}
	}
	return nil, nil
}

// NearestStation returns the registry's weather device nearest to a site (its site's position), the device
// whose outdoor temperature the site's heating follows.
func NearestStation(reg *registry.Registry, site hv.Site) (hv.Device, bool) {
	var best hv.Device
	bestD := math.Inf(1)
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceWeather {
			continue
		}
		s, ok := reg.Site(d.Site)
		if !ok {
			continue
		}
		// Equirectangular distance: exact enough to rank stations within a département.
		dx := (s.Lon - site.Lon) * math.Cos((s.Lat+site.Lat)/2*math.Pi/180)
		dy := s.Lat - site.Lat
		if dist := dx*dx + dy*dy; dist < bestD {
			best, bestD = d, dist
		}
	}
	return best, !math.IsInf(bestD, 1)
}

// DegreeDayModel is a site's energy signature E = C + M·DJU per day, fitted by least squares, with the
// statistics that say whether to trust it (ASHRAE Guideline 14 style).
type DegreeDayModel struct {
	C      float64 // consumption of a day without heating need (base load, hot water)
	M      float64 // consumption per degree day
	R2     float64 // coefficient of determination
	CVRMSE float64 // root mean square error (n − 2 degrees of freedom) over the mean consumption
	N      int     // days fitted
}

// ErrPoorFit marks a degree-day model that cannot be fitted: too few days, no spread of degree days, no
// consumption.
var ErrPoorFit = errors.New("degree-day model cannot be fitted")

// FitDegreeDays fits E = C + M·DJU on pairs of daily degree days and consumptions.
func FitDegreeDays(dju, energy []float64) (DegreeDayModel, error) {
	n := len(dju)
	if n != len(energy) {
		return DegreeDayModel{}, fmt.Errorf("%w: %d degree days for %d consumptions", ErrPoorFit, n, len(energy))
	}
	if n < 3 {
		return DegreeDayModel{}, fmt.Errorf("%w: %d days", ErrPoorFit, n)
	}
	var sx, sy float64
	for i := range dju {
		sx += dju[i]
		sy += energy[i]
	}
	mx, my := sx/float64(n), sy/float64(n)
	var sxx, sxy, syy float64
	for i := range dju {
		dx, dy := dju[i]-mx, energy[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 || my <= 0 {
		return DegreeDayModel{}, fmt.Errorf("%w: no spread of degree days or no consumption", ErrPoorFit)
	}
	m := sxy / sxx
	c := my - m*mx
	var sse float64
	for i := range dju {
		e := energy[i] - (c + m*dju[i])
		sse += e * e
	}
	r2 := 1.0
	if syy > 0 {
		r2 = 1 - sse/syy
	}
	return DegreeDayModel{C: c, M: m, R2: r2, CVRMSE: math.Sqrt(sse/float64(n-2)) / my, N: n}, nil
}

// Predict is the model's consumption over days days with dju degree days in all.
func (m DegreeDayModel) Predict(days, dju float64) float64 { return m.C*days + m.M*dju }
