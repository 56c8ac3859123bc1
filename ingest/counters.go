package ingest

import (
	"hash/maphash"
	"math"
	"sync"

	hv "github.com/useda02/hyperviseur"
)

// Counters turns cumulative indexes into interval consumption. It keeps the last index of every
// (device, metric) and is restored from the store at start, so a restart does not lose an interval.
//
// A reading between the first and the last one seen (a redelivery, an out-of-order message) yields no delta:
// the in-order reading after it already covers its interval. A reading older than the first one seen fills
// the gap up to it, with a delta at the first reading's time (which carries none). So within a process the
// deltas add up to the index's total rise whatever the arrival order. State restored from the store does not
// know its first reading (that one may carry a delta already), so after a restart a reading older than the
// restored one is not counted. Recomputing after a crash gives the same deltas at the same times, which the
// store writes once.
type Counters struct {
	seed   maphash.Seed
	shards [64]counterShard
}

type counterShard struct {
	mu sync.Mutex
	m  map[counterKey]counterState
}

type counterKey struct {
	device string
	metric hv.Metric
}

type counterState struct {
	t int64 // the newest reading
	v float64
	// The earliest reading seen in this process, when it is known to carry no delta (firstKnown).
	firstT     int64
	firstV     float64
	firstKnown bool
}

// NewCounters returns empty counter state.
func NewCounters() *Counters {
	c := &Counters{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[counterKey]counterState)
	}
	return c
}

func (c *Counters) shard(device string) *counterShard {
	return &c.shards[maphash.String(c.seed, device)%uint64(len(c.shards))]
}

// Restore seeds the state with the last stored index readings.
func (c *Counters) Restore(rs []hv.Reading) {
	for _, r := range rs {
		if !r.Metric.Cumulative() {
			continue
		}
		s := c.shard(r.Device)
		s.mu.Lock()
		k := counterKey{r.Device, r.Metric}
		if cur, ok := s.m[k]; !ok || r.Time > cur.t {
			s.m[k] = counterState{t: r.Time, v: r.Value}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of indexes tracked.
func (c *Counters) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}

// Derive observes an index reading and appends to dst what ingest stores next to it: the interval delta
// (<metric>_delta, at the time Observe says) and, when the index misbehaved, a counter_event carrying the flag.
// It returns dst and the flag (FlagNone when nothing was flagged or nothing derived).
func (c *Counters) Derive(r hv.Reading, dev *hv.Device, dst []hv.Reading) ([]hv.Reading, hv.CounterFlag) {
	delta, at, flag, ok := c.Observe(r, dev)
	if !ok {
		return dst, hv.FlagNone
	}
	d := r
	d.Metric, d.Value, d.Time = r.Metric.Delta(), delta, at
	dst = append(dst, d)
	if flag != hv.FlagNone {
		ev := d
		ev.Metric, ev.Value = hv.CounterEvent, float64(flag)
		dst = append(dst, ev)
	}
	return dst, flag
}

// Observe records an index reading and returns the interval consumption it reveals, to be stored at time at:
// the reading's own time, or the first reading's time when it fills the gap before it. ok is false when there
// is nothing to store (first reading, duplicate, a reading inside an interval already counted). dev may be nil.
func (c *Counters) Observe(r hv.Reading, dev *hv.Device) (delta float64, at int64, flag hv.CounterFlag, ok bool) {
	s := c.shard(r.Device)
	k := counterKey{r.Device, r.Metric}
	s.mu.Lock()
	st, seen := s.m[k]
	switch {
	case !seen:
		s.m[k] = counterState{t: r.Time, v: r.Value, firstT: r.Time, firstV: r.Value, firstKnown: true}
		s.mu.Unlock()
		return 0, 0, hv.FlagNone, false
	case r.Time > st.t:
		prev := st
		st.t, st.v = r.Time, r.Value
		s.m[k] = st
		s.mu.Unlock()
		d, f, ok := deltaOf(prev, r, dev)
		return d, r.Time, f, ok
	case st.firstKnown && r.Time < st.firstT:
		first := hv.Reading{Device: r.Device, Metric: r.Metric, Time: st.firstT, Value: st.firstV}
		st.firstT, st.firstV = r.Time, r.Value
		s.m[k] = st
		s.mu.Unlock()
		d, f, ok := deltaOf(counterState{t: r.Time, v: r.Value}, first, dev)
		return d, first.Time, f, ok
	}
	s.mu.Unlock()
	return 0, 0, hv.FlagNone, false
}

// deltaOf applies the meter rules of DESIGN.md: a decrease is a reset (delta = new value) unless the register
// width says it wrapped; an increase above what the device can physically consume is flagged and not counted.
func deltaOf(prev counterState, r hv.Reading, dev *hv.Device) (float64, hv.CounterFlag, bool) {
	d := r.Value - prev.v
	flag := hv.FlagNone
	if d < 0 {
		var width float64
		if dev != nil {
			width = dev.RegisterMax
		}
		// A wrap leaves the old value near the top of the register and the new one near zero.
		if width > 0 && prev.v >= 0.9*width && r.Value <= 0.1*width {
			d, flag = width-prev.v+r.Value, hv.FlagRollover
		} else {
			d, flag = r.Value, hv.FlagReset
		}
	}
	if limit, bounded := maxRise(r.Metric, dev, r.Time-prev.t); bounded && d > limit {
		return 0, hv.FlagJump, true
	}
	// Indexes are decimals (5116.705 kWh) and their float difference carries noise (0.01299999999992);
	// no register resolves below 1e-9 of its unit, so rounding there loses nothing real.
	return math.Round(d*1e9) / 1e9, flag, true
}

// maxRise is the largest plausible rise of an index over elapsed ms. Energy indexes are bounded by the
// device's maximum power; operating hours by the elapsed time itself. Volumes have no physical bound we
// know of from the registry, so they are never flagged.
func maxRise(m hv.Metric, dev *hv.Device, elapsedMS int64) (float64, bool) {
	hours := float64(elapsedMS) / 3.6e6
	switch m {
	case hv.EnergyKWh, hv.HeatKWh:
		if dev == nil || dev.MaxPowerW <= 0 {
			return 0, false
		}
		// 5 % and 1 Wh of slack absorb rounding of the index and clock jitter between readings.
		return dev.MaxPowerW/1000*hours*1.05 + 0.001, true
	case hv.OperatingHours:
		return hours*1.05 + 1.0/60, true
	}
	return 0, false
}
