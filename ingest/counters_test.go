package ingest

import (
	"testing"

	hv "github.com/useda02/hyperviseur"
)

func TestCountersDelta(t *testing.T) {
	const hour = 3600_000
	meter := &hv.Device{ID: "m", MaxPowerW: 10_000, RegisterMax: 100_000}
	type step struct {
		t     int64
		v     float64
		delta float64
		flag  hv.CounterFlag
		ok    bool
	}
	tests := []struct {
		name   string
		metric hv.Metric
		dev    *hv.Device
		steps  []step
	}{
		{"first reading has no delta, then rises", hv.EnergyKWh, meter, []step{
			{0, 100, 0, hv.FlagNone, false},
			{hour, 105, 5, hv.FlagNone, true},
			{2 * hour, 105, 0, hv.FlagNone, true},
		}},
		{"decrease is a reset: delta is the new value", hv.EnergyKWh, meter, []step{
			{0, 500, 0, hv.FlagNone, false},
			{hour, 3, 3, hv.FlagReset, true},
		}},
		{"wrap near the register top is a rollover", hv.EnergyKWh, meter, []step{
			{0, 99_998, 0, hv.FlagNone, false},
			{hour, 2, 4, hv.FlagRollover, true},
		}},
		{"rise above max power x interval is a jump, not counted", hv.EnergyKWh, meter, []step{
			{0, 100, 0, hv.FlagNone, false},
			{hour, 100 + 11, 0, hv.FlagJump, true}, // 11 kWh in 1 h > 10 kW × 1 h × 1.05
			{2 * hour, 111 + 10, 10, hv.FlagNone, true},
		}},
		{"duplicate and out-of-order readings yield nothing and keep the state", hv.EnergyKWh, meter, []step{
			{0, 100, 0, hv.FlagNone, false},
			{2 * hour, 110, 10, hv.FlagNone, true},
			{2 * hour, 110, 0, hv.FlagNone, false},
			{hour, 104, 0, hv.FlagNone, false},
			{3 * hour, 112, 2, hv.FlagNone, true},
		}},
		{"unregistered device: no jump check, resets still seen", hv.EnergyKWh, nil, []step{
			{0, 0, 0, hv.FlagNone, false},
			{1000, 1e6, 1e6, hv.FlagNone, true},
			{2000, 5, 5, hv.FlagReset, true},
		}},
		{"operating hours cannot rise faster than time", hv.OperatingHours, nil, []step{
			{0, 10, 0, hv.FlagNone, false},
			{hour, 11, 1, hv.FlagNone, true},
			{2 * hour, 15, 0, hv.FlagJump, true},
		}},
		{"decimal indexes give exact decimal deltas", hv.EnergyKWh, meter, []step{
			{0, 5116.692, 0, hv.FlagNone, false},
			{hour, 5116.705, 0.013, hv.FlagNone, true},
		}},
		{"volume has no physical bound", hv.VolumeM3, meter, []step{
			{0, 1, 0, hv.FlagNone, false},
			{1000, 1e5, 1e5 - 1, hv.FlagNone, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCounters()
			for i, s := range tt.steps {
				d, flag, ok := c.Observe(hv.Reading{Device: "m", Metric: tt.metric, Time: s.t, Value: s.v}, tt.dev)
				if ok != s.ok || flag != s.flag || d != s.delta {
					t.Errorf("step %d (t=%d v=%g): got delta=%g flag=%s ok=%v, want %g %s %v",
						i, s.t, s.v, d, flag, ok, s.delta, s.flag, s.ok)
				}
			}
		})
	}
}

func TestCountersRestoreContinuesInterval(t *testing.T) {
	c := NewCounters()
	c.Restore([]hv.Reading{
		{Device: "a", Metric: hv.EnergyKWh, Time: 1000, Value: 50},
		{Device: "a", Metric: hv.EnergyKWh, Time: 500, Value: 40}, // older: ignored
		{Device: "a", Metric: hv.PowerW, Time: 2000, Value: 7},    // not an index: ignored
	})
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1", c.Len())
	}
	d, _, ok := c.Observe(hv.Reading{Device: "a", Metric: hv.EnergyKWh, Time: 2000, Value: 53}, nil)
	if !ok || d != 3 {
		t.Fatalf("after restore: delta=%g ok=%v, want 3 true", d, ok)
	}
}

// TestCountersSumInvariant: whatever the arrival order, the deltas add up to the index's total rise.
func TestCountersSumInvariant(t *testing.T) {
	values := []float64{10, 12, 15, 15, 21, 30, 31}
	orders := [][]int{{0, 1, 2, 3, 4, 5, 6}, {0, 2, 1, 4, 3, 6, 5}, {0, 6, 1, 2, 3, 4, 5}, {0, 1, 1, 3, 3, 5, 6}}
	for _, order := range orders {
		c := NewCounters()
		sum := 0.0
		for _, i := range order {
			if d, _, ok := c.Observe(hv.Reading{Device: "x", Metric: hv.EnergyKWh, Time: int64(i) * 1000, Value: values[i]}, nil); ok {
				sum += d
			}
		}
		if sum != values[6]-values[0] {
			t.Errorf("order %v: deltas sum to %g, want %g", order, sum, values[6]-values[0])
		}
	}
}
