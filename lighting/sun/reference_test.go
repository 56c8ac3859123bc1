package sun

import (
	"math"
	"time"
)

// The reference ephemeris used to check Compute. It shares nothing with sun.go on purpose:
//
//   - position: the low-precision formulas for the Sun of the Astronomical Almanac (section C, "Sun"), stated
//     accurate to 0.01° between 1950 and 2050, giving right ascension and declination directly, with no
//     equation of time;
//   - Earth rotation: Greenwich mean sidereal time from the USNO approximation, then local hour angle and
//     altitude, where sun.go uses true solar time;
//   - events: found by scanning the local civil day and bisecting the altitude in time, where sun.go solves
//     the hour-angle equation in closed form.
//
// Both sides take UT for the time argument and neglect parallax (8.8″), as almanac rise/set tables do.

// almanacAltitude returns the geometric altitude (degrees) of the sun's centre at Julian Day jd (UT) seen from
// lat, lon (degrees, east positive).
func almanacAltitude(jd, lat, lon float64) float64 {
	const r = math.Pi / 180
	n := jd - 2451545.0 // days from J2000.0
	meanLong := math.Mod(280.460+0.9856474*n, 360)
	meanAnom := math.Mod(357.528+0.9856003*n, 360) * r
	eclLong := (meanLong + 1.915*math.Sin(meanAnom) + 0.020*math.Sin(2*meanAnom)) * r
	obliq := (23.439 - 0.0000004*n) * r

	ra := math.Atan2(math.Cos(obliq)*math.Sin(eclLong), math.Cos(eclLong))
	dec := math.Asin(math.Sin(obliq) * math.Sin(eclLong))

	gmstHours := math.Mod(18.697374558+24.06570982441908*n, 24)
	localHourAngle := (gmstHours*15+lon)*r - ra

	latR := lat * r
	sinAlt := math.Sin(latR)*math.Sin(dec) + math.Cos(latR)*math.Cos(dec)*math.Cos(localHourAngle)
	return math.Asin(sinAlt) / r
}

// refDay holds the reference events of one local civil date; a zero time means no crossing that day.
type refDay struct {
	Dawn, Sunrise, Sunset, Dusk time.Time
}

// referenceDay returns the events of the solar day of the local date (y, m, d) in loc: the 24 hours centred on
// the local mean noon (12:00 UT − longitude/15 h) nearest 12:00 local time, so that a dusk after local
// midnight (Helsinki in June) still belongs to the day whose afternoon it ends. It scans that window every
// scanStep and bisects each crossing of −0.833° and −6°: the first upward crossing is the morning event, the
// last downward one the evening event.
func referenceDay(y int, m time.Month, d int, lat, lon float64, loc *time.Location) refDay {
	civilNoon := time.Date(y, m, d, 12, 0, 0, 0, loc)
	meanNoon := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Add(-time.Duration(lon / 15 * float64(time.Hour)))
	for meanNoon.Sub(civilNoon) > 12*time.Hour {
		meanNoon = meanNoon.Add(-24 * time.Hour)
	}
	for civilNoon.Sub(meanNoon) > 12*time.Hour {
		meanNoon = meanNoon.Add(24 * time.Hour)
	}
	start, end := meanNoon.Add(-12*time.Hour), meanNoon.Add(12*time.Hour)
	// The definitions are restated rather than taken from sun.go, so a wrong constant there is caught.
	const (
		upperLimb = -(34.0 + 16.0) / 60 // refraction 34′ + semi-diameter 16′
		civil     = -6.0
	)
	return refDay{
		Dawn:    crossing(start, end, lat, lon, civil, true),
		Sunrise: crossing(start, end, lat, lon, upperLimb, true),
		Sunset:  crossing(start, end, lat, lon, upperLimb, false),
		Dusk:    crossing(start, end, lat, lon, civil, false),
	}
}

const scanStep = 10 * time.Minute // the sun cannot cross a given altitude twice in 10 min at these latitudes

func crossing(start, end time.Time, lat, lon, alt float64, rising bool) time.Time {
	f := func(t time.Time) float64 { return refAltitude(t, lat, lon) - alt }
	var found time.Time
	for a := start; a.Before(end); a = a.Add(scanStep) {
		b := a.Add(scanStep)
		if b.After(end) {
			b = end
		}
		fa, fb := f(a), f(b)
		up := fa < 0 && fb >= 0
		down := fa >= 0 && fb < 0
		if rising && up {
			return bisect(f, a, b)
		}
		if !rising && down {
			found = bisect(f, a, b) // keep the last one
		}
	}
	return found
}

// bisect narrows a sign change of f in [a, b] to well under a millisecond.
func bisect(f func(time.Time) float64, a, b time.Time) time.Time {
	fa := f(a)
	for b.Sub(a) > 100*time.Microsecond {
		mid := a.Add(b.Sub(a) / 2)
		fm := f(mid)
		if (fa < 0) == (fm < 0) {
			a, fa = mid, fm
		} else {
			b = mid
		}
	}
	return a.Add(b.Sub(a) / 2)
}

func refAltitude(t time.Time, lat, lon float64) float64 {
	jd := float64(t.UnixNano())/86400e9 + 2440587.5
	return almanacAltitude(jd, lat, lon)
}
