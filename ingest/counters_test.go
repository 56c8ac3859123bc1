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
		{"duplicate and late readings inside a counted interval yield nothing and keep the state", hv.EnergyKWh, meter, []step{
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
				d, at, flag, ok := c.Observe(hv.Reading{Device: "m", Metric: tt.metric, Time: s.t, Value: s.v}, tt.dev)
				if ok && at != s.t {
					t.Errorf("step %d: delta stored at %d, want the reading's time %d", i, at, s.t)
				}
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
	d, _, _, ok := c.Observe(hv.Reading{Device: "a", Metric: hv.EnergyKWh, Time: 2000, Value: 53}, nil)
	if !ok || d != 3 {
		t.Fatalf("after restore: delta=%g ok=%v, want 3 true", d, ok)
	}
	// The restored reading may carry a delta in the store already: an older one must not write over it.
	if _, _, _, ok := c.Observe(hv.Reading{Device: "a", Metric: hv.EnergyKWh, Time: 500, Value: 40}, nil); ok {
		t.Fatal("a reading older than the restored state produced a delta")
	}
}

// TestCountersFirstReadingsSwapped: the second reading arrives first; the first one, arriving late, fills the
// gap with a delta at the time of the reading that carried none.
func TestCountersFirstReadingsSwapped(t *testing.T) {
	c := NewCounters()
	if _, _, _, ok := c.Observe(hv.Reading{Device: "x", Metric: hv.EnergyKWh, Time: 2000, Value: 12}, nil); ok {
		t.Fatal("first reading produced a delta")
	}
	d, at, flag, ok := c.Observe(hv.Reading{Device: "x", Metric: hv.EnergyKWh, Time: 1000, Value: 10}, nil)
	if !ok || d != 2 || at != 2000 || flag != hv.FlagNone {
		t.Fatalf("late first reading: delta=%g at=%d flag=%s ok=%v, want 2 at 2000", d, at, flag, ok)
	}
	// Once filled, the same gap is not counted again.
	if _, _, _, ok := c.Observe(hv.Reading{Device: "x", Metric: hv.EnergyKWh, Time: 1000, Value: 10}, nil); ok {
		t.Fatal("a redelivered late reading counted its gap twice")
	}
}

// TestCountersSumInvariant: whatever the arrival order, with duplicates, the deltas add up to the index's
// total rise, and no two deltas share a time (the store would keep only one of them).
func TestCountersSumInvariant(t *testing.T) {
	values := []float64{10, 12, 15, 15, 21}
	var perms [][]int
	var permute func(p []int, k int)
	permute = func(p []int, k int) {
		if k == len(p) {
			perms = append(perms, append([]int(nil), p...))
			return
		}
		for i := k; i < len(p); i++ {
			p[k], p[i] = p[i], p[k]
			permute(p, k+1)
			p[k], p[i] = p[i], p[k]
		}
	}
	permute([]int{0, 1, 2, 3, 4}, 0)
	if len(perms) != 120 {
		t.Fatalf("%d permutations", len(perms))
	}
	for _, order := range perms {
		c := NewCounters()
		sum := 0.0
		times := map[int64]bool{}
		// Each reading twice: once in the permuted order, then all again (redeliveries).
		for _, i := range append(order, order...) {
			d, at, _, ok := c.Observe(hv.Reading{Device: "x", Metric: hv.EnergyKWh, Time: int64(i) * 1000, Value: values[i]}, nil)
			if !ok {
				continue
			}
			if times[at] {
				t.Fatalf("order %v: two deltas at time %d", order, at)
			}
			times[at] = true
			sum += d
		}
		if sum != values[4]-values[0] {
			t.Errorf("order %v: deltas sum to %g, want %g", order, sum, values[4]-values[0])
		}
	}
}
