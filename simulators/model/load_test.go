package model

import (
	"math"
	"testing"
	"time"
)

// meanOver averages f every 10 minutes over [from, to) where keep says so.
func meanOver(from, to time.Time, keep func(time.Time) bool, f func(time.Time) float64) float64 {
	var sum float64
	var n int
	for t := from; t.Before(to); t = t.Add(10 * time.Minute) {
		if keep == nil || keep(t) {
			sum += f(t)
			n++
		}
	}
	return sum / float64(n)
}

func weekend(t time.Time) bool {
	wd := t.In(paris).Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

func TestSchoolWeekdayWeekendRatio(t *testing.T) {
	w := NewWeather(1)
	for _, heating := range []string{HeatingGas, HeatingNetwork, HeatingNone} {
		for seed := uint64(1); seed <= 5; seed++ {
			b := Building{Usage: UsageEcole, SurfaceM2: 1200, Heating: heating, Seed: seed}
			// Three term-time weeks of November 2025 (after the 11th).
			from, to := at(2025, 11, 17, 0, 0), at(2025, 12, 8, 0, 0)
			week := meanOver(from, to, func(t time.Time) bool { return !weekend(t) }, func(t time.Time) float64 { return b.ElectricPowerW(t, w) })
			end := meanOver(from, to, weekend, func(t time.Time) float64 { return b.ElectricPowerW(t, w) })
			if r := week / end; r <= 1.8 {
				t.Errorf("%s seed %d: weekday/weekend electricity %.2f (%.0f/%.0f W), want > 1.8", heating, seed, r, week, end)
			} else if seed == 1 {
				t.Logf("%s: weekday %.0f W, weekend %.0f W, ratio %.2f", heating, week, end, r)
			}
		}
	}
}

func TestGasWinterSummerRatio(t *testing.T) {
	w := NewWeather(1)
	for _, u := range Usages() {
		if u == UsagePiscine {
			continue // heats its water all year: the ratio is not its signature
		}
		b := Building{Usage: u, SurfaceM2: 800, Heating: HeatingGas, Seed: 9}
		gas := func(t time.Time) float64 { return b.GasFlowM3h(t, w) }
		jan := meanOver(at(2026, 1, 1, 0, 0), at(2026, 2, 1, 0, 0), nil, gas)
		jul := meanOver(at(2025, 7, 1, 0, 0), at(2025, 8, 1, 0, 0), nil, gas)
		t.Logf("%s: January %.2f m³/h, July %.3f m³/h", u, jan, jul)
		if jul <= 0 || jan/jul <= 5 {
			t.Errorf("%s: January/July gas %.3f/%.3f, want ratio > 5 and July > 0 (hot water)", u, jan, jul)
		}
	}
}

func TestWaterNightVersusDay(t *testing.T) {
	for _, u := range Usages() {
		b := Building{Usage: u, SurfaceM2: 1000, Heating: HeatingGas, Seed: 4}
		from, to := at(2025, 11, 17, 0, 0), at(2025, 11, 29, 0, 0) // term time, no public holiday
		day := meanOver(from, to, func(t time.Time) bool {
			h := t.In(paris).Hour()
			return h >= 8 && h < 18 && Occupancy(u, t) > 0
		}, b.WaterFlowM3h)
		night := meanOver(from, to, func(t time.Time) bool { return t.In(paris).Hour() == 3 }, b.WaterFlowM3h)
		if night >= 0.1*day {
			t.Errorf("%s: water at 3 a.m. %.4f m³/h, daytime %.4f m³/h: want < 10 %%", u, night, day)
		}
	}
}

func TestGasFlowIsHeatOverCalorificValue(t *testing.T) {
	w := NewWeather(2)
	tt := at(2026, 1, 13, 10, 0)
	b := Building{Usage: UsageMairie, SurfaceM2: 500, Heating: HeatingGas, Seed: 3}
	heat := b.HeatingPowerW(tt, w)
	if want := heat / 1000 / (10.5 * 0.9); math.Abs(b.GasFlowM3h(tt, w)-want) > 1e-12 {
		t.Errorf("gas %.6f m³/h, want %.6f", b.GasFlowM3h(tt, w), want)
	}
	// 500 m² at ≈ 2 W/K/m² and ≈ 15 K: tens of kW, a few m³/h.
	if heat < 5e3 || heat > 40e3 {
		t.Errorf("heat demand %.0f W for a 500 m² mairie in January", heat)
	}
	b.Heating = HeatingNetwork
	if b.GasFlowM3h(tt, w) != 0 || b.HeatingPowerW(tt, w) == 0 {
		t.Error("a heat-network building burns no gas but has a heat demand")
	}
	b.Heating = HeatingNone
	if b.HeatingPowerW(tt, w) != 0 {
		t.Error("an unheated building has a heat demand")
	}
}

func TestElectricHeatingShowsOnElectricity(t *testing.T) {
	w := NewWeather(2)
	tt := at(2026, 1, 13, 10, 0)
	gas := Building{Usage: UsageEcole, SurfaceM2: 600, Heating: HeatingGas, Seed: 3}
	elec := gas
	elec.Heating = HeatingElectric
	if d := elec.ElectricPowerW(tt, w) - gas.ElectricPowerW(tt, w); math.Abs(d-elec.HeatingPowerW(tt, w)+0.3*600) > 1e-6 {
		t.Errorf("electric heating adds %.0f W, want the heat demand %.0f W (less the gas pumps)", d, elec.HeatingPowerW(tt, w))
	}
}

func TestSetbackAndSummerCutoff(t *testing.T) {
	w := NewWeather(1)
	b := Building{Usage: UsageMairie, SurfaceM2: 500, Heating: HeatingNetwork, Seed: 1}
	// A January week: nights (setback) need less than office hours.
	day := meanOver(at(2026, 1, 12, 0, 0), at(2026, 1, 17, 0, 0), func(t time.Time) bool { h := t.In(paris).Hour(); return h >= 10 && h < 16 }, func(t time.Time) float64 { return b.HeatingPowerW(t, w) })
	night := meanOver(at(2026, 1, 12, 0, 0), at(2026, 1, 17, 0, 0), func(t time.Time) bool { h := t.In(paris).Hour(); return h >= 0 && h < 4 }, func(t time.Time) float64 { return b.HeatingPowerW(t, w) })
	if night >= day {
		t.Errorf("night heat %.0f W not below office hours %.0f W", night, day)
	}
	// July: hot water only.
	dhwMax := b.SurfaceM2 * (params[uMairie].dhwW + params[uMairie].dhwOccW) * 1.03
	for tt := at(2025, 7, 1, 0, 0); tt.Before(at(2025, 8, 1, 0, 0)); tt = tt.Add(time.Hour) {
		if h := b.HeatingPowerW(tt, w); h > dhwMax {
			t.Fatalf("heat %.0f W in July at %s, want hot water only (≤ %.0f W)", h, tt, dhwMax)
		}
	}
}

func TestSampleMatchesMethods(t *testing.T) {
	w := NewWeather(8)
	for _, u := range Usages() {
		for _, h := range []string{HeatingGas, HeatingNetwork, HeatingElectric, HeatingNone} {
			b := Building{Usage: u, SurfaceM2: 750, Heating: h, Seed: 11}
			for tt := at(2025, 12, 1, 0, 0); tt.Before(at(2025, 12, 3, 0, 0)); tt = tt.Add(47 * time.Minute) {
				s := b.Sample(tt, w)
				if s.ElectricW != b.ElectricPowerW(tt, w) || s.HeatW != b.HeatingPowerW(tt, w) ||
					s.GasM3h != b.GasFlowM3h(tt, w) || s.WaterM3h != b.WaterFlowM3h(tt) {
					t.Fatalf("%s/%s at %s: Sample %+v disagrees with the methods", u, h, tt, s)
				}
				if s.ElectricW <= 0 || s.HeatW < 0 || s.WaterM3h < 0 || s.GasM3h < 0 {
					t.Fatalf("%s/%s at %s: negative or zero value %+v", u, h, tt, s)
				}
			}
		}
	}
}

func TestBuildingDeterministicAndSeeded(t *testing.T) {
	w := NewWeather(1)
	tt := at(2025, 11, 18, 10, 5)
	a := Building{Usage: UsageCollege, SurfaceM2: 4000, Heating: HeatingGas, Seed: 1}
	b := a
	c := a
	c.Seed = 2
	if a.Sample(tt, w) != b.Sample(tt, w) {
		t.Error("same building, same instant, different values")
	}
	if a.Sample(tt, w) == c.Sample(tt, w) {
		t.Error("different seeds give identical buildings")
	}
}

// Yearly intensities land in the ranges of French public buildings (kWh per m² per year).
func TestAnnualIntensities(t *testing.T) {
	w := NewWeather(1)
	tests := []struct {
		usage          string
		elecLo, elecHi float64
		heatLo, heatHi float64
	}{
		{UsageMairie, 20, 80, 60, 220},
		{UsageEcole, 12, 50, 60, 220},
		{UsageCollege, 15, 60, 60, 220},
		{UsageGymnase, 8, 50, 30, 180},
		{UsageSalleDesFetes, 8, 50, 30, 200},
		{UsageMediatheque, 20, 80, 60, 220},
		{UsagePiscine, 100, 300, 250, 700},
	}
	for _, tt := range tests {
		t.Run(tt.usage, func(t *testing.T) {
			b := Building{Usage: tt.usage, SurfaceM2: 1000, Heating: HeatingGas, Seed: 5}
			var elec, heat, water float64
			for ts := at(2025, 1, 1, 0, 30); ts.Year() == 2025; ts = ts.Add(time.Hour) {
				s := b.Sample(ts, w)
				elec += s.ElectricW / 1000
				heat += s.HeatW / 1000
				water += s.WaterM3h
			}
			elec, heat, water = elec/b.SurfaceM2, heat/b.SurfaceM2, water/b.SurfaceM2
			t.Logf("%s: electricity %.0f kWh/m², heat %.0f kWh/m², water %.2f m³/m² a year", tt.usage, elec, heat, water)
			if elec < tt.elecLo || elec > tt.elecHi || heat < tt.heatLo || heat > tt.heatHi {
				t.Errorf("electricity %.0f (want %g-%g), heat %.0f (want %g-%g) kWh/m²", elec, tt.elecLo, tt.elecHi, heat, tt.heatLo, tt.heatHi)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	t0 := date(2025, 1, 1)
	tests := []struct {
		name  string
		scale float64
		steps []struct {
			dt   time.Duration
			rate float64
		}
		want float64
	}{
		{"1 kW for an hour is 1 kWh", ScaleWToKWh, []struct {
			dt   time.Duration
			rate float64
		}{{0, 1000}, {time.Hour, 1000}}, 1},
		{"ramp 0 → 1 kW over an hour is 0.5 kWh", ScaleWToKWh, []struct {
			dt   time.Duration
			rate float64
		}{{0, 0}, {time.Hour, 1000}}, 0.5},
		{"2 m³/h for 30 min in three steps", ScaleM3hToM3, []struct {
			dt   time.Duration
			rate float64
		}{{0, 2}, {10 * time.Minute, 2}, {20 * time.Minute, 2}, {30 * time.Minute, 2}}, 1},
		{"time going back is ignored", ScaleWToKWh, []struct {
			dt   time.Duration
			rate float64
		}{{0, 1000}, {time.Hour, 1000}, {30 * time.Minute, 5000}, {2 * time.Hour, 1000}}, 2},
		{"same instant replaces the rate", ScaleWToKWh, []struct {
			dt   time.Duration
			rate float64
		}{{0, 0}, {0, 2000}, {time.Hour, 2000}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewIndex(100, tt.scale)
			var got float64
			for _, s := range tt.steps {
				got = x.Advance(t0.Add(s.dt), s.rate)
			}
			if math.Abs(got-100-tt.want) > 1e-9 {
				t.Errorf("index advanced by %.6f, want %.6f", got-100, tt.want)
			}
		})
	}
}

// The index of a simulated electricity meter agrees with its power readings: integrating the model every
// 10 minutes over a day gives the same energy as every minute, within 1 %.
func TestIndexFollowsPower(t *testing.T) {
	w := NewWeather(1)
	b := Building{Usage: UsageEcole, SurfaceM2: 1000, Heating: HeatingElectric, Seed: 1}
	fine, coarse := NewIndex(0, ScaleWToKWh), NewIndex(0, ScaleWToKWh)
	for tt := at(2026, 1, 13, 0, 0); !tt.After(at(2026, 1, 14, 0, 0)); tt = tt.Add(time.Minute) {
		p := b.ElectricPowerW(tt, w)
		fine.Advance(tt, p)
		if tt.Minute()%10 == 0 {
			coarse.Advance(tt, p)
		}
	}
	if math.Abs(coarse.Value-fine.Value) > 0.01*fine.Value {
		t.Errorf("10-minute index %.1f kWh, 1-minute %.1f kWh", coarse.Value, fine.Value)
	}
}
