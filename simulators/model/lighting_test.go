package model

import (
	"math"
	"testing"
	"time"
)

func TestLampPowerW(t *testing.T) {
	tests := []struct {
		name            string
		nominal, level  float64
		led             bool
		want, tolerance float64
	}{
		{"LED full", 40, 100, true, 40, 1e-9},
		{"LED off draws standby", 40, 0, true, 0.5, 1e-9},
		{"LED 50 % is about half", 40, 50, true, 22, 1e-9}, // 40 × (0.1 + 0.9 × 0.5)
		{"LED 10 %", 100, 10, true, 19, 1e-9},
		{"LED above 100 % clamps", 40, 130, true, 40, 1e-9},
		{"LED negative level is off", 40, -5, true, 0.5, 1e-9},
		{"LED NaN level is off", 40, math.NaN(), true, 0.5, 0},
		{"sodium full", 150, 100, false, 150, 1e-9},
		{"sodium 50 %: ballast losses + arc", 150, 50, false, 150 * (0.15 + 0.85*math.Pow(0.5, 0.7)), 1e-9},
		{"sodium cannot dim below 50 %", 150, 20, false, 150 * (0.15 + 0.85*math.Pow(0.5, 0.7)), 1e-9},
		{"sodium off", 150, 0, false, 0.5, 1e-9},
		{"no nominal power", 0, 100, true, 0, 0},
		{"tiny LED never below standby", 2, 1, true, 0.5, 1e-9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LampPowerW(tt.nominal, tt.level, tt.led); math.Abs(got-tt.want) > tt.tolerance {
				t.Errorf("LampPowerW(%g, %g, %v) = %.4f, want %.4f", tt.nominal, tt.level, tt.led, got, tt.want)
			}
		})
	}
}

func TestLampPowerMonotonic(t *testing.T) {
	for _, led := range []bool{true, false} {
		for _, nominal := range []float64{3, 18, 40, 70, 100, 150, 250, 400} {
			prev := LampPowerW(nominal, 0, led)
			for l := 0.5; l <= 100; l += 0.5 {
				p := LampPowerW(nominal, l, led)
				if p < prev {
					t.Fatalf("led=%v nominal %g: power drops from %.3f to %.3f at level %g", led, nominal, prev, p, l)
				}
				prev = p
			}
		}
	}
}

func TestLEDHalfLevelIsHalfPower(t *testing.T) {
	for _, nominal := range []float64{20, 40, 60, 100} {
		if r := LampPowerW(nominal, 50, true) / LampPowerW(nominal, 100, true); math.Abs(r-0.5) > 0.1 {
			t.Errorf("nominal %g: LED at 50 %% draws %.2f of full power", nominal, r)
		}
	}
}

func TestSodiumAboveLinear(t *testing.T) {
	for l := 50.0; l < 100; l += 5 {
		if f := LampPowerW(100, l, false) / 100; f <= l/100 {
			t.Errorf("sodium at %g %% draws %.3f of nominal, want above linear", l, f)
		}
	}
}

func TestOperatingHours(t *testing.T) {
	t0 := at(2025, 12, 1, 17, 0)
	tests := []struct {
		name  string
		steps []struct {
			dt time.Duration
			on bool
		}
		want float64
	}{
		{"one night on", []struct {
			dt time.Duration
			on bool
		}{{0, true}, {13 * time.Hour, false}}, 13},
		{"on, reported every 10 min, then off", []struct {
			dt time.Duration
			on bool
		}{{0, true}, {10 * time.Minute, true}, {20 * time.Minute, true}, {30 * time.Minute, false}, {2 * time.Hour, false}}, 0.5},
		{"off hours do not count", []struct {
			dt time.Duration
			on bool
		}{{0, false}, {5 * time.Hour, true}, {6 * time.Hour, false}}, 1},
		{"time going back is ignored", []struct {
			dt time.Duration
			on bool
		}{{0, true}, {2 * time.Hour, true}, {time.Hour, false}, {3 * time.Hour, false}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := OperatingHours{Hours: 1000}
			var got float64
			for _, s := range tt.steps {
				got = o.Advance(t0.Add(s.dt), s.on)
			}
			if math.Abs(got-1000-tt.want) > 1e-9 {
				t.Errorf("counted %.4f h, want %.4f h", got-1000, tt.want)
			}
		})
	}
}

// TestPresenceDetected: a street with presence detection sees someone in nearly every 5-minute interval by
// day and in few of them in the small hours, more on weekend nights; asking again gives the same answer.
func TestPresenceDetected(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	start := time.Date(2027, 2, 1, 0, 0, 0, 0, paris) // a Monday
	share := func(seed uint64, keep func(time.Time) bool) float64 {
		n, hit := 0, 0
		for at := start; at.Before(start.AddDate(0, 0, 28)); at = at.Add(5 * time.Minute) {
			if !keep(at) {
				continue
			}
			n++
			if PresenceDetected(seed, at) {
				hit++
			}
			if PresenceDetected(seed, at) != PresenceDetected(seed, at.Add(4*time.Minute)) {
				t.Fatalf("one interval, two answers at %s", at)
			}
		}
		return float64(hit) / float64(n)
	}
	for seed := range uint64(3) {
		day := share(seed, func(at time.Time) bool { return at.Hour() >= 9 && at.Hour() < 18 })
		week := share(seed, func(at time.Time) bool {
			return at.Hour() < 4 && at.Weekday() >= time.Tuesday && at.Weekday() <= time.Friday
		})
		weekend := share(seed, func(at time.Time) bool {
			return at.Hour() < 4 && (at.Weekday() == time.Saturday || at.Weekday() == time.Sunday)
		})
		if day < 0.9 || week < 0.06 || week > 0.2 || weekend <= week {
			t.Errorf("seed %d: someone in %.0f %% of day intervals, %.0f %% of weeknight ones, %.0f %% on weekend nights",
				seed, 100*day, 100*week, 100*weekend)
		}
	}
}
