package simulators

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
)

// FaultKind names a fault the Runner can inject: each leaves a signature in the data that the rules (or
// ingest itself) must recognise.
type FaultKind string

// The kinds of fault, with what Param means and its default when 0.
const (
	// FaultLeak: a water meter's index carries a continuous extra flow, day and night, so its night flow
	// never reaches zero. Param: the leak in m³/h (default 0.2, a running cistern).
	FaultLeak FaultKind = "leak"
	// FaultHeatingWeekend: the heating runs on Saturday and Sunday (Paris) as it does when the building is
	// in use on a working day, instead of the weekend setback. Applies to the meter that shows the heating:
	// gas or heat meter, or the electricity meter of an electrically heated building. No Param.
	FaultHeatingWeekend FaultKind = "heating_weekend"
	// FaultNightOverconsumption: an electricity meter draws a constant extra load from 22:00 to 06:00
	// Paris (equipment left on). Param: the load in W (default 30 % of the building's mean electric power
	// between 06:00 and 22:00 on the fault's first day).
	FaultNightOverconsumption FaultKind = "night_overconsumption"
	// FaultDayBurner: a lighting controller burns at 100 % whenever its schedule has the lights off, that is
	// in daylight (a stuck contactor or a failed photocell). No Param.
	FaultDayBurner FaultKind = "day_burner"
	// FaultLampFailure: a share of a lighting controller's luminaires are out: the power drops while the
	// reported level stays on, and lamp_failure is 1 throughout the window (controllers latch the alarm).
	// Param: the share failed, in (0, 1] (default 0.3; at least one luminaire).
	FaultLampFailure FaultKind = "lamp_failure"
	// FaultDimmingFailure: a lighting controller ignores its program and commands, stuck at one level; it
	// still acks commands "ok" (ApplyCommand), so only its measured level and power show it.
	// Param: that level in % (default 100).
	FaultDimmingFailure FaultKind = "dimming_failure"
	// FaultOffline: the device sends nothing during the window, keeping every report it makes (up to
	// maxBacklog, the oldest dropped first), and sends them all, oldest first with their original timestamps,
	// when it comes back: at Until, or at the next Due after Clear. No Param.
	FaultOffline FaultKind = "offline"
	// FaultIndexReset: the device's cumulative index (and a controller's operating hours) restarts at its
	// first report from From on, as after a meter replacement; Until must be zero. Param: the new meter's
	// first index (default 0).
	FaultIndexReset FaultKind = "index_reset"
	// FaultClockSkew: the device stamps its reports Param seconds off (default +600, beyond the 5 minutes
	// into the future that ingest accepts; negative values lie in the past). The values are those of the
	// true instant.
	FaultClockSkew FaultKind = "clock_skew"
	// FaultDuplicates: every message is sent twice in a row. No Param.
	FaultDuplicates FaultKind = "duplicates"
	// FaultOutOfOrder: consecutive messages are swapped pairwise (each odd one waits for the next). No Param.
	FaultOutOfOrder FaultKind = "out_of_order"
	// FaultMalformed: a share of the messages are corrupted, the corruption varying from one message to the
	// next: truncated payload, a value of the wrong type (a number sent as a string, a double-encoded
	// LoRaWAN object, a text timestamp in line protocol), or garbage bytes. Param: the share, in (0, 1]
	// (default 1).
	FaultMalformed FaultKind = "malformed"
)

// FaultKinds lists every kind, in the order above.
func FaultKinds() []FaultKind {
	return []FaultKind{FaultLeak, FaultHeatingWeekend, FaultNightOverconsumption, FaultDayBurner,
		FaultLampFailure, FaultDimmingFailure, FaultOffline, FaultIndexReset, FaultClockSkew, FaultDuplicates,
		FaultOutOfOrder, FaultMalformed}
}

// Defaults of Param, where a fixed one exists.
const (
	defaultLeakM3h       = 0.2
	defaultNightShare    = 0.3
	defaultFailedShare   = 0.3
	defaultStuckLevel    = 100
	defaultSkewS         = 600
	defaultMalformedRate = 1.0
	maxSkewS             = 1e9 // about 32 years: any real skew, and far from time.Duration's limit
)

// maxBacklog bounds what an offline device keeps: a month of reports every 5 minutes. Real controllers keep
// days to weeks; a month lets a test or demo outage of any sensible length come back whole.
const maxBacklog = 30 * 24 * 12

// ErrUnknownDevice marks a fault naming a device the Runner does not simulate.
var ErrUnknownDevice = errors.New("unknown device")

// Fault is a fault to inject into one device of a Runner.
type Fault struct {
	Kind   FaultKind
	Device string // the device's id, as in the registry
	// From and Until bound the active window [From, Until) in simulated time: the time of each report.
	// Zero From is since always; zero Until is open-ended.
	From, Until time.Time
	// Param is the kind's magnitude (see the FaultKind constants); 0 means the kind's default.
	Param float64
}

// String is the fault in the syntax ParseFault reads.
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind) + ":" + f.Device)
	if !f.From.IsZero() {
		b.WriteString(":from=" + f.From.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		b.WriteString(":until=" + f.Until.Format(time.RFC3339Nano))
	}
	if f.Param != 0 {
		b.WriteString(":param=" + strconv.FormatFloat(f.Param, 'g', -1, 64))
	}
	return b.String()
}

func (f Fault) active(t time.Time) bool {
	return !t.Before(f.From) && (f.Until.IsZero() || t.Before(f.Until))
}

// check validates what needs no fleet: the kind, the window and the range of Param.
func (f Fault) check() error {
	if !slices.Contains(FaultKinds(), f.Kind) {
		kinds := make([]string, 0, len(FaultKinds()))
		for _, k := range FaultKinds() {
			kinds = append(kinds, string(k))
		}
		return fmt.Errorf("%w: unknown fault kind %q (known: %s)", hv.ErrInvalid, f.Kind, strings.Join(kinds, ", "))
	}
	if f.Device == "" {
		return fmt.Errorf("%w: %s: no device", hv.ErrInvalid, f.Kind)
	}
	if !f.Until.IsZero() && !f.Until.After(f.From) {
		return fmt.Errorf("%w: %s: until %s is not after from %s", hv.ErrInvalid, f.Kind,
			f.Until.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	p := f.Param
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return fmt.Errorf("%w: %s: param %v is not a finite number", hv.ErrInvalid, f.Kind, p)
	}
	bad := func(want string) error {
		return fmt.Errorf("%w: %s: param %v out of range: %s", hv.ErrInvalid, f.Kind, p, want)
	}
	switch f.Kind {
	case FaultLeak:
		if p < 0 {
			return bad("a flow in m³/h, 0 or more (0: 0.2)")
		}
	case FaultNightOverconsumption:
		if p < 0 {
			return bad("a load in W, 0 or more (0: 30 % of the day mean)")
		}
	case FaultLampFailure:
		if p < 0 || p > 1 {
			return bad("a share of luminaires in [0, 1] (0: 0.3)")
		}
	case FaultDimmingFailure:
		if p < 0 || p > 100 {
			return bad("a level in [0, 100] % (0: 100)")
		}
	case FaultIndexReset:
		if p < 0 {
			return bad("the new index, 0 or more")
		}
		if !f.Until.IsZero() {
			return fmt.Errorf("%w: index_reset happens once, at from: until must not be set", hv.ErrInvalid)
		}
	case FaultClockSkew:
		if math.Abs(p) > maxSkewS {
			return bad(fmt.Sprintf("seconds, at most %g either way (0: +600)", float64(maxSkewS)))
		}
	case FaultMalformed:
		if p < 0 || p > 1 {
			return bad("a share of messages in [0, 1] (0: 1)")
		}
	default:
		if p != 0 {
			return fmt.Errorf("%w: %s takes no param (got %v)", hv.ErrInvalid, f.Kind, p)
		}
	}
	return nil
}

func (f Fault) param(def float64) float64 {
	if f.Param == 0 {
		return def
	}
	return f.Param
}

// faultState is an injected fault and what it remembers while it runs.
type faultState struct {
	Fault
	done   bool    // index_reset: applied
	nightW float64 // night_overconsumption: the load, once known
}

// Inject adds a fault. It checks the kind, the window, Param and that the device fits the kind (a leak
// needs a water meter…); the error names the problem. Injecting a fault equal to one already there does
// nothing, so a caller may validate a list early and hand it to Publish too.
func (r *Runner) Inject(f Fault) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("inject fault: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[f.Device]
	if !ok {
		return fmt.Errorf("inject fault %s: %w %q: not in the simulated fleet", f.Kind, ErrUnknownDevice, f.Device)
	}
	if err := r.fits(f.Kind, d); err != nil {
		return fmt.Errorf("inject fault %s on %s: %w", f.Kind, f.Device, err)
	}
	for _, g := range r.faults {
		if g.Kind == f.Kind && g.Device == f.Device && g.From.Equal(f.From) && g.Until.Equal(f.Until) && g.Param == f.Param {
			return nil
		}
	}
	st := &faultState{Fault: f}
	r.faults = append(r.faults, st)
	d.faults = append(d.faults, st)
	return nil
}

// fits says why device d cannot carry a fault of kind k, or nil.
func (r *Runner) fits(k FaultKind, d *simDevice) error {
	need := func(what string) error {
		return fmt.Errorf("%w: %s needs %s, %s is %s", hv.ErrInvalid, k, what, d.ID, describe(d))
	}
	switch k {
	case FaultLeak:
		if d.Kind != hv.DeviceMeter || d.Fluid != hv.Water {
			return need("a water meter")
		}
	case FaultHeatingWeekend:
		if d.Kind != hv.DeviceMeter {
			return need("a gas or heat meter, or the electricity meter of an electrically heated building")
		}
		switch d.Fluid {
		case hv.Gas, hv.Heat:
		case hv.Electricity, "":
			if d.building.Heating != model.HeatingElectric {
				by := "gas"
				if d.building.Heating == model.HeatingNetwork {
					by = "the heat network"
				}
				return fmt.Errorf("%w: %s needs the meter that shows the heating: %s is the electricity meter of a building heated by %s, whose meter is %s",
					hv.ErrInvalid, k, d.ID, by, r.heatMeter[d.Site])
			}
		default:
			return need("a gas or heat meter, or the electricity meter of an electrically heated building")
		}
	case FaultNightOverconsumption:
		if d.Kind != hv.DeviceMeter || (d.Fluid != hv.Electricity && d.Fluid != "") {
			return need("an electricity meter")
		}
	case FaultDayBurner, FaultLampFailure, FaultDimmingFailure:
		if d.Kind != hv.DeviceLightingController {
			return need("a lighting controller")
		}
	case FaultIndexReset:
		if d.Kind == hv.DeviceWeather {
			return need("a device with a cumulative index")
		}
	}
	return nil
}

func describe(d *simDevice) string {
	switch d.Kind {
	case hv.DeviceLightingController:
		return "a lighting controller"
	case hv.DeviceWeather:
		return "a weather station"
	case hv.DeviceMeter:
		switch d.Fluid {
		case hv.Gas:
			return "a gas meter"
		case hv.Water:
			return "a water meter"
		case hv.Heat:
			return "a heat meter"
		}
		return "an electricity meter"
	}
	return "a " + string(d.Kind)
}

// Clear removes every fault of a device. What an offline or out-of-order device still holds goes out at
// the next Due, as a device back to normal sends it.
func (r *Runner) Clear(device string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = slices.DeleteFunc(r.faults, func(f *faultState) bool { return f.Device == device })
	if d, ok := r.byID[device]; ok {
		d.faults = nil
	}
}

// Faults returns the faults in force, in the order they were injected, as they were given.
func (r *Runner) Faults() []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Fault, len(r.faults))
	for i, f := range r.faults {
		out[i] = f.Fault
	}
	return out
}

// fault returns the first fault of kind k active on d at t, or nil. Nearly every device has no fault, so
// this costs one length test on the hot path.
func (d *simDevice) fault(k FaultKind, t time.Time) *faultState {
	for _, f := range d.faults {
		if f.Kind == k && f.active(t) {
			return f
		}
	}
	return nil
}

// level is the dimming level a controller runs at t: its command, program or failsafe schedule
// (scheduled), unless a fault overrides it.
func (r *Runner) level(d *simDevice, t time.Time) float64 {
	level := d.scheduled(t)
	if d.faults == nil {
		return level
	}
	if f := d.fault(FaultDimmingFailure, t); f != nil {
		return f.param(defaultStuckLevel)
	}
	if level == 0 && d.fault(FaultDayBurner, t) != nil {
		return 100
	}
	return level
}

// failedLamps is how many of n luminaires are out at t.
func (d *simDevice) failedLamps(t time.Time, n int) int {
	f := d.fault(FaultLampFailure, t)
	if f == nil {
		return 0
	}
	return min(n, max(1, int(math.Round(f.param(defaultFailedShare)*float64(n)))))
}

// resetIndex restarts the device's index at its first report from the fault's From on.
func (d *simDevice) resetIndex(t time.Time) {
	f := d.fault(FaultIndexReset, t)
	if f == nil || f.done {
		return
	}
	f.done = true
	d.index.Value = f.Param
	d.hours.Hours = 0 // a new controller counts its own burning hours
}

// faultySample applies the building faults to the clean sample s of d at t.
func (r *Runner) faultySample(d *simDevice, t time.Time, s model.Sample) model.Sample {
	if f := d.fault(FaultLeak, t); f != nil {
		s.WaterM3h += f.param(defaultLeakM3h)
	}
	if d.fault(FaultHeatingWeekend, t) != nil && weekend(t) {
		on := d.building.SampleOutdoor(occupiedInstant(d.building.Usage, t), r.weather.Outdoor(t))
		if extra := on.HeatW - s.HeatW; extra > 0 {
			s.HeatW, s.GasM3h = on.HeatW, on.GasM3h
			if d.building.Heating == model.HeatingElectric {
				s.ElectricW += extra
			}
		}
	}
	if f := d.fault(FaultNightOverconsumption, t); f != nil {
		if h := t.In(model.Paris()).Hour(); h >= 22 || h < 6 {
			if f.nightW == 0 {
				f.nightW = f.Param
				if f.nightW == 0 {
					day := f.From
					if day.IsZero() {
						day = t
					}
					f.nightW = defaultNightShare * r.dayMeanW(d, day)
				}
			}
			s.ElectricW += f.nightW
		}
	}
	return s
}

func weekend(t time.Time) bool {
	wd := t.In(model.Paris()).Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

// occupiedInstant is the instant whose heating a building left on over the weekend of t runs at: the
// busiest half-hour of the last working day before that weekend on which the building was used (a school
// closed for the holidays looks further back). Without one in three weeks, the last Friday at 10:30.
func occupiedInstant(usage string, t time.Time) time.Time {
	p := t.In(model.Paris())
	y, m, dd := p.Date()
	day := time.Date(y, m, dd, 0, 0, 0, 0, model.Paris())
	for day.Weekday() != time.Friday {
		day = day.AddDate(0, 0, -1)
	}
	fallback := day.Add(10*time.Hour + 30*time.Minute)
	for i := 0; i < 21; i++ {
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			best, bestOcc := time.Time{}, 0.1
			for h := 7; h <= 19; h++ {
				at := time.Date(day.Year(), day.Month(), day.Day(), h, 30, 0, 0, model.Paris())
				if o := model.Occupancy(usage, at); o > bestOcc {
					best, bestOcc = at, o
				}
			}
			if !best.IsZero() {
				return best
			}
		}
		day = day.AddDate(0, 0, -1)
	}
	return fallback
}

// dayMeanW is the clean mean electric power of d's building between 06:00 and 22:00 Paris on the day of t.
func (r *Runner) dayMeanW(d *simDevice, t time.Time) float64 {
	y, m, dd := t.In(model.Paris()).Date()
	at := time.Date(y, m, dd, 6, 0, 0, 0, model.Paris())
	sum, n := 0.0, 0
	for i := 0; i < 16*4; i++ {
		sum += d.building.Sample(at.Add(time.Duration(i)*15*time.Minute), r.weather).ElectricW
		n++
	}
	return sum / float64(n)
}

// stamp is the time a device writes in its report made at t.
func (d *simDevice) stamp(t time.Time) time.Time {
	if f := d.fault(FaultClockSkew, t); f != nil {
		return t.Add(time.Duration(f.param(defaultSkewS) * float64(time.Second)))
	}
	return t
}

// hashAt is a deterministic hash of a device, a purpose and an instant.
func hashAt(device, salt string, t time.Time) uint64 {
	h := fnv.New64a()
	h.Write([]byte(device))
	h.Write([]byte{0})
	h.Write([]byte(salt))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(t.UnixNano()))
	h.Write(b[:])
	return h.Sum64()
}

// corrupt returns m damaged when the malformed fault picks the report made at t.
func (d *simDevice) corrupt(m Message, t time.Time) Message {
	f := d.fault(FaultMalformed, t)
	if f == nil {
		return m
	}
	h := hashAt(d.ID, "malformed", t)
	if unitOf(h) >= f.param(defaultMalformedRate) {
		return m
	}
	switch hashAt(d.ID, "variant", t) % 3 {
	case 0:
		m.Payload = truncate(d.Format, m.Payload)
	case 1:
		m.Payload = wrongType(d.Format, m.Payload)
	default:
		m.Payload = garbage(h, len(m.Payload))
	}
	return m
}

// truncate cuts a payload as a lost packet end or a too-small buffer would. JSON cut anywhere before its
// last byte is invalid; a line-protocol line cut at a field boundary would still parse, so it is cut just
// after its last '=', leaving a field without a value.
func truncate(format string, p []byte) []byte {
	if format == fleet.FormatLineProtocol {
		if i := strings.LastIndexByte(string(p), '='); i >= 0 {
			return slices.Clone(p[:i+1])
		}
	}
	return slices.Clone(p[:len(p)/2])
}

// wrongType rewrites a payload with a value of the wrong type, as buggy firmware or codecs send them: a
// number as a string (flat JSON, SenML), a double-encoded codec object (LoRaWAN), a text timestamp (line
// protocol).
func wrongType(format string, p []byte) []byte {
	switch format {
	case fleet.FormatLineProtocol:
		s := string(p)
		i := strings.LastIndexByte(s, ' ')
		ns, err := strconv.ParseInt(s[i+1:], 10, 64)
		if err != nil {
			return p
		}
		return []byte(s[:i+1] + time.Unix(0, ns).UTC().Format(time.RFC3339))
	case fleet.FormatSenML:
		var recs []map[string]any
		if json.Unmarshal(p, &recs) != nil || len(recs) == 0 {
			return p
		}
		recs[0]["v"] = fmt.Sprint(recs[0]["v"])
		b, _ := json.Marshal(recs)
		return b
	case fleet.FormatChirpStack, fleet.FormatTTS:
		var env map[string]any
		if json.Unmarshal(p, &env) != nil {
			return p
		}
		obj := env
		key := "object"
		if format == fleet.FormatTTS {
			obj, _ = env["uplink_message"].(map[string]any)
			key = "decoded_payload"
		}
		if obj == nil {
			return p
		}
		inner, _ := json.Marshal(obj[key])
		obj[key] = string(inner)
		b, _ := json.Marshal(env)
		return b
	default:
		var obj map[string]any
		if json.Unmarshal(p, &obj) != nil {
			return p
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			if k != "ts" {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return p
		}
		k := slices.Min(keys)
		obj[k] = fmt.Sprint(obj[k])
		b, _ := json.Marshal(obj)
		return b
	}
}

// garbage is n bytes of noise (at least 8) starting with 0xFF, which is neither valid UTF-8 nor the start
// of any JSON value, as a radio or serial link that lost its framing delivers.
func garbage(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x6761726261676521))
	b := make([]byte, max(n, 8))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[0] = 0xFF
	return b
}

// deliver sends the message of d's report made at t through the transport faults: held while offline
// (then the backlog first when back), doubled, swapped with the next.
func (d *simDevice) deliver(m Message, t time.Time, out []Message) []Message {
	if d.fault(FaultOffline, t) != nil {
		if len(d.backlog) == maxBacklog {
			d.backlog = slices.Delete(d.backlog, 0, 1)
		}
		d.backlog = append(d.backlog, m)
		return out
	}
	out = d.flushBacklog(out)
	n := 1
	if d.fault(FaultDuplicates, t) != nil {
		n = 2
	}
	swap := d.fault(FaultOutOfOrder, t) != nil
	for range n {
		switch {
		case swap && d.held == nil:
			d.held = &m
		case d.held != nil:
			// The held message goes after this one when swapping, before it once the fault is over.
			if swap {
				out = append(out, m, *d.held)
			} else {
				out = append(out, *d.held, m)
			}
			d.held = nil
		default:
			out = append(out, m)
		}
	}
	return out
}

func (d *simDevice) flushBacklog(out []Message) []Message {
	if len(d.backlog) > 0 {
		out = append(out, d.backlog...)
		d.backlog = nil
	}
	return out
}

// settle sends, at Due time t, what d holds once the fault holding it is over: the backlog when the device
// comes back, the odd message once swapping ends.
func (d *simDevice) settle(t time.Time, out []Message) []Message {
	if len(d.backlog) > 0 && d.fault(FaultOffline, t) == nil {
		out = d.flushBacklog(out)
	}
	if d.held != nil && d.fault(FaultOutOfOrder, t) == nil && len(d.backlog) == 0 {
		out = append(out, *d.held)
		d.held = nil
	}
	return out
}

// ParseFault reads a fault from its command-line form:
//
//	KIND:DEVICE[:from=TIME][:until=TIME | :for=DURATION][:param=NUMBER]
//
// KIND is one of FaultKinds (a '-' may stand for '_'); DEVICE the device's id. TIME is RFC 3339
// (2027-01-10T08:00:00+01:00) or a date (2027-01-10, midnight in Paris); the colons inside a time need no
// escaping: an option starts only at a segment beginning with from=, until=, for= or param=. for is a Go
// duration (48h, 90m) added to from, which it requires. Without from the fault applies from the start;
// without until or for, until cleared. For example:
//
//	leak:eau-mairie-02408:from=2027-01-10T00:00:00Z:until=2027-01-12T00:00:00Z:param=0.3
//	offline:ctrl-armoire-02408-003:from=2027-01-10:for=6h
//	clock_skew:elec-mairie-02408:param=-900
func ParseFault(s string) (Fault, error) {
	var f Fault
	segs := strings.Split(s, ":")
	if len(segs) < 2 || segs[0] == "" {
		return f, fmt.Errorf("parse fault %q: %w: want KIND:DEVICE[:from=…][:until=…|:for=…][:param=…]", s, hv.ErrInvalid)
	}
	f.Kind = FaultKind(strings.ReplaceAll(strings.ToLower(segs[0]), "-", "_"))
	isOption := func(seg string) bool {
		k, _, ok := strings.Cut(seg, "=")
		return ok && (k == "from" || k == "until" || k == "for" || k == "param")
	}
	// The device runs to the first option; each option runs to the next.
	i := 1
	for i < len(segs) && (i == 1 || !isOption(segs[i])) {
		i++
	}
	f.Device = strings.Join(segs[1:i], ":")
	opts := map[string]string{}
	for i < len(segs) {
		j := i + 1
		for j < len(segs) && !isOption(segs[j]) {
			j++
		}
		k, v, _ := strings.Cut(strings.Join(segs[i:j], ":"), "=")
		if _, dup := opts[k]; dup {
			return f, fmt.Errorf("parse fault %q: %w: %s given twice", s, hv.ErrInvalid, k)
		}
		opts[k] = v
		i = j
	}
	var err error
	if v, ok := opts["from"]; ok {
		if f.From, err = parseFaultTime(v); err != nil {
			return f, fmt.Errorf("parse fault %q: from: %w", s, err)
		}
	}
	if v, ok := opts["until"]; ok {
		if f.Until, err = parseFaultTime(v); err != nil {
			return f, fmt.Errorf("parse fault %q: until: %w", s, err)
		}
	}
	if v, ok := opts["for"]; ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return f, fmt.Errorf("parse fault %q: for: %w: %q is not a duration (48h, 90m)", s, hv.ErrInvalid, v)
		case f.From.IsZero():
			return f, fmt.Errorf("parse fault %q: %w: for needs from", s, hv.ErrInvalid)
		case !f.Until.IsZero():
			return f, fmt.Errorf("parse fault %q: %w: give until or for, not both", s, hv.ErrInvalid)
		}
		f.Until = f.From.Add(d)
	}
	if v, ok := opts["param"]; ok {
		if f.Param, err = strconv.ParseFloat(v, 64); err != nil {
			return f, fmt.Errorf("parse fault %q: param: %w: %q is not a number", s, hv.ErrInvalid, v)
		}
	}
	if err := f.check(); err != nil {
		return f, fmt.Errorf("parse fault %q: %w", s, err)
	}
	return f, nil
}

func parseFaultTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, model.Paris()); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is neither RFC 3339 (2027-01-10T08:00:00Z) nor a date (2027-01-10)", hv.ErrInvalid, v)
}

// ParseFaults reads repeated --fault flags; the error names every bad one.
func ParseFaults(specs []string) ([]Fault, error) {
	var (
		out  []Fault
		errs []error
	)
	for _, s := range specs {
		f, err := ParseFault(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
