package simulators

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/simulators/model"
)

// ErrStaleProgram marks a program older than the one a controller already runs: it is ignored.
var ErrStaleProgram = errors.New("stale program version")

// controller is what a street-light controller keeps locally: the last program it was pushed and the command
// in force. It executes them on its own, so the lights follow the program when the link is down.
type controller struct {
	program  *lighting.Program // nil: none yet, the failsafe schedule (DefaultLevel) runs
	override *override
	fCntDown uint32 // LoRaWAN: downlinks received, the frame counter the network server's acks carry
}

// override is a command in force over [from, until).
type override struct {
	id          string
	level       float64
	from, until time.Time
}

// scheduled is the level a controller runs at t before faults: the command in force, else its program's
// level (with the presence boost), else the failsafe DefaultLevel (no program, or t outside the program's
// validity).
func (d *simDevice) scheduled(t time.Time) float64 {
	var p *lighting.Program
	if d.ctl != nil {
		p = d.ctl.program
	}
	return d.running(p, t)
}

// running is the level d runs at t, before faults, with program p (nil: none) and its command in force.
func (d *simDevice) running(p *lighting.Program, t time.Time) float64 {
	if c := d.ctl; c != nil {
		if o := c.override; o != nil && !t.Before(o.from) && t.Before(o.until) {
			return o.level
		}
	}
	if p != nil {
		if s, ok := p.StepAt(t); ok {
			return d.boosted(p, s, t)
		}
	}
	return d.failsafe(t)
}

// boosted is the level of step s of p at t with the presence boost: at least p.Boost.Level when s is marked
// Boost and d's sensor detected someone less than HoldS ago. The luminosity guard (p.Lux, s.Lux) is ignored:
// the simulated controllers have no light sensor, so they never read dark enough to apply it.
func (d *simDevice) boosted(p *lighting.Program, s lighting.Step, t time.Time) float64 {
	b := p.Boost
	if !d.Presence || !s.Boost || b == nil || s.Level >= b.Level || !d.detectedWithin(t, time.Duration(b.HoldS)*time.Second) {
		return s.Level
	}
	return b.Level
}

// presenceSlot is the interval model.PresenceDetected answers for.
const presenceSlot = 5 * time.Minute

// detectedWithin says whether d's sensor detected someone in the hold before t. The model only says whether
// someone came during each 5-minute slot; the detection is taken at the slot's start, so a hold of a slot or
// more boosts the whole slot, a longer one carries into the next slots, and a shorter one boosts the slot's
// beginning only.
func (d *simDevice) detectedWithin(t time.Time, hold time.Duration) bool {
	for s := t.Truncate(presenceSlot); t.Sub(s) < hold; s = s.Add(-presenceSlot) {
		if model.PresenceDetected(d.seed, s) {
			return true
		}
	}
	return false
}

// controllerOf is the simulated lighting controller device, or an error wrapping ErrUnknownDevice.
func (r *Runner) controllerOf(device string) (*simDevice, error) {
	d, ok := r.byID[device]
	if !ok || d.Kind != hv.DeviceLightingController {
		return nil, fmt.Errorf("%w %q: no lighting controller of that id in the simulated fleet", ErrUnknownDevice, device)
	}
	if d.ctl == nil {
		d.ctl = &controller{}
	}
	return d, nil
}

// IsController says whether device is a lighting controller of the simulated fleet, reached over MQTT
// (ApplyProgram, ApplyCommand) or as LoRaWAN downlinks (HandleDownlink).
func (r *Runner) IsController(device string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[device]
	return ok && d.Kind == hv.DeviceLightingController
}

// listensMQTT says whether device is a lighting controller of the fleet that subscribes to hv/<device>/…
// itself: not a LoRaWAN one, which only gets what its network server sends down (lorawan.go).
func (r *Runner) listensMQTT(device string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[device]
	return ok && d.Kind == hv.DeviceLightingController && d.Downlink == nil
}

// ApplyProgram hands device the program payload it received on hv/<device>/program at time at (simulated
// clock) and returns the acknowledgement to publish on hv/<device>/ack, with the id
// lighting.ProgramAckID(version), or nil when there is none to send.
//
// A valid program with a newer version replaces the one the controller runs, and is followed from then on by
// every report (the program is keyed by time, so the level at an instant is the program's at that instant):
// ack "ok" with the level the controller runs at once it is applied. The same version again, as a retained
// program redelivered on reconnect, changes nothing and is acked "ok" again. A program refused is acked
// "rejected" with the reason and the level the controller keeps, and err says why: lighting.ErrInvalid
// (breaks the contract, or names another device), ErrStaleProgram (older version). With no version to
// acknowledge (undecodable, or not positive) there is no ack, only the error. ErrUnknownDevice: no
// controller, no ack.
//
// Under a dimming_failure fault the controller acks every program carrying a version "ok", with the level
// the program would give, and ignores it: a stuck controller accepts everything and acts on nothing, and it
// keeps what it ran before once the fault ends.
func (r *Runner) ApplyProgram(device string, payload []byte, at time.Time) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.controllerOf(device)
	if err != nil {
		return nil, fmt.Errorf("apply program: %w", err)
	}
	p, perr := lighting.ParseProgram(payload)
	ack := lighting.Ack{ID: lighting.ProgramAckID(p.Version), Status: lighting.AckOK, At: at.UTC()}
	cur := d.ctl.program
	switch {
	case d.fault(FaultDimmingFailure, at) != nil:
		if p.Version <= 0 {
			return nil, nil
		}
		// Stuck: says yes, and the level a working controller would run.
		ack.Level = d.scheduled(at)
		if perr == nil && p.Device == device {
			ack.Level = d.running(&p, at)
		}
		return marshalAck(device, ack)
	case p.Version <= 0: // perr is set: a valid program has a positive version
		return nil, fmt.Errorf("apply program to %s: %w", device, perr)
	case perr != nil:
		err = perr
	case p.Device != device:
		err = fmt.Errorf("%w: program is for %q", lighting.ErrInvalid, p.Device)
	case cur != nil && p.Version < cur.Version:
		err = fmt.Errorf("%w: version %d, running %d", ErrStaleProgram, p.Version, cur.Version)
	case cur != nil && p.Version == cur.Version:
		// Already running it.
	default:
		d.ctl.program = &p
	}
	ack.Level = r.level(d, at)
	if err != nil {
		ack.Status, ack.Reason = lighting.AckRejected, err.Error()
		err = fmt.Errorf("apply program to %s: %w", device, err)
	}
	b, merr := marshalAck(device, ack)
	if merr != nil {
		return nil, merr
	}
	return b, err
}

// marshalAck encodes a controller's ack. Levels are never NaN (the contract refuses them), so only a bug
// makes it fail.
func marshalAck(device string, a lighting.Ack) ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("ack of %s: %w", device, err)
	}
	return b, nil
}

// ApplyCommand hands device the command payload it received on hv/<device>/cmd at time at (simulated clock)
// and returns the acknowledgement to publish on hv/<device>/ack. A valid command whose Until is after at
// holds its level over [at, Until), replacing any command in force, then the program resumes: ack "ok"
// with that level. A malformed or expired command changes nothing: ack "rejected" with the reason, and the
// command's id when the payload carries one. err is non-nil (ErrUnknownDevice) only when there is no
// controller to acknowledge.
//
// Under a dimming_failure fault the controller acks every command "ok" with the commanded level, as a stuck
// driver behind a working controller does, but keeps its stuck level: only the measured level and power
// show the failure, which is what the central side must detect.
func (r *Runner) ApplyCommand(device string, payload []byte, at time.Time) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.controllerOf(device)
	if err != nil {
		return nil, fmt.Errorf("apply command: %w", err)
	}
	c, err := lighting.ParseCommand(payload)
	ack := lighting.Ack{ID: c.ID, Status: lighting.AckOK, Level: c.Level, At: at.UTC()}
	switch {
	case d.fault(FaultDimmingFailure, at) != nil:
		// Stuck: says yes to everything and does nothing.
	case err != nil:
		ack.Status, ack.Reason, ack.Level = lighting.AckRejected, err.Error(), r.level(d, at)
	case !c.Until.After(at):
		ack.Status, ack.Level = lighting.AckRejected, r.level(d, at)
		ack.Reason = fmt.Sprintf("expired: until %s is not after receipt %s", c.Until.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	default:
		d.ctl.override = &override{id: c.ID, level: c.Level, from: at, until: c.Until}
	}
	return marshalAck(device, ack)
}

// subscribeControllers subscribes c to the programs and commands of the fleet's lighting controllers that
// listen on MQTT, and to the downlinks of its LoRaWAN ones (lorawan.go), routes them to r at the simulated
// time clock gives, and publishes the controllers' and network servers' acks. Called on every connection.
func subscribeControllers(c paho.Client, r *Runner, clock func() time.Time, log *slog.Logger) {
	mqtt := func(m paho.Message) {
		device, kind, ok := lighting.DeviceOf(m.Topic())
		if !ok || !r.listensMQTT(device) {
			return // another fleet's device, a real one, or a LoRaWAN controller (downlinks only)
		}
		at := clock()
		var ack []byte
		var err error
		switch kind {
		case "program":
			if len(m.Payload()) == 0 {
				return // a retained program being cleared
			}
			ack, err = r.ApplyProgram(device, m.Payload(), at)
			if err != nil {
				log.Warn("controller program refused", "device", device, "err", err)
			}
		case "cmd":
			ack, err = r.ApplyCommand(device, m.Payload(), at)
			if err != nil {
				log.Warn("controller command refused", "device", device, "err", err)
			}
		}
		if ack != nil {
			publishAsync(c, Message{Topic: lighting.AckTopic(device), Payload: ack, Device: device}, log)
		}
	}
	handle := func(_ paho.Client, m paho.Message) {
		if strings.HasPrefix(m.Topic(), "hv/") {
			mqtt(m)
			return
		}
		acks, err := r.HandleDownlink(m.Topic(), m.Payload(), clock())
		if err != nil {
			log.Warn("lorawan downlink refused", "topic", m.Topic(), "err", err)
		}
		for _, a := range acks {
			publishAsync(c, a, log)
		}
	}
	// One SUBSCRIBE for every filter, sent first thing on a clean session. The embedded broker (mochi)
	// keeps the client's packet ids and its own in one map and refuses a SUBSCRIBE whose id one of its
	// deliveries holds (0x91): a second SUBSCRIBE could collide with the retained programs the first one
	// brings.
	filters := map[string]byte{lighting.ProgramTopics: 1, lighting.CommandTopics: 1, chirpStackDownTopics: 1, ttsDownTopics: 1}
	t := c.SubscribeMultiple(filters, handle)
	go func() {
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			log.Error("controller topics not subscribed", "err", t.Error())
			return
		}
		if st, ok := t.(*paho.SubscribeToken); ok {
			for filter, code := range st.Result() {
				if code >= 0x80 {
					log.Error("controller topic refused by the broker", "filter", filter, "code", code)
				}
			}
		}
	}()
}

// publishAsync publishes m with QoS 1 without waiting: paho delivers messages in order on one goroutine,
// which must not block, so the outcome is only logged.
func publishAsync(c paho.Client, m Message, log *slog.Logger) {
	t := c.Publish(m.Topic, 1, false, m.Payload)
	go func() {
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			log.Warn("controller answer not published", "device", m.Device, "topic", m.Topic, "err", t.Error())
		}
	}()
}
