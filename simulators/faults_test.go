package simulators

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
)

// Devices of the small fleet below (seed 1), one for each fault, covering every payload format.
const (
	waterMeter     = "eau-mairie-02028"     // flat JSON, hourly
	gasMeterSchool = "gaz-ecole-02028-1"    // SenML, hourly, école heated by gas
	elecHeated     = "elec-mairie-02024"    // flat JSON, mairie heated electrically (no gas meter)
	elecGasHeated  = "elec-mairie-02028"    // flat JSON, mairie heated by gas
	elecSenML      = "elec-ecole-02028-2"   // SenML
	elecLP         = "elec-gymnase-02028-1" // line protocol
	elecTTS        = "elec-salle-fetes-02028-1"
	elecChirp      = "0c00b88911ee41da"       // ChirpStack electricity meter of ecole-02028-1
	ctrlFlatLED    = "ctrl-armoire-02028-005" // flat JSON, LED
	ctrlLPSodium   = "ctrl-armoire-02028-001" // line protocol, sodium
	ctrlTTS        = "ctrl-armoire-02028-002"
	ctrlSenML      = "ctrl-armoire-02028-003"
	ctrlSenML2     = "ctrl-armoire-02028-007"
	ctrlChirp      = "b82268e7678b08f3"
)

// smallFleet is three communes of the Pays de Laon: about thirty devices, every format, buildings heated by
// gas and by electricity, LED and sodium lighting.
func smallFleet(t *testing.T) (*fleet.Fleet, *registry.Registry) {
	t.Helper()
	return fleetOf(t, "02024", "02028", "02037")
}

// fleetOf is the seed-1 fleet of some communes and the registry the service would load for it.
func fleetOf(t *testing.T, communes ...string) (*fleet.Fleet, *registry.Registry) {
	t.Helper()
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	f, reg, err := fleet.Load(territory, fleet.Options{Seed: 1, Communes: communes})
	if err != nil {
		t.Fatal(err)
	}
	return f, reg
}

func paris(d, h, m int) time.Time { return time.Date(2027, 1, d, h, m, 0, 0, model.Paris()) }

// The window of every case: Friday 15 January 2027 (a school day) to Monday 18 at midnight, Paris: a working
// day, a weekend, three winter nights.
var (
	winStart = paris(15, 0, 0)
	winEnd   = paris(18, 0, 0)
)

// emitted is a message and the Due call that produced it.
type emitted struct {
	Message
	step time.Time
}

// run drives r from winStart to winEnd by 5-minute Due calls, as Publish does every second.
func run(r *Runner) []emitted {
	var out []emitted
	for t := winStart; !t.After(winEnd); t = t.Add(5 * time.Minute) {
		for _, m := range r.Due(t) {
			out = append(out, emitted{m, t})
		}
	}
	return out
}

// decoded is one message after the service's decoders and mapper.
type decoded struct {
	emitted
	at   time.Time // the report's timestamp
	vals map[hv.Metric]float64
	err  error // decoding or normalising failed
}

func decodeAll(t *testing.T, reg *registry.Registry, msgs []emitted) []decoded {
	t.Helper()
	mapper := &decode.Mapper{Profiles: reg.Profiles()}
	out := make([]decoded, 0, len(msgs))
	for _, m := range msgs {
		d := decoded{emitted: m, vals: map[hv.Metric]float64{}}
		dec, err := decode.Lookup(formatOf(m.Topic))
		if err != nil {
			t.Fatal(err)
		}
		samples, err := dec.Decode(m.Topic, m.Payload, nil)
		if err != nil {
			d.err = err
		}
		for _, s := range samples {
			dev, _, ok := reg.Lookup(s.Device)
			if !ok {
				t.Fatalf("%s: device %q not in the registry", m.Topic, s.Device)
			}
			if s.Device != m.Device {
				t.Fatalf("%s: message of %s decodes as %s", m.Topic, m.Device, s.Device)
			}
			metric, v, err := mapper.Normalise(s, dev)
			if err != nil {
				d.err = err
				break
			}
			d.vals[metric], d.at = v, s.Time
		}
		out = append(out, d)
	}
	return out
}

func of(ds []decoded, device string) []decoded {
	var out []decoded
	for _, d := range ds {
		if d.Device == device {
			out = append(out, d)
		}
	}
	return out
}

// byTime indexes reports by their timestamp.
func byTime(ds []decoded) map[time.Time]decoded {
	m := map[time.Time]decoded{}
	for _, d := range ds {
		m[d.at] = d
	}
	return m
}

func nightHour(t time.Time) bool {
	h := t.In(model.Paris()).Hour()
	return h >= 22 || h < 6
}

// rates turns an index's readings into (interval end, rate per hour) pairs.
func rates(ds []decoded, m hv.Metric) (ends []time.Time, perHour []float64) {
	for i := 1; i < len(ds); i++ {
		h := ds[i].at.Sub(ds[i-1].at).Hours()
		ends = append(ends, ds[i].at)
		perHour = append(perHour, (ds[i].vals[m]-ds[i-1].vals[m])/h)
	}
	return ends, perHour
}

// perDay sums an index's rises by Paris day of the interval's end.
func perDay(ds []decoded, m hv.Metric) map[int]float64 {
	out := map[int]float64{}
	for i := 1; i < len(ds); i++ {
		out[ds[i].at.In(model.Paris()).Day()] += ds[i].vals[m] - ds[i-1].vals[m]
	}
	return out
}

func nominal(t *testing.T, f *fleet.Fleet, id string) fleet.Device {
	t.Helper()
	for _, d := range f.Devices {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no device %s in the fleet", id)
	return fleet.Device{}
}

func TestFaultSignatures(t *testing.T) {
	f, reg := smallFleet(t)
	clean := decodeAll(t, reg, run(NewRunner(f, 1, winStart)))
	for _, d := range clean {
		if d.err != nil {
			t.Fatalf("clean fleet: %s: %v", d.Topic, d.err)
		}
	}
	offFrom, offUntil := paris(16, 10, 0), paris(16, 16, 0)
	resetAt := paris(16, 12, 0)

	cases := []struct {
		name   string
		faults []Fault
		check  func(t *testing.T, got, want []decoded)
	}{
		{
			name:   "leak: night flow never reaches zero",
			faults: []Fault{{Kind: FaultLeak, Device: waterMeter}},
			check: func(t *testing.T, got, want []decoded) {
				nightMin := func(ds []decoded) float64 {
					lo := math.Inf(1)
					ends, flows := rates(ds, hv.VolumeM3)
					for i, e := range ends {
						if nightHour(e) {
							lo = min(lo, flows[i])
						}
					}
					return lo
				}
				if lo := nightMin(got); lo < 0.19 {
					t.Errorf("lowest night flow with a 0.2 m³/h leak is %.4f m³/h", lo)
				}
				if lo := nightMin(want); lo > 0.01 {
					t.Errorf("lowest night flow of the clean twin is %.4f m³/h, want about 0", lo)
				}
			},
		},
		{
			name:   "heating_weekend on a gas meter: weekend gas at the working-day level",
			faults: []Fault{{Kind: FaultHeatingWeekend, Device: gasMeterSchool}},
			check:  weekendHeating(hv.VolumeM3, true),
		},
		{
			name:   "heating_weekend on the electricity meter of an electrically heated building",
			faults: []Fault{{Kind: FaultHeatingWeekend, Device: elecHeated}},
			check:  weekendHeating(hv.EnergyKWh, false),
		},
		{
			name:   "night_overconsumption: a constant extra load 22:00-06:00",
			faults: []Fault{{Kind: FaultNightOverconsumption, Device: elecGasHeated}},
			check: func(t *testing.T, got, want []decoded) {
				w := byTime(want)
				var extra []float64
				dayMean, n := 0.0, 0
				for _, g := range got {
					c := w[g.at]
					diff := g.vals[hv.PowerW] - c.vals[hv.PowerW]
					if nightHour(g.at) {
						extra = append(extra, diff)
					} else if math.Abs(diff) > 1e-9 {
						t.Fatalf("%s: power %v by day, clean twin %v", g.at, g.vals[hv.PowerW], c.vals[hv.PowerW])
					}
					if h := g.at.In(model.Paris()).Hour(); g.at.In(model.Paris()).Day() == 15 && h >= 6 && h < 22 {
						dayMean += c.vals[hv.PowerW]
						n++
					}
				}
				dayMean /= float64(n)
				lo, hi := slices.Min(extra), slices.Max(extra)
				if hi-lo > 0.11 || math.Abs(lo-0.3*dayMean) > 0.05*dayMean {
					t.Errorf("night extra load from %.1f to %.1f W, want constant at 30 %% of the day mean %.1f W", lo, hi, dayMean)
				}
			},
		},
		{
			name:   "day_burner: full level and power in daylight",
			faults: []Fault{{Kind: FaultDayBurner, Device: ctrlFlatLED}},
			check: func(t *testing.T, got, want []decoded) {
				nom := nominal(t, f, ctrlFlatLED).NominalW
				w := byTime(want)
				for _, g := range got {
					if h := g.at.In(model.Paris()).Hour(); h >= 9 && h < 17 { // after the mid-January sunrise (~08:40): the failsafe is off
						if g.vals[hv.LevelPct] != 100 || g.vals[hv.PowerW] < 0.99*nom {
							t.Fatalf("%s: level %v, power %v W (nominal %v W), want full by day", g.at, g.vals[hv.LevelPct], g.vals[hv.PowerW], nom)
						}
						if w[g.at].vals[hv.LevelPct] != 0 {
							t.Fatalf("%s: the clean twin is on by day", g.at)
						}
					}
				}
			},
		},
		{
			name:   "lamp_failure: power drops while the level stays on",
			faults: []Fault{{Kind: FaultLampFailure, Device: ctrlLPSodium}},
			check: func(t *testing.T, got, want []decoded) {
				w := byTime(want)
				lit := 0
				for _, g := range got {
					c := w[g.at]
					if g.vals[hv.LampFailure] != 1 || c.vals[hv.LampFailure] != 0 {
						t.Fatalf("%s: lamp_failure %v (clean twin %v), want 1 (0)", g.at, g.vals[hv.LampFailure], c.vals[hv.LampFailure])
					}
					if g.vals[hv.LevelPct] != c.vals[hv.LevelPct] {
						t.Fatalf("%s: level %v, clean twin %v", g.at, g.vals[hv.LevelPct], c.vals[hv.LevelPct])
					}
					if g.vals[hv.LevelPct] > 0 {
						lit++
						if g.vals[hv.PowerW] >= 0.75*c.vals[hv.PowerW] {
							t.Fatalf("%s: power %v W at level %v, clean twin %v W", g.at, g.vals[hv.PowerW], g.vals[hv.LevelPct], c.vals[hv.PowerW])
						}
					}
				}
				if lit < 100 {
					t.Errorf("only %d lit reports", lit)
				}
			},
		},
		{
			name:   "dimming_failure: stuck at one level whatever the schedule",
			faults: []Fault{{Kind: FaultDimmingFailure, Device: ctrlSenML, Param: 60}},
			check: func(t *testing.T, got, want []decoded) {
				for _, g := range got {
					if g.vals[hv.LevelPct] != 60 {
						t.Fatalf("%s: level %v, want stuck at 60", g.at, g.vals[hv.LevelPct])
					}
				}
				levels := map[float64]bool{}
				for _, c := range want {
					levels[c.vals[hv.LevelPct]] = true
				}
				if len(levels) != 3 {
					t.Errorf("the clean twin's levels %v: want 0, 50 and 100", levels)
				}
			},
		},
		{
			name:   "offline: nothing in the window, then the backlog in order",
			faults: []Fault{{Kind: FaultOffline, Device: ctrlChirp, From: offFrom, Until: offUntil}},
			check: func(t *testing.T, got, want []decoded) {
				if len(got) != len(want) {
					t.Fatalf("%d reports, clean twin %d", len(got), len(want))
				}
				backlog := 0
				for i, g := range got {
					if !bytes.Equal(g.Payload, want[i].Payload) {
						t.Fatalf("report %d differs from the clean twin's: %s vs %s", i, g.Payload, want[i].Payload)
					}
					// The report due just before From goes out at the Due call of From itself.
					if g.step.After(offFrom) && g.step.Before(offUntil) {
						t.Fatalf("message %s sent at %s, while offline", g.at, g.step)
					}
					if !g.at.Before(offFrom) && g.at.Before(offUntil) {
						backlog++
						if !g.step.Equal(offUntil) {
							t.Errorf("backlog report %s sent at %s, want at the end of the window %s", g.at, g.step, offUntil)
						}
					}
				}
				if backlog != 72 {
					t.Errorf("backlog of %d reports, want 6 h of 5 min = 72", backlog)
				}
			},
		},
		{
			name:   "index_reset: the index restarts from 0 and ingest flags a reset",
			faults: []Fault{{Kind: FaultIndexReset, Device: elecGasHeated, From: resetAt}},
			check: func(t *testing.T, got, want []decoded) {
				dev, _, _ := reg.Lookup(elecGasHeated)
				counters := ingest.NewCounters()
				var resets []time.Time
				for i, g := range got {
					r := hv.Reading{Device: g.Device, Metric: hv.EnergyKWh, Value: g.vals[hv.EnergyKWh], Time: g.at.UnixMilli()}
					_, _, flag, _ := counters.Observe(r, dev)
					if flag == hv.FlagReset {
						resets = append(resets, g.at)
						if g.vals[hv.EnergyKWh] > 1 || g.vals[hv.EnergyKWh] >= got[i-1].vals[hv.EnergyKWh] {
							t.Errorf("index %v after %v at the reset", g.vals[hv.EnergyKWh], got[i-1].vals[hv.EnergyKWh])
						}
					} else if flag != hv.FlagNone {
						t.Errorf("%s: counter flag %v", g.at, flag)
					}
				}
				if len(resets) != 1 || resets[0].Before(resetAt) || resets[0].Sub(resetAt) >= 10*time.Minute {
					t.Errorf("resets flagged at %v, want one at the first report from %s", resets, resetAt)
				}
			},
		},
		{
			name: "clock_skew: timestamps shifted by param, values unchanged",
			faults: []Fault{
				{Kind: FaultClockSkew, Device: elecSenML},
				{Kind: FaultClockSkew, Device: elecLP, Param: -900},
				{Kind: FaultClockSkew, Device: elecChirp, Param: 3600},
			},
			check: func(t *testing.T, got, want []decoded) {
				skew := map[string]time.Duration{elecSenML: 600 * time.Second, elecLP: -900 * time.Second, elecChirp: time.Hour}
				if len(got) != len(want) {
					t.Fatalf("%d reports, clean twin %d", len(got), len(want))
				}
				for i, g := range got {
					c := want[i]
					if d := g.at.Sub(c.at); d != skew[g.Device] {
						t.Fatalf("%s: stamped %s, %s off the true time, want %s", g.Device, g.at, d, skew[g.Device])
					}
					if !mapsEqual(g.vals, c.vals) {
						t.Fatalf("%s: values %v, clean twin %v", g.Device, g.vals, c.vals)
					}
				}
			},
		},
		{
			name:   "duplicates: every message twice",
			faults: []Fault{{Kind: FaultDuplicates, Device: ctrlTTS}},
			check: func(t *testing.T, got, want []decoded) {
				if len(got) != 2*len(want) {
					t.Fatalf("%d messages, want twice the clean twin's %d", len(got), len(want))
				}
				for i, c := range want {
					if !bytes.Equal(got[2*i].Payload, c.Payload) || !bytes.Equal(got[2*i+1].Payload, c.Payload) {
						t.Fatalf("message %d not sent twice", i)
					}
				}
			},
		},
		{
			name:   "out_of_order: consecutive messages swapped pairwise",
			faults: []Fault{{Kind: FaultOutOfOrder, Device: ctrlSenML2, From: paris(16, 0, 0), Until: paris(17, 0, 0)}},
			check: func(t *testing.T, got, want []decoded) {
				if len(got) != len(want) {
					t.Fatalf("%d messages, clean twin %d", len(got), len(want))
				}
				backwards := 0
				for i := 1; i < len(got); i++ {
					if got[i].at.Before(got[i-1].at) {
						backwards++
						if !bytes.Equal(got[i].Payload, want[i-1].Payload) || !bytes.Equal(got[i-1].Payload, want[i].Payload) {
							t.Fatalf("messages %d and %d are not the clean pair swapped", i-1, i)
						}
						if d := got[i-1].at.Sub(got[i].at); d != 5*time.Minute {
							t.Errorf("swapped messages %s apart", d)
						}
					}
				}
				if backwards != 144 {
					t.Errorf("%d messages went back in time, want a day of 5-min reports swapped in pairs = 144", backwards)
				}
			},
		},
		{
			name: "malformed: every message rejected by the decoder, whatever the format",
			faults: []Fault{
				{Kind: FaultMalformed, Device: waterMeter}, {Kind: FaultMalformed, Device: elecSenML},
				{Kind: FaultMalformed, Device: elecLP}, {Kind: FaultMalformed, Device: elecChirp},
				{Kind: FaultMalformed, Device: elecTTS}, {Kind: FaultMalformed, Device: ctrlLPSodium},
			},
			check: func(t *testing.T, got, want []decoded) {
				if len(got) != len(want) {
					t.Fatalf("%d messages, clean twin %d", len(got), len(want))
				}
				variants := map[string]map[string]int{}
				for _, g := range got {
					if !errors.Is(g.err, decode.ErrMalformed) {
						t.Fatalf("%s: corrupted payload %q decoded (err %v)", g.Device, g.Payload, g.err)
					}
					if variants[g.Device] == nil {
						variants[g.Device] = map[string]int{}
					}
					variants[g.Device][variant(g.Topic, g.Payload)]++
				}
				for dev, v := range variants {
					if len(v) != 3 {
						t.Errorf("%s: corruptions %v, want truncated, wrong type and garbage", dev, v)
					}
				}
			},
		},
		{
			name:   "malformed with param 0.5: about half rejected, the rest intact",
			faults: []Fault{{Kind: FaultMalformed, Device: ctrlTTS, Param: 0.5}},
			check: func(t *testing.T, got, want []decoded) {
				bad := 0
				for i, g := range got {
					switch {
					case g.err != nil:
						if !errors.Is(g.err, decode.ErrMalformed) {
							t.Fatalf("%v", g.err)
						}
						bad++
					case !bytes.Equal(g.Payload, want[i].Payload):
						t.Fatalf("an intact message differs from the clean twin's")
					}
				}
				if share := float64(bad) / float64(len(got)); share < 0.4 || share > 0.6 {
					t.Errorf("%d of %d messages corrupted, want about half", bad, len(got))
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := NewRunner(f, 1, winStart)
			faulty := map[string]bool{}
			for _, fl := range tc.faults {
				if err := r.Inject(fl); err != nil {
					t.Fatal(err)
				}
				faulty[fl.Device] = true
			}
			// Faults stay on their device: every other device sends exactly what it sends in a clean fleet,
			// at the same Due call.
			var mine, others []emitted
			for _, m := range run(r) {
				if faulty[m.Device] {
					mine = append(mine, m)
				} else {
					others = append(others, m)
				}
			}
			var wantOthers []decoded
			for _, d := range clean {
				if !faulty[d.Device] {
					wantOthers = append(wantOthers, d)
				}
			}
			if len(others) != len(wantOthers) {
				t.Fatalf("other devices sent %d messages, %d in a clean fleet", len(others), len(wantOthers))
			}
			for i, m := range others {
				if w := wantOthers[i]; !bytes.Equal(m.Payload, w.Payload) || !m.step.Equal(w.step) {
					t.Fatalf("%s: message %s differs from the clean fleet's %s", m.Device, m.Payload, w.Payload)
				}
			}
			g := decodeAll(t, reg, mine)
			var w []decoded
			for _, d := range clean {
				if faulty[d.Device] {
					w = append(w, d)
				}
			}
			if len(g) == 0 || len(w) == 0 {
				t.Fatal("the faulty device sent nothing")
			}
			tc.check(t, g, w)
		})
	}
}

// weekendHeating checks that the weekend's heating (index m per day) rises well above the clean twin's and,
// where the meter shows heating alone (gas, heat), stays at the working day's level once corrected for the
// weather by degree days (DJU), as an energy manager compares days: this weekend is milder than the Friday.
// An electricity meter also carries the lights and equipment of a working day, so there the comparison is
// with the twin only.
func weekendHeating(m hv.Metric, heatingOnly bool) func(t *testing.T, got, want []decoded) {
	return func(t *testing.T, got, want []decoded) {
		g, w := perDay(got, m), perDay(want, m)
		if g[15] != w[15] {
			t.Errorf("Friday: %v with the fault, %v without", g[15], w[15])
		}
		weather := model.NewWeather(1) // the runner's
		perDJU := func(v float64, day int) float64 { return v / weather.DegreeDays(paris(day, 12, 0), 18) }
		for _, day := range []int{16, 17} {
			if heatingOnly && perDJU(g[day], day) < 0.8*perDJU(g[15], 15) {
				t.Errorf("January %d: %.2f %s per DJU with the heating left on, Friday %.2f: want at least 80 %%",
					day, perDJU(g[day], day), m, perDJU(g[15], 15))
			}
			if g[day] < 1.3*w[day] {
				t.Errorf("January %d: %.2f %s with the heating left on, clean twin %.2f: want 30 %% more at least", day, g[day], m, w[day])
			}
		}
		t.Logf("%s per day: faulty %v, clean %v; DJU %.1f %.1f %.1f", m, g, w,
			weather.DegreeDays(paris(15, 12, 0), 18), weather.DegreeDays(paris(16, 12, 0), 18), weather.DegreeDays(paris(17, 12, 0), 18))
	}
}

// TestHeatingWeekendHeatMeter: on a school of the Laon heat network, the heat meter shows the heating left
// on. Only that school's meters are simulated, to keep the test short.
func TestHeatingWeekendHeatMeter(t *testing.T) {
	const heatMeter = "chaleur-ecole-02408-1"
	f, reg := fleetOf(t, "02408")
	site := nominal(t, f, heatMeter).Site
	sub := &fleet.Fleet{Sites: f.Sites, Profiles: f.Profiles}
	for _, d := range f.Devices {
		if d.Site == site {
			sub.Devices = append(sub.Devices, d)
		}
	}
	clean := of(decodeAll(t, reg, run(NewRunner(sub, 1, winStart))), heatMeter)
	r := NewRunner(sub, 1, winStart)
	if err := r.Inject(Fault{Kind: FaultHeatingWeekend, Device: heatMeter}); err != nil {
		t.Fatal(err)
	}
	got := of(decodeAll(t, reg, run(r)), heatMeter)
	weekendHeating(hv.HeatKWh, true)(t, got, clean)
	// The heat meter's power says the same as its index: no weekend setback at night.
	w := byTime(clean)
	for _, g := range got {
		if weekend(g.at) && g.vals[hv.PowerW] < w[g.at].vals[hv.PowerW] {
			t.Fatalf("%s: heat power %v W with the heating left on, %v W without", g.at, g.vals[hv.PowerW], w[g.at].vals[hv.PowerW])
		}
	}
}

// TestRunnerConcurrentFaults: faults come and go while the runner publishes (run with -race).
func TestRunnerConcurrentFaults(t *testing.T) {
	f, _ := smallFleet(t)
	r := NewRunner(f, 1, winStart)
	done := make(chan int)
	go func() {
		n := 0
		for at := winStart; at.Before(winStart.Add(12 * time.Hour)); at = at.Add(time.Minute) {
			n += len(r.Due(at))
		}
		done <- n
	}()
	for i := range 200 {
		if err := r.Inject(Fault{Kind: FaultDuplicates, Device: ctrlTTS, Param: 0, From: winStart.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Error(err)
		}
		_ = r.Faults()
		if i%10 == 0 {
			r.Clear(ctrlTTS)
		}
	}
	if n := <-done; n == 0 {
		t.Error("no message")
	}
}

func mapsEqual(a, b map[hv.Metric]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || math.Abs(bv-v) > 1e-9*math.Max(1, math.Abs(v)) {
			return false
		}
	}
	return true
}

// variant tells the corruptions apart from the outside: a truncated line-protocol line ends with its last
// '=', a truncated JSON payload is no longer JSON.
func variant(topic string, p []byte) string {
	switch {
	case !utf8.Valid(p):
		return "garbage"
	case formatOf(topic) == "lineprotocol" && bytes.HasSuffix(p, []byte("=")):
		return "truncated"
	case formatOf(topic) == "lineprotocol" || json.Valid(p):
		return "wrong type"
	}
	return "truncated"
}

func TestFaultClear(t *testing.T) {
	f, reg := smallFleet(t)
	clean := of(decodeAll(t, reg, run(NewRunner(f, 1, winStart))), waterMeter)
	r := NewRunner(f, 1, winStart)
	for _, fl := range []Fault{{Kind: FaultLeak, Device: waterMeter}, {Kind: FaultOffline, Device: ctrlChirp}} {
		if err := r.Inject(fl); err != nil {
			t.Fatal(err)
		}
	}
	clearAt := paris(16, 12, 0)
	var msgs []emitted
	for at := winStart; !at.After(winEnd); at = at.Add(5 * time.Minute) {
		if at.Equal(clearAt) {
			r.Clear(waterMeter)
			r.Clear(ctrlChirp)
			if fs := r.Faults(); len(fs) != 0 {
				t.Fatalf("faults left after Clear: %v", fs)
			}
		}
		for _, m := range r.Due(at) {
			msgs = append(msgs, emitted{m, at})
		}
	}
	got := of(decodeAll(t, reg, msgs), waterMeter)
	_, gf := rates(got, hv.VolumeM3)
	ends, cf := rates(clean, hv.VolumeM3)
	for i, e := range ends {
		// The index integrates between readings by the trapezoid rule: the hour spanning Clear shows half the
		// leak, and is left out.
		leaking, after := !e.After(clearAt), !e.Before(clearAt.Add(time.Hour))
		switch d := gf[i] - cf[i]; {
		case leaking && d < 0.19:
			t.Fatalf("%s: flow %.3f, clean %.3f before Clear", e, gf[i], cf[i])
		case after && math.Abs(d) > 0.0015:
			t.Fatalf("%s: flow %.3f, clean %.3f after Clear", e, gf[i], cf[i])
		}
	}
	// The offline controller, cleared, comes back at once with its whole backlog.
	var back []emitted
	for _, m := range msgs {
		if m.Device == ctrlChirp {
			back = append(back, m)
		}
	}
	if !back[0].step.Equal(clearAt) || back[0].step.Sub(winStart) < 0 {
		t.Fatalf("offline controller's first message sent at %s, want at Clear %s", back[0].step, clearAt)
	}
	if n := int(clearAt.Sub(winStart) / (5 * time.Minute)); len(back) < n {
		t.Errorf("%d messages after Clear, want the backlog of %d and more", len(back), n)
	}
}

func TestInjectValidates(t *testing.T) {
	f, _ := smallFleet(t)
	r := NewRunner(f, 1, winStart)
	cases := []struct {
		name  string
		fault Fault
		want  []string // fragments of the error
	}{
		{"leak on a gas meter", Fault{Kind: FaultLeak, Device: gasMeterSchool}, []string{"needs a water meter", "is a gas meter"}},
		{"day burner on a meter", Fault{Kind: FaultDayBurner, Device: waterMeter}, []string{"needs a lighting controller", "is a water meter"}},
		{"night overconsumption on a controller", Fault{Kind: FaultNightOverconsumption, Device: ctrlSenML}, []string{"needs an electricity meter", "lighting controller"}},
		{"weekend heating on the electricity of a gas-heated building", Fault{Kind: FaultHeatingWeekend, Device: elecGasHeated}, []string{"heated by gas", "gaz-mairie-02028"}},
		{"weekend heating on water", Fault{Kind: FaultHeatingWeekend, Device: waterMeter}, []string{"gas or heat meter"}},
		{"unknown device", Fault{Kind: FaultLeak, Device: "eau-nulle-part"}, []string{"unknown device", "eau-nulle-part"}},
		{"unknown kind", Fault{Kind: "flood", Device: waterMeter}, []string{`unknown fault kind "flood"`, "leak"}},
		{"share above 1", Fault{Kind: FaultLampFailure, Device: ctrlSenML, Param: 1.5}, []string{"param 1.5 out of range"}},
		{"level above 100", Fault{Kind: FaultDimmingFailure, Device: ctrlSenML, Param: 120}, []string{"out of range"}},
		{"negative leak", Fault{Kind: FaultLeak, Device: waterMeter, Param: -1}, []string{"out of range"}},
		{"NaN", Fault{Kind: FaultLeak, Device: waterMeter, Param: math.NaN()}, []string{"not a finite number"}},
		{"param where none is taken", Fault{Kind: FaultDuplicates, Device: waterMeter, Param: 2}, []string{"takes no param"}},
		{"until before from", Fault{Kind: FaultOffline, Device: waterMeter, From: paris(16, 0, 0), Until: paris(15, 0, 0)}, []string{"is not after from"}},
		{"reset with until", Fault{Kind: FaultIndexReset, Device: waterMeter, Until: paris(16, 0, 0)}, []string{"until must not be set"}},
		{"reset of a weather station", Fault{Kind: FaultIndexReset, Device: "21c5a16ac3a651ca"}, []string{"weather station"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Inject(tc.fault)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !errors.Is(err, hv.ErrInvalid) && !errors.Is(err, ErrUnknownDevice) {
				t.Errorf("error %q wraps neither ErrInvalid nor ErrUnknownDevice", err)
			}
		})
	}
	if len(r.Faults()) != 0 {
		t.Errorf("refused faults recorded: %v", r.Faults())
	}
	ok := Fault{Kind: FaultLeak, Device: waterMeter, From: paris(16, 0, 0)}
	for range 2 {
		if err := r.Inject(ok); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Inject(Fault{Kind: FaultHeatingWeekend, Device: elecHeated}); err != nil {
		t.Fatal(err)
	}
	if fs := r.Faults(); len(fs) != 2 || fs[0] != ok {
		t.Errorf("Faults() = %v, want the leak once then the heating", fs)
	}
}

func TestFaultyRunnerDeterministic(t *testing.T) {
	f, _ := smallFleet(t)
	faults := []Fault{
		{Kind: FaultMalformed, Device: ctrlTTS, Param: 0.5},
		{Kind: FaultOutOfOrder, Device: ctrlSenML2},
		{Kind: FaultNightOverconsumption, Device: elecGasHeated},
		{Kind: FaultOffline, Device: waterMeter, From: paris(15, 9, 0), Until: paris(15, 18, 0)},
	}
	var runs [2][]emitted
	for i := range runs {
		r := NewRunner(f, 1, winStart)
		for _, fl := range faults {
			if err := r.Inject(fl); err != nil {
				t.Fatal(err)
			}
		}
		runs[i] = run(r)
	}
	if len(runs[0]) != len(runs[1]) {
		t.Fatalf("%d then %d messages", len(runs[0]), len(runs[1]))
	}
	for i := range runs[0] {
		if !bytes.Equal(runs[0][i].Payload, runs[1][i].Payload) {
			t.Fatalf("message %d differs between two runs", i)
		}
	}
}

func TestParseFault(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		in   string
		want Fault
		err  string
	}{
		{in: "leak:eau-mairie-02408:from=2027-01-10T00:00:00Z:until=2027-01-12T06:30:00+01:00:param=0.3",
			want: Fault{Kind: FaultLeak, Device: "eau-mairie-02408", From: utc("2027-01-10T00:00:00Z"), Until: utc("2027-01-12T05:30:00Z"), Param: 0.3}},
		{in: "duplicates:ctrl-armoire-02408-001", want: Fault{Kind: FaultDuplicates, Device: "ctrl-armoire-02408-001"}},
		{in: "heating-weekend:gaz-ecole-02408-1:from=2027-01-15",
			want: Fault{Kind: FaultHeatingWeekend, Device: "gaz-ecole-02408-1", From: utc("2027-01-14T23:00:00Z")}},
		{in: "offline:b82268e7678b08f3:from=2027-07-01T10:00:00+02:00:for=6h",
			want: Fault{Kind: FaultOffline, Device: "b82268e7678b08f3", From: utc("2027-07-01T08:00:00Z"), Until: utc("2027-07-01T14:00:00Z")}},
		{in: "clock_skew:elec-mairie-02408:param=-900", want: Fault{Kind: FaultClockSkew, Device: "elec-mairie-02408", Param: -900}},
		{in: "leak", err: "want KIND:DEVICE"},
		{in: "leak:", err: "no device"},
		{in: "flood:eau-mairie-02408", err: `unknown fault kind "flood"`},
		{in: "leak:eau-mairie-02408:from=yesterday", err: `"yesterday" is neither RFC 3339`},
		{in: "leak:eau-mairie-02408:param=lots", err: `"lots" is not a number`},
		{in: "leak:eau-mairie-02408:param=1:param=2", err: "param given twice"},
		{in: "offline:x:for=6h", err: "for needs from"},
		{in: "offline:x:from=2027-01-10:until=2027-01-11:for=6h", err: "until or for, not both"},
		{in: "offline:x:from=2027-01-10:for=soon", err: "not a duration"},
		{in: "offline:x:from=2027-01-10:until=2027-01-09", err: "is not after from"},
		{in: "lamp_failure:x:param=2", err: "out of range"},
		{in: "day_burner:x:param=2", err: "takes no param"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFault(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameFault(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			again, err := ParseFault(got.String())
			if err != nil || !sameFault(again, got) {
				t.Fatalf("String %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func sameFault(a, b Fault) bool {
	return a.Kind == b.Kind && a.Device == b.Device && a.From.Equal(b.From) && a.Until.Equal(b.Until) && a.Param == b.Param
}

func TestParseFaults(t *testing.T) {
	fs, err := ParseFaults([]string{"leak:a", "duplicates:b"})
	if err != nil || len(fs) != 2 || fs[1].Kind != FaultDuplicates {
		t.Fatalf("got %v, %v", fs, err)
	}
	_, err = ParseFaults([]string{"leak:a", "flood:b", "offline:c:for=1h"})
	if err == nil || !strings.Contains(err.Error(), "flood") || !strings.Contains(err.Error(), "for needs from") {
		t.Fatalf("error %v, want both bad faults named", err)
	}
}
