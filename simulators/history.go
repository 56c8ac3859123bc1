package simulators

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/simulators/model"
)

// HistoryStep is the spacing of the history's readings: hourly, enough for baselines, degree-day models and
// year-over-year comparisons, and 9,500 instants a device for 13 months.
const HistoryStep = time.Hour

// History is the fleet's past, hour by hour, as ingest would have stored it: each meter's index with its
// delta, each lighting controller's level, energy and burning hours (the counters with their deltas), each
// weather station's temperature, labelled with the device's site, commune, EPCI and fluid. It is an hv.BackfillFunc (Fill),
// so hv.Backfill writes it into any store.
//
// The past is clean: faults, overrides and presence only act on the live runner. Lighting follows the
// programs FollowPrograms gives, else the failsafe schedule (DefaultLevel, astronomical at each cabinet). A
// device whose readings are already stored resumes from its newest stored index (the store's Last), so
// backfilling the gap since a demo last ran continues each meter where it stopped, and nothing at or before
// that reading is emitted again.
type History struct {
	r        *Runner
	devices  []*histDevice // as r.devices
	emitted  atomic.Int64
	schedule Schedule // nil: the failsafe
}

// Schedule gives a controller's program for the night in force at t (the one the lighting service would
// have pushed), false when it has none and runs its failsafe.
type Schedule func(device string, t time.Time) (lighting.Program, bool)

// FollowPrograms makes the controllers' history burn along their programs, as if the lighting service had
// driven them all along, instead of the failsafe. The presence boost is not replayed (the history draws no
// presence): boosted steps burn at their base level. Call it before Fill.
func (h *History) FollowPrograms(s Schedule) { h.schedule = s }

// histDevice is one device's state between windows. A device is only ever filled by one worker (the one
// its position selects), so its state needs no lock.
type histDevice struct {
	d      *simDevice
	index  *model.Index      // meters: their index; controllers: their energy index
	energy histCounter       // controllers: energy_kwh
	hours  histCounter       // controllers: operating_hours
	upTo   int64             // controllers: the time their counters are integrated up to; 0 before the first instant
	sun    sunClock          // controllers: the failsafe's day, the history's own (the live runner may run meanwhile)
	prog   *lighting.Program // controllers following programs: the night's in force, nil when none
	from   int64             // readings at or before this time (the newest stored) are not emitted again
	prev   float64           // meters: the index at the previous reading, for its delta
	known  bool              // meters: prev holds a reading
}

// histCounter is a controller's counter, integrated exactly from one instant to the next along the failsafe
// schedule (burn), which switches at sunset, 23:00 and sunrise, not on the hour.
type histCounter struct {
	v     float64 // integrated
	prev  float64 // the previous reading, as emitted or stored
	known bool    // prev holds a reading: the next one carries a delta
}

// History returns the fleet's history resuming from last, the newest stored readings of the fleet's indexes
// (Store.Last of hv.CumulativeMetrics); with none, indexes start where NewRunner starts them.
func (r *Runner) History(last []hv.Reading) *History {
	stored := map[string]map[hv.Metric]hv.Reading{}
	for _, rd := range last {
		if stored[rd.Device] == nil {
			stored[rd.Device] = map[hv.Metric]hv.Reading{}
		}
		stored[rd.Device][rd.Metric] = rd
	}
	h := &History{r: r, devices: make([]*histDevice, len(r.devices))}
	for i, d := range r.devices {
		hd := &histDevice{d: d, index: model.NewIndex(d.baseIndex, d.index.Scale), from: -1 << 62}
		m := d.indexMetric()
		if rd, ok := stored[d.ID][m]; ok {
			hd.from = rd.Time
			hd.index.Value, hd.prev, hd.known = rd.Value, rd.Value, true
			hd.energy = histCounter{rd.Value, rd.Value, true}
			hd.upTo = rd.Time
			if d.Kind != hv.DeviceLightingController { // a controller integrates its counters, not hd.index
				hd.index.Advance(time.UnixMilli(rd.Time), r.cleanRate(d, time.UnixMilli(rd.Time), r.weather.Outdoor(time.UnixMilli(rd.Time))))
			}
		} else {
			hd.energy.v = d.baseIndex
		}
		if rd, ok := stored[d.ID][hv.OperatingHours]; ok && d.Kind == hv.DeviceLightingController {
			hd.hours = histCounter{rd.Value, rd.Value, true}
			hd.from = max(hd.from, rd.Time)
			hd.upTo = max(hd.upTo, rd.Time)
		}
		h.devices[i] = hd
	}
	return h
}

// indexMetric is the cumulative metric a device's index reports as; empty for a weather station.
func (d *simDevice) indexMetric() hv.Metric {
	switch {
	case d.Kind == hv.DeviceWeather:
		return ""
	case d.Kind == hv.DeviceLightingController:
		return hv.EnergyKWh
	case d.Fluid == hv.Gas || d.Fluid == hv.Water:
		return hv.VolumeM3
	case d.Fluid == hv.Heat:
		return hv.HeatKWh
	}
	return hv.EnergyKWh
}

// cleanRate is the rate d's index integrates at t, faults aside: W for energy and heat, m³/h for volumes.
func (r *Runner) cleanRate(d *simDevice, t time.Time, o model.Outdoor) float64 {
	if d.Kind == hv.DeviceLightingController {
		return d.lampsPowerW(d.scheduled(t))
	}
	s := d.building.SampleOutdoor(t, o)
	switch d.Fluid {
	case hv.Gas:
		return s.GasM3h
	case hv.Water:
		return s.WaterM3h
	case hv.Heat:
		return s.HeatW
	}
	return s.ElectricW
}

// lampsPowerW is what a controller's luminaires draw at level, none failed.
func (d *simDevice) lampsPowerW(level float64) float64 {
	n := max(1, d.Luminaires)
	return model.LampPowerW(d.NominalW/float64(n), level, d.LED) * float64(n)
}

// Total is the number of readings Fill will emit for [from, to), asked before filling: the denominator of a
// progress report.
func (h *History) Total(from, to int64) int64 {
	step := HistoryStep.Milliseconds()
	var n int64
	for _, hd := range h.devices {
		start := max(from, hd.from+1)
		instants := max(0, (to-1)/step-(start-1)/step) // step multiples in [start, to)
		if instants == 0 {
			continue
		}
		switch hd.d.Kind {
		case hv.DeviceWeather:
			n += instants
		case hv.DeviceLightingController: // its level, two counters, each with its delta but at the first fresh reading
			n += 5*instants - bool01(!hd.energy.known) - bool01(!hd.hours.known)
		default:
			n += 2*instants - bool01(!hd.known)
		}
	}
	return n
}

func bool01(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Emitted is the number of readings Fill has emitted so far.
func (h *History) Emitted() int64 { return h.emitted.Load() }

// Fill emits the history of [from, to) of the devices worker owns (every workers-th, from the worker-th):
// an hv.BackfillFunc. Windows must come in time order, as hv.Backfill calls them.
func (h *History) Fill(ctx context.Context, from, to int64, worker, workers int, emit func([]hv.Reading) error) error {
	step := HistoryStep.Milliseconds()
	first := (from + step - 1) / step * step
	var instants []time.Time
	var outdoor []model.Outdoor
	for at := first; at < to; at += step {
		t := time.UnixMilli(at)
		instants = append(instants, t)
		outdoor = append(outdoor, h.r.weather.Outdoor(t))
	}
	var buf []hv.Reading
	for i := worker; i < len(h.devices); i += max(1, workers) {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = h.devices[i].fill(h.r, h.schedule, instants, outdoor, buf[:0])
		if len(buf) == 0 {
			continue
		}
		if err := emit(buf); err != nil {
			return err
		}
		h.emitted.Add(int64(len(buf)))
	}
	return nil
}

// fill appends the device's readings at instants.
func (hd *histDevice) fill(r *Runner, schedule Schedule, instants []time.Time, outdoor []model.Outdoor, out []hv.Reading) []hv.Reading {
	d := hd.d
	base := hv.Reading{Device: d.ID, Site: d.site.ID, Commune: d.site.Commune, EPCI: d.site.EPCI, Fluid: d.Fluid}
	add := func(m hv.Metric, at int64, v float64) {
		rd := base
		rd.Metric, rd.Time, rd.Value = m, at, v
		out = append(out, rd)
	}
	for i, t := range instants {
		at := t.UnixMilli()
		switch d.Kind {
		case hv.DeviceWeather:
			if at > hd.from {
				add(hv.TemperatureC, at, round(outdoor[i].TemperatureC, 1))
			}
		case hv.DeviceLightingController:
			if hd.upTo != 0 && at > hd.upTo {
				hd.burn(time.UnixMilli(hd.upTo), t, schedule)
			}
			hd.upTo = max(hd.upTo, at)
			if at <= hd.from {
				continue
			}
			level, _ := hd.level(t, schedule)
			add(hv.LevelPct, at, level) // what compliance checks the decrees' hours against
			hd.counter(&hd.energy, hv.EnergyKWh, at, add)
			hd.counter(&hd.hours, hv.OperatingHours, at, add)
		default:
			v := round(hd.index.Advance(t, r.cleanRate(d, t, outdoor[i])), 3)
			if at <= hd.from {
				continue
			}
			m := d.indexMetric()
			add(m, at, v)
			if hd.known {
				add(m.Delta(), at, round(v-hd.prev, 3))
			}
			hd.prev, hd.known = v, true
		}
	}
	return out
}

// burn integrates a controller's energy and burning hours over [from, to) along its program (schedule) or the
// failsafe schedule, piece by piece between its switching instants.
func (hd *histDevice) burn(from, to time.Time, schedule Schedule) {
	d := hd.d
	for t := from; t.Before(to); {
		level, next := hd.level(t, schedule)
		if next.After(to) {
			next = to
		}
		h := next.Sub(t).Hours()
		hd.energy.v += d.lampsPowerW(level) * h / 1000
		if level > 0 {
			hd.hours.v += h
		}
		t = next
	}
}

// level is the level the controller runs at t and when it next changes: its program's when schedule gives
// one, else the failsafe's.
func (hd *histDevice) level(t time.Time, schedule Schedule) (float64, time.Time) {
	if schedule != nil {
		if p := hd.prog; p == nil || t.Before(p.Steps[0].At) || !t.Before(p.Until) {
			hd.prog = nil
			if np, ok := schedule(hd.d.ID, t); ok {
				hd.prog = &np
			}
		}
		if p := hd.prog; p != nil {
			if st, ok := p.StepAt(t); ok {
				next := p.Until
				if i := sort.Search(len(p.Steps), func(i int) bool { return p.Steps[i].At.After(t) }); i < len(p.Steps) {
					next = p.Steps[i].At
				}
				return st.Level, next
			}
		}
	}
	return hd.sun.level(t, hd.d.site.Lat, hd.d.site.Lon)
}

// counter emits a controller counter's value and, when the previous one is known, its delta.
func (hd *histDevice) counter(c *histCounter, m hv.Metric, at int64, add func(hv.Metric, int64, float64)) {
	v := round(c.v, 3)
	add(m, at, v)
	if c.known {
		add(m.Delta(), at, round(v-c.prev, 3))
	}
	c.prev, c.known = v, true
}

// Resume continues each device's indexes from last, the newest stored readings of the fleet's indexes (Store.Last
// of hv.CumulativeMetrics, after a backfill or from an earlier run): the live reports then carry on from the
// history instead of starting over, which ingest would flag as an index reset. Call it before the runner's
// first report.
func (r *Runner) Resume(last []hv.Reading) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rd := range last {
		d, ok := r.byID[rd.Device]
		if !ok {
			continue
		}
		t := time.UnixMilli(rd.Time)
		switch {
		case rd.Metric == hv.OperatingHours && d.Kind == hv.DeviceLightingController:
			d.hours = model.OperatingHours{Hours: rd.Value}
			d.hours.Advance(t, d.scheduled(t) > 0)
		case rd.Metric == d.indexMetric():
			d.index = model.NewIndex(rd.Value, d.index.Scale)
			d.index.Advance(t, r.cleanRate(d, t, r.weather.Outdoor(t)))
		}
	}
}
