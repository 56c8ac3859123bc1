package simulators

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
)

// ErrStaleProgram marks a program older than the one a controller already runs: it is ignored.
var ErrStaleProgram = errors.New("stale program version")

// controller is what a street-light controller keeps locally: the last program it was pushed and the command
// in force. It executes them on its own, so the lights follow the program when the link is down.
type controller struct {
	program  *lighting.Program // nil: none yet, the failsafe schedule (DefaultLevel) runs
	override *override
}

// override is a command in force over [from, until).
type override struct {
	id          string
	level       float64
	from, until time.Time
}

// scheduled is the level a controller runs at t before faults: the command in force, else its program's
// level, else the failsafe DefaultLevel (no program, or t outside the program's validity).
func (d *simDevice) scheduled(t time.Time) float64 {
	if c := d.ctl; c != nil {
		if o := c.override; o != nil && !t.Before(o.from) && t.Before(o.until) {
			return o.level
		}
		if c.program != nil {
			if l, ok := c.program.LevelAt(t); ok {
				return l
			}
		}
	}
	return DefaultLevel(t)
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

// IsController says whether device is a lighting controller of the simulated fleet, whose program and
// command topics the Runner handles.
func (r *Runner) IsController(device string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[device]
	return ok && d.Kind == hv.DeviceLightingController
}

// ApplyProgram hands device the program payload it received on hv/<device>/program at time at (simulated
// clock). A valid program with a newer version replaces the one the controller runs, and is followed from
// then on by every report (the program is keyed by time, so the level at an instant is the program's at that
// instant). The same version again, as a retained program redelivered on reconnect, changes nothing and is
// no error. Errors: ErrUnknownDevice, lighting.ErrInvalid (malformed, or naming another device),
// ErrStaleProgram (older version, ignored).
//
// Under a dimming_failure fault the controller ignores the program entirely and reports no error: a stuck
// controller accepts everything and acts on nothing, and it keeps what it ran before once the fault ends.
func (r *Runner) ApplyProgram(device string, payload []byte, at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.controllerOf(device)
	if err != nil {
		return fmt.Errorf("apply program: %w", err)
	}
	if d.fault(FaultDimmingFailure, at) != nil {
		return nil
	}
	p, err := lighting.ParseProgram(payload)
	if err != nil {
		return fmt.Errorf("apply program to %s: %w", device, err)
	}
	if p.Device != device {
		return fmt.Errorf("apply program to %s: %w: program is for %q", device, lighting.ErrInvalid, p.Device)
	}
	if cur := d.ctl.program; cur != nil && p.Version <= cur.Version {
		if p.Version == cur.Version {
			return nil
		}
		return fmt.Errorf("apply program to %s: %w: version %d, running %d", device, ErrStaleProgram, p.Version, cur.Version)
	}
	d.ctl.program = &p
	return nil
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
	b, err := json.Marshal(ack)
	if err != nil { // a NaN level cannot be sent: ParseCommand rejects it, so only a bug gets here
		return nil, fmt.Errorf("apply command to %s: %w", device, err)
	}
	return b, nil
}

// subscribeControllers subscribes c to the programs and commands of the fleet's lighting controllers and
// routes them to r at the simulated time clock gives. Called on every connection.
func subscribeControllers(c paho.Client, r *Runner, clock func() time.Time, log *slog.Logger) {
	handle := func(_ paho.Client, m paho.Message) {
		device, kind, ok := lighting.DeviceOf(m.Topic())
		if !ok || !r.IsController(device) {
			return // another fleet's device, or a real one
		}
		at := clock()
		switch kind {
		case "program":
			if len(m.Payload()) == 0 {
				return // a retained program being cleared
			}
			if err := r.ApplyProgram(device, m.Payload(), at); err != nil {
				log.Warn("controller program refused", "device", device, "err", err)
			}
		case "cmd":
			ack, err := r.ApplyCommand(device, m.Payload(), at)
			if err != nil {
				log.Warn("controller command refused", "device", device, "err", err)
				return
			}
			// Not waited for here: paho delivers messages in order on one goroutine, which must not block.
			t := c.Publish(lighting.AckTopic(device), 1, false, ack)
			go func() {
				if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
					log.Warn("controller ack not published", "device", device, "err", t.Error())
				}
			}()
		}
	}
	filters := map[string]byte{lighting.ProgramTopics: 1, lighting.CommandTopics: 1}
	t := c.SubscribeMultiple(filters, handle)
	go func() {
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			log.Error("controller topics not subscribed", "err", t.Error())
		}
	}()
}
