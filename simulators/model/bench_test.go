package model

import (
	"testing"
	"time"
)

// The figures size a fleet: one building's values at one instant, for a 100k-device simulation and the
// 13-month hourly backfill (≈ 9,500 instants per building).

var sink float64

// minute i of 2026, wrapping: the benchmarks must stay inside the precomputed calendar (1990-2099).
func minute(i int) time.Duration { return time.Duration(i%(365*24*60)) * time.Minute }

func BenchmarkBuildingSample(b *testing.B) {
	w := NewWeather(1)
	bl := Building{Usage: UsageCollege, SurfaceM2: 4000, Heating: HeatingGas, Seed: 7}
	t0 := at(2026, 1, 1, 0, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := bl.Sample(t0.Add(minute(i)), w)
		sink += s.ElectricW
	}
}

// The fleet's backfill path: one Outdoor per instant shared by every building, then SampleOutdoor.
func BenchmarkBuildingSampleOutdoor(b *testing.B) {
	w := NewWeather(1)
	bl := Building{Usage: UsageCollege, SurfaceM2: 4000, Heating: HeatingGas, Seed: 7}
	t0 := at(2026, 1, 1, 0, 0)
	o := w.Outdoor(t0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := bl.SampleOutdoor(t0.Add(minute(i)), o)
		sink += s.ElectricW
	}
}

// The four methods called one by one, as a caller that does not use Sample would.
func BenchmarkBuildingFourMethods(b *testing.B) {
	w := NewWeather(1)
	bl := Building{Usage: UsageCollege, SurfaceM2: 4000, Heating: HeatingGas, Seed: 7}
	t0 := at(2026, 1, 1, 0, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t := t0.Add(minute(i))
		sink += bl.ElectricPowerW(t, w) + bl.HeatingPowerW(t, w) + bl.GasFlowM3h(t, w) + bl.WaterFlowM3h(t)
	}
}

func BenchmarkTemperature(b *testing.B) {
	w := NewWeather(1)
	t0 := at(2026, 1, 1, 0, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += w.Temperature(t0.Add(minute(i)))
	}
}

func BenchmarkOccupancy(b *testing.B) {
	t0 := at(2026, 1, 1, 0, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += Occupancy(UsageEcole, t0.Add(minute(i)))
	}
}

func BenchmarkLampPowerW(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += LampPowerW(70, float64(i%101), i%3 == 0)
	}
}
