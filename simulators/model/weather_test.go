package model

import (
	"math"
	"testing"
	"time"
)

func monthMean(w *Weather, y int, m time.Month) float64 {
	var sum float64
	var n int
	for t := date(y, m, 1); t.Month() == m; t = t.Add(time.Hour) {
		sum += w.Temperature(t)
		n++
	}
	return sum / float64(n)
}

func TestWeatherSeasons(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 2025} {
		w := NewWeather(seed)
		jan, jul := monthMean(w, 2025, time.January), monthMean(w, 2025, time.July)
		var year float64
		for m := time.January; m <= time.December; m++ {
			year += monthMean(w, 2025, m) / 12
		}
		t.Logf("seed %d: January %.1f °C, July %.1f °C, year %.1f °C", seed, jan, jul, year)
		if math.Abs(jan-3) > 2 {
			t.Errorf("seed %d: January mean %.2f °C, want 3 ± 2", seed, jan)
		}
		if math.Abs(jul-18.5) > 2.5 {
			t.Errorf("seed %d: July mean %.2f °C, want 18.5 ± 2.5", seed, jul)
		}
		if math.Abs(year-10.5) > 1 {
			t.Errorf("seed %d: annual mean %.2f °C, want 10.5 ± 1", seed, year)
		}
	}
}

// Averaged by local hour over a year, the fronts cancel and the diurnal cycle shows: warmest mid-afternoon,
// coldest around sunrise.
func TestWeatherDiurnal(t *testing.T) {
	w := NewWeather(7)
	for _, season := range []struct {
		name       string
		from, to   time.Time
		minH, maxH [2]int
	}{
		{"year", date(2025, 1, 1), date(2026, 1, 1), [2]int{4, 8}, [2]int{14, 17}},
		{"winter", date(2025, 1, 1), date(2025, 3, 1), [2]int{6, 9}, [2]int{14, 16}},
		{"summer", date(2025, 6, 1), date(2025, 8, 1), [2]int{4, 7}, [2]int{15, 17}},
	} {
		t.Run(season.name, func(t *testing.T) {
			var sum [24]float64
			for tt := season.from; tt.Before(season.to); tt = tt.Add(10 * time.Minute) {
				sum[tt.In(paris).Hour()] += w.Temperature(tt)
			}
			lo, hi := 0, 0
			for h := range sum {
				if sum[h] < sum[lo] {
					lo = h
				}
				if sum[h] > sum[hi] {
					hi = h
				}
			}
			if hi < season.maxH[0] || hi > season.maxH[1] {
				t.Errorf("warmest local hour %d, want %d-%d", hi, season.maxH[0], season.maxH[1])
			}
			if lo < season.minH[0] || lo > season.minH[1] {
				t.Errorf("coldest local hour %d, want %d-%d", lo, season.minH[0], season.minH[1])
			}
		})
	}
}

func TestWeatherContinuous(t *testing.T) {
	w := NewWeather(1)
	prev := w.Temperature(date(2025, 1, 1))
	var worst float64
	for tt := date(2025, 1, 1).Add(10 * time.Minute); tt.Before(date(2026, 1, 1)); tt = tt.Add(10 * time.Minute) {
		v := w.Temperature(tt)
		worst = math.Max(worst, math.Abs(v-prev))
		prev = v
	}
	t.Logf("largest 10-minute step: %.3f °C", worst)
	if worst >= 1 {
		t.Errorf("largest 10-minute step %.3f °C, want < 1", worst)
	}
	// Across midnight and the DST changes, at the second.
	for _, tt := range []time.Time{at(2025, 3, 30, 1, 59), at(2025, 10, 26, 2, 59), date(2025, 6, 1).Add(-time.Second)} {
		if d := math.Abs(w.Temperature(tt.Add(time.Second)) - w.Temperature(tt)); d > 0.01 {
			t.Errorf("jump of %.3f °C at %s", d, tt)
		}
	}
}

func TestWeatherDeterministic(t *testing.T) {
	a, b, c := NewWeather(5), NewWeather(5), NewWeather(6)
	differ := false
	for tt := date(2025, 1, 1); tt.Before(date(2025, 2, 1)); tt = tt.Add(time.Hour) {
		if a.Temperature(tt) != b.Temperature(tt) {
			t.Fatalf("same seed, different temperature at %s", tt)
		}
		if a.Temperature(tt) != c.Temperature(tt) {
			differ = true
		}
	}
	if !differ {
		t.Error("seeds 5 and 6 give the same series")
	}
}

func TestWeatherFrontsSpread(t *testing.T) {
	w := NewWeather(3)
	var sum, sq float64
	var n int
	for tt := date(2025, 1, 1); tt.Before(date(2027, 1, 1)); tt = tt.Add(3 * time.Hour) {
		f := w.fronts(seconds(tt))
		sum += f
		sq += f * f
		n++
	}
	mean, sd := sum/float64(n), math.Sqrt(sq/float64(n)-(sum/float64(n))*(sum/float64(n)))
	if math.Abs(mean) > 0.5 || sd < 2.5 || sd > 4 {
		t.Errorf("fronts mean %.2f sd %.2f, want ≈ 0 and 3-4 °C", mean, sd)
	}
}

func TestDegreeDays(t *testing.T) {
	w := NewWeather(1)
	var year float64
	for d := date(2025, 1, 1); d.Year() == 2025; d = d.AddDate(0, 0, 1) {
		dd18, dd20 := w.DegreeDays(d, 18), w.DegreeDays(d, 20)
		if dd18 < 0 || dd20 < dd18 {
			t.Fatalf("%s: DJU18 %.2f DJU20 %.2f", d.Format("2006-01-02"), dd18, dd20)
		}
		// Same Tmin/Tmax: raising the base by 2 K adds exactly 2 whenever both are positive.
		if dd18 > 0 && math.Abs(dd20-dd18-2) > 1e-9 {
			t.Fatalf("%s: DJU20 − DJU18 = %.4f, want 2", d.Format("2006-01-02"), dd20-dd18)
		}
		year += dd18
	}
	t.Logf("DJU base 18 for 2025: %.0f", year)
	// Saint-Quentin: ≈ 2600-2900 DJU (base 18) a year.
	if year < 2200 || year > 3300 {
		t.Errorf("annual DJU %.0f, want 2200-3300", year)
	}
	if jan, jul := w.DegreeDays(date(2025, 1, 15), 18), w.DegreeDays(date(2025, 7, 20), 18); jan <= jul {
		t.Errorf("DJU January %.1f not above July %.1f", jan, jul)
	}
}
