// Package sun is the astronomical clock of street lighting: sunrise, sunset and civil twilight for a place
// and a local civil date, computed with the NOAA solar calculator equations.
//
// Lighting programs switch on and off relative to these events, so the times must hold all year in the Aisne
// to well under a minute; sun_test.go checks every day of a year at Laon, Saint-Quentin and Château-Thierry
// against an independent ephemeris (Astronomical Almanac low-precision formulas, events found by bisecting
// the altitude in time).
package sun

import (
	"math"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Paris must resolve in containers without /usr/share/zoneinfo
)

// Altitudes of the sun's centre that define the events, in degrees.
const (
	// Upper limb on a sea-level horizon: 34′ of standard refraction plus the 16′ semi-diameter.
	sunriseAltitude = -0.833
	// Civil twilight, the usual threshold for street lighting being needed or not.
	civilAltitude = -6.0
)

// Day holds the sun times of one local civil date at one place. The event fields are UTC instants, rounded
// to the second; a zero time means the event does not happen that day (polar day or night).
type Day struct {
	Date            time.Time // the local civil date, at 00:00 in the location it was computed for
	Sunrise, Sunset time.Time // upper limb, standard refraction: solar altitude −0.833°
	Dawn, Dusk      time.Time // civil twilight: −6°
}

// DayJSON is the wire shape of Day for the API and the CLI. Missing events are empty strings so the keys are
// always present.
type DayJSON struct {
	Date    string `json:"date"` // YYYY-MM-DD, local civil date
	Sunrise string `json:"sunrise"`
	Sunset  string `json:"sunset"`
	Dawn    string `json:"dawn"`
	Dusk    string `json:"dusk"`
}

// JSON renders d with RFC 3339 UTC instants.
func (d Day) JSON() DayJSON {
	return DayJSON{
		Date:    d.Date.Format(time.DateOnly),
		Sunrise: rfc3339(d.Sunrise),
		Sunset:  rfc3339(d.Sunset),
		Dawn:    rfc3339(d.Dawn),
		Dusk:    rfc3339(d.Dusk),
	}
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

var paris = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		// Cannot happen with time/tzdata embedded; computing in the wrong zone would be worse than stopping.
		panic("sun: load europe/paris: " + err.Error())
	}
	return loc
})

// Paris returns the Europe/Paris location, from the embedded tz database if the system has none.
func Paris() *time.Location { return paris() }

// Compute returns the sun times for the local civil date of date (year, month and day read in loc; a nil
// loc means Paris) at latitude lat and longitude lon in degrees, east positive.
//
// Parse request dates with time.ParseInLocation(time.DateOnly, s, loc): a UTC midnight read in a zone west
// of Greenwich falls on the previous day.
//
// The events are those of the solar day whose transit is nearest local noon, so at high latitudes a sunset
// may fall after the next local midnight. An invalid latitude (NaN, beyond ±90°) or longitude (NaN, ±Inf)
// gives a Day with only Date set.
func Compute(date time.Time, lat, lon float64, loc *time.Location) Day {
	if loc == nil {
		loc = Paris()
	}
	y, m, d := date.In(loc).Date()
	day := Day{Date: time.Date(y, m, d, 0, 0, 0, 0, loc)}
	if !(lat >= -90 && lat <= 90) || math.IsNaN(lon) || math.IsInf(lon, 0) {
		return day
	}
	noon := transit(julianDay(time.Date(y, m, d, 12, 0, 0, 0, loc)), lon)
	day.Dawn = event(noon, lat, lon, civilAltitude, true)
	day.Sunrise = event(noon, lat, lon, sunriseAltitude, true)
	day.Sunset = event(noon, lat, lon, sunriseAltitude, false)
	day.Dusk = event(noon, lat, lon, civilAltitude, false)
	return day
}

// Range returns the sun times for days consecutive local dates starting with the local date of from.
func Range(from time.Time, days int, lat, lon float64, loc *time.Location) []Day {
	if days <= 0 {
		return nil
	}
	if loc == nil {
		loc = Paris()
	}
	y, m, d := from.In(loc).Date()
	out := make([]Day, days)
	for i := range out {
		// Step the calendar, not 24 h: local days last 23 or 25 hours across DST changes.
		out[i] = Compute(time.Date(y, m, d+i, 12, 0, 0, 0, loc), lat, lon, loc)
	}
	return out
}

const (
	unixEpochJD = 2440587.5 // Julian Day of 1970-01-01T00:00:00Z
	j2000JD     = 2451545.0 // Julian Day of 2000-01-01T12:00:00 (J2000.0)
	nanosPerDay = 86400e9
	degPerDay   = 360.0 // the sun's hour angle grows by a full turn per day of UT
	converged   = 1e-7  // days (≈ 9 ms): far below the rounding to the second
	maxSteps    = 6     // two or three steps converge; the bound only guards pathological inputs
)

// julianDay ignores the UT/TT difference (about 70 s): the sun's declination and the equation of time
// barely move in 70 s, shifting event times by well under a second.
func julianDay(t time.Time) float64 {
	return float64(t.UnixNano())/nanosPerDay + unixEpochJD
}

func fromJulianDay(jd float64) time.Time {
	sec := math.Round((jd - unixEpochJD) * 86400)
	return time.Unix(int64(sec), 0).UTC()
}

// transit returns the Julian Day of the solar transit nearest jd: local apparent noon, where the sun's hour
// angle is zero.
func transit(jd, lon float64) float64 {
	for range maxSteps {
		_, eot := position(jd)
		step := -hourAngle(jd, lon, eot) / degPerDay
		jd += step
		if math.Abs(step) < converged {
			break
		}
	}
	return jd
}

// event returns the instant the sun's centre crosses altitude alt (degrees) before (rising) or after the
// transit noon, or the zero time when it stays above or below all day. The closed-form hour angle is
// evaluated with the declination and equation of time at the event itself, not at noon: the declination
// moves up to 0.4° a day around the equinoxes, which would otherwise cost about a minute.
func event(noon, lat, lon, alt float64, rising bool) time.Time {
	jd := noon
	for range maxSteps {
		decl, eot := position(jd)
		cosH := (sinDeg(alt) - sinDeg(lat)*sinDeg(decl)) / (cosDeg(lat) * cosDeg(decl))
		if !(cosH >= -1 && cosH <= 1) { // also rejects NaN at the poles
			return time.Time{}
		}
		target := math.Acos(cosH) / rad
		if rising {
			target = -target
		}
		step := wrap180(target-hourAngle(jd, lon, eot)) / degPerDay
		jd += step
		if math.Abs(step) < converged {
			break
		}
	}
	return fromJulianDay(jd)
}

// position returns the sun's apparent declination (degrees) and the equation of time (minutes) at jd,
// following the NOAA solar calculator (itself from Meeus, Astronomical Algorithms).
func position(jd float64) (decl, eot float64) {
	jc := (jd - j2000JD) / 36525 // Julian centuries since J2000.0
	meanLong := math.Mod(280.46646+jc*(36000.76983+jc*0.0003032), 360)
	meanAnom := 357.52911 + jc*(35999.05029-0.0001537*jc)
	ecc := 0.016708634 - jc*(0.000042037+0.0000001267*jc)
	center := sinDeg(meanAnom)*(1.914602-jc*(0.004817+0.000014*jc)) +
		sinDeg(2*meanAnom)*(0.019993-0.000101*jc) +
		sinDeg(3*meanAnom)*0.000289
	trueLong := meanLong + center
	// Ω, the longitude of the Moon's ascending node, drives nutation; the constant is aberration.
	omega := 125.04 - 1934.136*jc
	appLong := trueLong - 0.00569 - 0.00478*sinDeg(omega)
	meanObliq := 23 + (26+(21.448-jc*(46.815+jc*(0.00059-jc*0.001813)))/60)/60
	obliq := meanObliq + 0.00256*cosDeg(omega)
	decl = math.Asin(sinDeg(obliq)*sinDeg(appLong)) / rad

	y := math.Pow(math.Tan(obliq/2*rad), 2)
	eot = 4 / rad * (y*sinDeg(2*meanLong) -
		2*ecc*sinDeg(meanAnom) +
		4*ecc*y*sinDeg(meanAnom)*cosDeg(2*meanLong) -
		0.5*y*y*sinDeg(4*meanLong) -
		1.25*ecc*ecc*sinDeg(2*meanAnom))
	return decl, eot
}

// hourAngle returns the sun's hour angle (degrees, in [−180, 180), negative in the morning) at jd from the
// true solar time, as the NOAA calculator does.
func hourAngle(jd, lon, eot float64) float64 {
	dayFrac := jd + 0.5 - math.Floor(jd+0.5) // fraction of the UTC day
	trueSolarMinutes := dayFrac*1440 + eot + 4*lon
	return wrap180(trueSolarMinutes/4 - 180)
}

const rad = math.Pi / 180

func sinDeg(x float64) float64 { return math.Sin(x * rad) }
func cosDeg(x float64) float64 { return math.Cos(x * rad) }

// wrap180 brings an angle into [−180, 180) so that steps in time go to the nearest solution.
func wrap180(x float64) float64 {
	x = math.Mod(x+180, 360)
	if x < 0 {
		x += 360
	}
	return x - 180
}
