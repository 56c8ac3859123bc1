// Package simulators makes devices that behave like the Aisne fleet: simulators/fleet generates the fleet
// over the real territory, simulators/model gives each building, street light and weather station its
// behaviour, and the Runner here turns them into the MQTT messages real devices would send, each device in
// its own payload format, on its own reporting interval. Faults (faults.go) make chosen devices misbehave
// on demand, each with the signature in the data that the rules or ingest must recognise.
package simulators

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
)

// Message is one MQTT publication.
type Message struct {
	Topic   string
	Payload []byte
	Device  string // the device that sent it: not published, for whoever counts or filters messages
}

// Runner advances the fleet in time; time only moves forward. It is safe for concurrent use, so faults can
// be injected and cleared while Publish runs it.
type Runner struct {
	mu        sync.Mutex
	devices   []*simDevice
	byID      map[string]*simDevice
	heatMeter map[string]string // site → the meter its heating shows on
	faults    []*faultState     // in injection order
	weather   *model.Weather
	profiles  map[string]map[string]hv.KeyMap
	observe   func(device string, t time.Time, vals map[hv.Metric]float64) // tests: what each report carried
}

type simDevice struct {
	fleet.Device
	site      hv.Site
	baseIndex float64 // the index a fresh runner or history starts from
	seed      uint64  // the device's own draws (presence)
	building  model.Building
	index     *model.Index // the device's cumulative index (energy, volume or heat)
	hours     model.OperatingHours
	next      time.Time // next report

	faults  []*faultState // nil for nearly every device
	backlog []Message     // offline: reports kept until the device comes back
	held    *Message      // out_of_order: the message waiting to go after the next one
	ctl     *controller   // lighting controller: program and command in force (controller.go); nil until one comes
	sun     sunClock      // lighting controller: its failsafe's switching times of the day (DefaultLevel)
}

// NewRunner prepares the fleet to report from start on. Each device's first report falls at a point of its
// interval derived from its id, so a fleet's messages spread over time instead of arriving in one burst.
func NewRunner(f *fleet.Fleet, seed uint64, start time.Time) *Runner {
	r := &Runner{weather: model.NewWeather(seed), profiles: f.Profiles, byID: make(map[string]*simDevice, len(f.Devices)),
		heatMeter: map[string]string{}}
	sites := make(map[string]hv.Site, len(f.Sites))
	for _, s := range f.Sites {
		sites[s.ID] = s
	}
	heating := map[string]string{} // site → how it is heated, from the meters it has
	for _, d := range f.Devices {
		switch d.Fluid {
		case hv.Gas:
			heating[d.Site] = model.HeatingGas
			r.heatMeter[d.Site] = d.ID
		case hv.Heat:
			heating[d.Site] = model.HeatingNetwork
			r.heatMeter[d.Site] = d.ID
		}
	}
	for _, d := range f.Devices {
		h := hash(d.ID)
		site := sites[d.Site]
		sd := &simDevice{Device: d, site: site}
		if d.Kind == hv.DeviceMeter {
			heat := heating[d.Site]
			if heat == "" {
				heat = model.HeatingElectric
			}
			sd.building = model.Building{Usage: site.Usage, SurfaceM2: site.SurfaceM2, Heating: heat, Seed: h}
		}
		scale := model.ScaleWToKWh
		if d.Fluid == hv.Gas || d.Fluid == hv.Water {
			scale = model.ScaleM3hToM3
		}
		// Indexes start where a meter in service for years would be.
		sd.baseIndex = float64(1000 + h%50000)
		sd.seed = h
		sd.index = model.NewIndex(sd.baseIndex, scale)
		every := d.Interval
		if every <= 0 {
			every = 10 * time.Minute
		}
		sd.next = start.Truncate(every).Add(time.Duration(h % uint64(every)))
		if sd.next.Before(start) {
			sd.next = sd.next.Add(every)
		}
		r.devices = append(r.devices, sd)
		r.byID[d.ID] = sd
	}
	return r
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Devices is the number of simulated devices.
func (r *Runner) Devices() int { return len(r.devices) }

// Due returns the messages of every device whose report falls at or before t, oldest first, and moves each
// on by its interval. A device that missed several reports sends them all, as one back from an outage does.
//
// Faults (Inject) change what a device measures, what it stamps and writes, and what it delivers: an
// offline device keeps its reports and sends them, in order, once its window is over.
func (r *Runner) Due(t time.Time) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Message
	for _, d := range r.devices {
		for !d.next.After(t) {
			at := d.next
			m := r.report(d, at)
			if d.faults != nil || d.held != nil || len(d.backlog) > 0 {
				out = d.deliver(d.corrupt(m, at), at, out)
			} else {
				out = append(out, m)
			}
			d.next = d.next.Add(d.Interval)
			if d.Interval <= 0 {
				d.next = t.Add(time.Nanosecond)
			}
		}
		if d.held != nil || len(d.backlog) > 0 {
			out = d.settle(t, out)
		}
	}
	return out
}

// values returns what a device measures at t, in canonical metrics, advancing its indexes.
func (r *Runner) values(d *simDevice, t time.Time) map[hv.Metric]float64 {
	v := map[hv.Metric]float64{}
	switch d.Kind {
	case hv.DeviceWeather:
		v[hv.TemperatureC] = round(r.weather.Temperature(t), 1)
	case hv.DeviceLightingController:
		level := r.level(d, t)
		n := max(1, d.Luminaires)
		failed := d.failedLamps(t, n)
		perLamp := d.NominalW / float64(n)
		// A failed luminaire's lamp is out but its node and driver stay powered.
		power := model.LampPowerW(perLamp, level, d.LED)*float64(n-failed) + model.StandbyW*float64(failed)
		d.resetIndex(t)
		v[hv.LevelPct] = level
		v[hv.PowerW] = round(power, 1)
		v[hv.EnergyKWh] = round(d.index.Advance(t, power), 3)
		v[hv.OperatingHours] = round(d.hours.Advance(t, level > 0), 3)
		v[hv.LampFailure], v[hv.DoorOpen] = 0, 0
		if failed > 0 {
			v[hv.LampFailure] = 1
		}
		if d.Presence {
			v[hv.Presence] = 0
			if model.PresenceDetected(d.seed, t) {
				v[hv.Presence] = 1
			}
		}
	default:
		s := d.building.Sample(t, r.weather)
		if d.faults != nil {
			s = r.faultySample(d, t, s)
			d.resetIndex(t)
		}
		switch d.Fluid {
		case hv.Gas:
			v[hv.VolumeM3] = round(d.index.Advance(t, s.GasM3h), 3)
		case hv.Water:
			v[hv.VolumeM3] = round(d.index.Advance(t, s.WaterM3h), 3)
		case hv.Heat:
			v[hv.HeatKWh] = round(d.index.Advance(t, s.HeatW), 3)
			v[hv.PowerW] = round(s.HeatW, 1)
		default:
			v[hv.EnergyKWh] = round(d.index.Advance(t, s.ElectricW), 3)
			v[hv.PowerW] = round(s.ElectricW, 1)
		}
	}
	return v
}

// DefaultLevel is the failsafe schedule of a street-light controller at latitude lat, longitude lon, run when
// it has no program in force (none received, or outside the program's validity; see controller.go): full
// from sunset, half from 23:00 Paris time through the night, off at sunrise, as real controllers' built-in
// astronomical clocks do. A fixed 18:00–07:00 schedule would burn in daylight from spring to autumn, which
// the day_burner rule rightly flags.
//
// It computes the day's sun times on every call (a few µs); the simulated controllers cache them per day
// (sunClock).
func DefaultLevel(t time.Time, lat, lon float64) float64 {
	var c sunClock
	level, _ := c.level(t, lat, lon)
	return level
}

// failsafe is DefaultLevel at d's site, from d's cache: the level of ~1 740 controllers is asked at every
// 5-minute report, and by the history at every hour of 13 months. Callers hold r.mu (the live runner's
// paths do); the history keeps its own clock per device.
func (d *simDevice) failsafe(t time.Time) float64 {
	level, _ := d.sun.level(t, d.site.Lat, d.site.Lon)
	return level
}

// sunClock holds the failsafe's switching times of one local day at one place, recomputed when asked about
// another day.
type sunClock struct {
	from, until     time.Time // the local day held: [midnight, next midnight), Paris time
	sunrise, sunset time.Time // zero when the sun does not rise or set that day (never in the Aisne)
	late            time.Time // 23:00, when the lights go down to half
}

// Failsafe levels.
const (
	failsafeEvening = 100 // sunset to 23:00
	failsafeNight   = 50  // 23:00 to sunrise
)

// level is the failsafe level at t at latitude lat, longitude lon, and the instant it next changes (at the
// latest, the end of t's local day).
func (c *sunClock) level(t time.Time, lat, lon float64) (float64, time.Time) {
	if c.until.IsZero() || t.Before(c.from) || !t.Before(c.until) {
		loc := model.Paris()
		day := sun.Compute(t, lat, lon, loc)
		y, m, dd := day.Date.Date()
		c.from, c.until = day.Date, time.Date(y, m, dd+1, 0, 0, 0, 0, loc)
		c.late = time.Date(y, m, dd, 23, 0, 0, 0, loc)
		c.sunrise, c.sunset = day.Sunrise, day.Sunset
	}
	switch {
	case c.sunrise.IsZero() || c.sunset.IsZero():
		// Polar day or night: no astronomical switch, so the safe side, lit by the clock alone.
	case t.Before(c.sunrise):
		return failsafeNight, c.sunrise
	case t.Before(c.sunset):
		return 0, c.sunset
	}
	if t.Before(c.late) {
		return failsafeEvening, c.late
	}
	return failsafeNight, c.until
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// report encodes the device's values at t in its format, stamped with the device's clock.
func (r *Runner) report(d *simDevice, t time.Time) Message {
	vals := r.values(d, t)
	if r.observe != nil {
		r.observe(d.ID, t, vals)
	}
	if d.faults != nil {
		t = d.stamp(t)
	}
	m := r.encode(d, t, vals)
	m.Device = d.ID
	return m
}

// encode writes values in d's payload format with timestamp t.
func (r *Runner) encode(d *simDevice, t time.Time, vals map[hv.Metric]float64) Message {
	// Keys in a fixed order, so a device's payloads are reproducible.
	metrics := make([]hv.Metric, 0, len(vals))
	for m := range vals {
		metrics = append(metrics, m)
	}
	slices.Sort(metrics)
	switch d.Format {
	case fleet.FormatChirpStack, fleet.FormatTTS:
		return r.lorawan(d, t, vals)
	case fleet.FormatLineProtocol:
		var b strings.Builder
		b.WriteString("meter,device=" + d.ID + " ")
		for i, m := range metrics {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(string(m) + "=" + strconv.FormatFloat(inDeviceUnit(d, m, vals[m]), 'f', -1, 64))
		}
		b.WriteString(" " + strconv.FormatInt(t.UnixNano(), 10))
		return Message{Topic: "hv/lp", Payload: []byte(b.String())}
	case fleet.FormatSenML:
		recs := make([]map[string]any, len(metrics))
		for i, m := range metrics {
			recs[i] = map[string]any{"n": string(m), "u": hv.Metric(m).Unit(), "v": vals[m]}
			if recs[i]["u"] == "" {
				delete(recs[i], "u")
			}
		}
		recs[0]["bn"] = d.ID + "/"
		recs[0]["bt"] = float64(t.UnixMilli()) / 1000
		b, _ := json.Marshal(recs)
		return Message{Topic: "hv/" + d.ID + "/up", Payload: b}
	default:
		obj := map[string]any{"ts": t.UnixMilli()}
		for _, m := range metrics {
			obj[string(m)] = inDeviceUnit(d, m, vals[m])
		}
		b, _ := json.Marshal(obj)
		return Message{Topic: "hv/" + d.ID + "/up", Payload: b}
	}
}

// inDeviceUnit converts a canonical value to the unit a device with a unit hint sends bare numbers in.
func inDeviceUnit(d *simDevice, m hv.Metric, v float64) float64 {
	if u := d.Units[m]; u != "" {
		return fromCanonical(u, v)
	}
	return v
}

// fromCanonical converts a value from its metric's canonical unit to unit: the units the fleet's hints and
// LoRaWAN profiles use.
func fromCanonical(unit string, v float64) float64 {
	switch unit {
	case "Wh", "L":
		return math.Round(v * 1000)
	case "kW":
		return v / 1000
	}
	return v
}

// lorawan wraps the values, under the keys and units of the device's profile, in a ChirpStack v4 or The
// Things Stack v3 uplink.
func (r *Runner) lorawan(d *simDevice, t time.Time, vals map[hv.Metric]float64) Message {
	object := map[string]float64{}
	for key, km := range r.profiles[d.Profile] {
		if v, ok := vals[km.Metric]; ok {
			object[key] = fromCanonical(km.Unit, v)
		}
	}
	ts := t.UTC().Format(time.RFC3339Nano)
	if d.Format == fleet.FormatChirpStack {
		b, _ := json.Marshal(map[string]any{
			"deduplicationId": fmt.Sprintf("%016x", hash(d.ID+ts)),
			"time":            ts,
			"deviceInfo":      map[string]any{"devEui": d.ID, "deviceProfileName": d.Profile, "applicationId": fleet.ChirpStackApplication},
			"fPort":           2,
			"object":          object,
		})
		return Message{Topic: "application/" + fleet.ChirpStackApplication + "/device/" + d.ID + "/event/up", Payload: b}
	}
	b, _ := json.Marshal(map[string]any{
		"end_device_ids": map[string]any{"device_id": d.ID, "application_ids": map[string]string{"application_id": ttsApplicationID(fleet.TTSApplication)}},
		"received_at":    ts,
		"uplink_message": map[string]any{"decoded_payload": object, "received_at": ts, "f_port": 2},
	})
	return Message{Topic: "v3/" + fleet.TTSApplication + "/devices/" + d.ID + "/up", Payload: b}
}

// ttsApplicationID is the application id of a The Things Stack "app@tenant", as its messages name it.
func ttsApplicationID(app string) string {
	id, _, _ := strings.Cut(app, "@")
	return id
}
