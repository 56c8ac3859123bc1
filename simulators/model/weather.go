package model

import (
	"math"
	"math/rand/v2"
	"time"
)

// The Aisne climate (Saint-Quentin and Laon normals, Météo-France 1991-2020, rounded): daily means ≈ 3 °C in
// mid-January and ≈ 18.5 °C in late July, annual mean ≈ 10.5-11 °C; diurnal range ≈ 6 °C in winter and
// ≈ 10 °C in summer. A sinusoid cannot hit all three exactly: mean 10.6 ± 7.8 gives 2.8 and 18.4.
const (
	annualMeanC  = 10.6
	seasonalAmpC = 7.8
	// Half diurnal range: diurnalAmpC ∓ diurnalSeasonC, i.e. ±3 °C in January and ±5 °C in July.
	diurnalAmpC    = 4.0
	diurnalSeasonC = 1.0
	// Weather fronts: RMS of the multi-day noise, ≈ the spread of Aisne daily means around the normal.
	frontsRMSC = 3.3
	latitude   = 49.6 // Laon
	longitude  = 3.5  // degrees east: solar time = UTC + 14 min
	// The daily maximum comes about 2.5 h after solar noon: 15:15 CET, 16:15 CEST.
	peakSolarHour = 14.5
	tropicalYearS = 365.2422 * 86400
)

var (
	// coldestS is the reference mid-winter moment: the seasonal cycle is coldest every 18 January and
	// warmest six months later, around 19 July.
	coldestS = float64(time.Date(2000, 1, 18, 0, 0, 0, 0, time.UTC).Unix())
	// solsticeS is a winter solstice, for the length of the day (sunrise drives the diurnal minimum).
	solsticeS = float64(time.Date(2000, 12, 21, 13, 37, 0, 0, time.UTC).Unix())
)

// wave is one component of the weather-front noise.
type wave struct{ omega, amp, phase float64 }

// Weather is a deterministic Aisne climate: seasonal mean + diurnal cycle + weather fronts. Its methods are
// pure functions of t, continuous in t, and safe for concurrent use.
type Weather struct {
	waves [7]wave
}

// NewWeather draws the weather fronts from seed: five sinusoids with periods of 2 to 10 days (the passage of
// lows and highs), one of 15 to 30 days (persistent spells) and one of 60 to 120 days (a mild or harsh
// winter: monthly means and yearly degree days differ from one year to the next, so climate correction has
// something to correct), random phases, scaled to frontsRMSC. A sum of sinusoids is smooth, so consecutive
// samples never jump, yet it decorrelates within a few days.
func NewWeather(seed uint64) *Weather {
	r := rand.New(rand.NewPCG(seed, 0x57EA7E5)) // own stream: fronts must not correlate with building noise
	w := &Weather{}
	var sumSq float64
	for i := range w.waves {
		days := 2 * math.Pow(5, r.Float64()) // log-uniform 2..10 days
		amp := 0.8 + 0.4*r.Float64()
		switch i {
		case 5:
			days, amp = 15+15*r.Float64(), 0.6
		case 6:
			days, amp = 60+60*r.Float64(), 0.6
		}
		w.waves[i] = wave{omega: 2 * math.Pi / (days * 86400), amp: amp, phase: 2 * math.Pi * r.Float64()}
		sumSq += amp * amp
	}
	k := frontsRMSC / math.Sqrt(sumSq/2) // RMS of Σ a·sin is sqrt(Σa²/2)
	for i := range w.waves {
		w.waves[i].amp *= k
	}
	return w
}

// seconds since the Unix epoch as a float, so the models are continuous below the second.
func seconds(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())*1e-9 }

// Temperature returns the outdoor air temperature (°C) at t.
func (w *Weather) Temperature(t time.Time) float64 {
	temp, _ := w.temperatures(t)
	return temp
}

// MeanTemperature returns the temperature without its diurnal cycle: the day-scale mean a heating
// regulation's 24-hour running average sees, and what decides whether the heating season is on.
func (w *Weather) MeanTemperature(t time.Time) float64 {
	_, mean := w.temperatures(t)
	return mean
}

// Outdoor is the weather at one instant, as the building models use it.
type Outdoor struct {
	TemperatureC float64 // Temperature
	MeanC        float64 // MeanTemperature
}

// Outdoor returns Temperature and MeanTemperature at t, computed together (the fronts are most of the cost).
func (w *Weather) Outdoor(t time.Time) Outdoor {
	temp, mean := w.temperatures(t)
	return Outdoor{TemperatureC: temp, MeanC: mean}
}

func (w *Weather) temperatures(t time.Time) (temp, mean float64) {
	s := seconds(t)
	c := math.Cos(2 * math.Pi * (s - coldestS) / tropicalYearS)
	mean = annualMeanC - seasonalAmpC*c + w.fronts(s)
	return mean + (diurnalAmpC-diurnalSeasonC*c)*diurnalShape(s), mean
}

func (w *Weather) fronts(s float64) float64 {
	var sum float64
	for _, v := range w.waves {
		sum += v.amp * math.Sin(v.omega*s+v.phase)
	}
	return sum
}

// diurnalShape is the daily cycle in [-1, 1]: -1 at sunrise, +1 at peakSolarHour, a half cosine up from
// sunrise to the peak and a longer one down to the next sunrise. Both halves average zero, so the cycle does
// not shift the daily mean, and the shape is continuous with zero slope at both turning points.
func diurnalShape(s float64) float64 {
	decl := -23.44 * math.Pi / 180 * math.Cos(2*math.Pi*(s-solsticeS)/tropicalYearS)
	cosH := -math.Tan(latitude*math.Pi/180) * math.Tan(decl)
	cosH = math.Max(-1, math.Min(1, cosH))
	sunrise := 12 - math.Acos(cosH)*12/math.Pi // solar hours
	h := math.Mod(s/3600+longitude/15, 24)
	if h < 0 {
		h += 24
	}
	if h >= sunrise && h < peakSolarHour {
		return -math.Cos(math.Pi * (h - sunrise) / (peakSolarHour - sunrise))
	}
	dh := h - peakSolarHour
	if dh < 0 {
		dh += 24
	}
	return math.Cos(math.Pi * dh / (sunrise + 24 - peakSolarHour))
}

// DegreeDays returns the heating degree days (DJU) of the Paris civil day of day, Météo-France method:
// max(0, base − (Tmin + Tmax)/2), Tmin and Tmax taken from 10-minute samples from local midnight to the next
// (23 or 25 hours on DST days). Base 18 °C is the French convention.
func (w *Weather) DegreeDays(day time.Time, base float64) float64 {
	y, m, d := day.In(paris).Date()
	from, to := time.Date(y, m, d, 0, 0, 0, 0, paris), time.Date(y, m, d+1, 0, 0, 0, 0, paris)
	lo, hi := math.Inf(1), math.Inf(-1)
	for t := from; t.Before(to); t = t.Add(10 * time.Minute) {
		v := w.Temperature(t)
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return math.Max(0, base-(lo+hi)/2)
}
