package live

import (
	"fmt"
	"runtime"
	"testing"

	hv "github.com/useda02/hyperviseur"
)

func TestState(t *testing.T) {
	s := New()
	s.Update([]hv.Reading{
		{Device: "d", Metric: hv.PowerW, Value: 1, Time: 100},
		{Device: "d", Metric: hv.EnergyKWh, Value: 10, Time: 100, Site: "s"},
		{Device: "d", Metric: hv.PowerW, Value: 2, Time: 200},
		{Device: "d", Metric: hv.PowerW, Value: 0, Time: 150}, // late: older than the newest
		{Device: "e", Metric: hv.LevelPct, Value: 50, Time: 300},
	})
	got, ok := s.Latest("d")
	want := []hv.Reading{{Device: "d", Metric: hv.EnergyKWh, Value: 10, Time: 100}, {Device: "d", Metric: hv.PowerW, Value: 2, Time: 200}}
	if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Latest(d) = %v %v, want %v", got, ok, want)
	}
	if s.LastSeen("d") != 200 || s.LastSeen("e") != 300 || s.LastSeen("nope") != 0 {
		t.Fatalf("LastSeen: d %d, e %d, nope %d", s.LastSeen("d"), s.LastSeen("e"), s.LastSeen("nope"))
	}
	if got, ok := s.Latest("nope"); ok || len(got) != 0 {
		t.Fatalf("Latest(nope) = %v %v", got, ok)
	}
}

// BenchmarkStateMemory reports the live state's heap per device for a fleet whose devices report four
// metrics each (the service's budget is 2 KiB a device in all).
func BenchmarkStateMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New()
		for i := range n {
			dev := fmt.Sprintf("bench-%06d", i)
			s.Update([]hv.Reading{
				{Device: dev, Metric: hv.EnergyKWh, Value: 1, Time: 1}, {Device: dev, Metric: hv.EnergyKWh.Delta(), Value: 1, Time: 1},
				{Device: dev, Metric: hv.PowerW, Value: 1, Time: 1}, {Device: dev, Metric: hv.LevelPct, Value: 1, Time: 1},
			})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/device")
		runtime.KeepAlive(s)
	}
}
