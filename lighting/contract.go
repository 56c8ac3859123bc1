package lighting

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks a program or command that breaks the contract; the error text says what is wrong.
var ErrInvalid = errors.New("invalid")

// Limits of the contract, so a controller's memory and parsing stay bounded whatever it is sent.
const (
	MaxSteps = 4096 // steps in one program: a week at one step a few minutes
	MaxIDLen = 128  // length of a command id
)

// Ack statuses.
const (
	AckOK       = "ok"
	AckRejected = "rejected"
)

// Program is a resolved day program: the dimming level over time for one controller, pushed retained on
// hv/<device>/program. Version increases with every change; a controller ignores an older or equal version.
//
// Failsafe: at an instant outside [Steps[0].At, Until), or with no valid program at all, a controller runs
// its built-in astronomical schedule (for the simulated controllers simulators.DefaultLevel: 100 % from
// sunset, 50 % from 23:00 Paris time, off at sunrise), so the lights keep a safe night whatever happens to the link or the
// programs. The service should therefore push each program ahead of its first step and make it last until
// the next one is in force.
type Program struct {
	Device  string    `json:"device"`
	Version int64     `json:"version"`
	Steps   []Step    `json:"steps"` // sorted by At; the level holds from At until the next step
	Until   time.Time `json:"until"` // after the last step's validity the controller falls back to its failsafe
	// Boost, when set, is the presence boost: during a step marked Boost, a controller whose sensor detects
	// someone runs at least Boost.Level until HoldS seconds after the last detection.
	Boost *Boost `json:"boost,omitempty"`
	// Lux, when set, is the luminosity guard: during a step marked Lux, a controller whose light sensor reads
	// below Lux.Below lux runs at least Lux.Level (a dark storm at dusk, before the astronomical switch-on).
	Lux *Lux `json:"lux,omitempty"`
}

// Step is a level (0–100 %) that holds from At until the next step, or the program's Until.
type Step struct {
	At    time.Time `json:"at"`
	Level float64   `json:"level"`
	Boost bool      `json:"boost,omitempty"` // the presence boost applies during this step
	Lux   bool      `json:"lux,omitempty"`   // the luminosity guard applies during this step
}

// Boost is a presence boost: the level and how long it holds after the last detection.
type Boost struct {
	Level float64 `json:"level"`
	HoldS int     `json:"hold_s"`
}

// Lux is a luminosity guard: below Below lux, run at least Level.
type Lux struct {
	Below float64 `json:"below"`
	Level float64 `json:"level"`
}

// ProgramAckID is the id a controller acknowledges a program version with on hv/<device>/ack, so the
// service can track programs like commands: "program:<version>".
func ProgramAckID(version int64) string { return "program:" + strconv.FormatInt(version, 10) }

// CommandMsg is an immediate order on hv/<device>/cmd: hold Level from receipt until Until, then back to the
// program. A new command replaces the one in force. A controller rejects a command whose Until is not after
// its receipt (already expired).
type CommandMsg struct {
	ID    string    `json:"id"`
	Level float64   `json:"level"`
	Until time.Time `json:"until"`
}

// Ack is a controller's answer to a command, on hv/<device>/ack. ID is the command's (empty when the payload
// was too malformed to carry one). Level is the level the controller says it runs at after handling the
// command: the commanded level when ok; what it keeps running at when rejected. At is the controller's
// clock when it handled the command.
type Ack struct {
	ID     string    `json:"id"`
	Status string    `json:"status"` // AckOK or AckRejected
	Reason string    `json:"reason,omitempty"`
	Level  float64   `json:"level"`
	At     time.Time `json:"at"`
}

// ProgramTopic is the topic a device's program is published on (retained).
func ProgramTopic(device string) string { return "hv/" + device + "/program" }

// CommandTopic is the topic immediate commands for a device are published on.
func CommandTopic(device string) string { return "hv/" + device + "/cmd" }

// AckTopic is the topic a device acknowledges commands on.
func AckTopic(device string) string { return "hv/" + device + "/ack" }

// DeviceOf returns the device a contract topic ("hv/<device>/<kind>") names and its kind ("program", "cmd",
// "ack", …); ok is false for any other topic.
func DeviceOf(topic string) (device, kind string, ok bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 3 || parts[0] != "hv" || parts[1] == "" {
		return "", "", false
	}
	return parts[1], parts[2], true
}

func validLevel(l float64) bool { return !math.IsNaN(l) && l >= 0 && l <= 100 }

// Validate checks the program: a device, a positive version, 1 to MaxSteps steps with levels in [0, 100]
// and strictly increasing times, and Until after the last step.
func (p Program) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("program %q v%d: %w: %s", p.Device, p.Version, ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case p.Device == "":
		return bad("no device")
	case p.Version <= 0:
		return bad("version must be positive")
	case len(p.Steps) == 0:
		return bad("no steps")
	case len(p.Steps) > MaxSteps:
		return bad("%d steps, at most %d", len(p.Steps), MaxSteps)
	}
	for i, s := range p.Steps {
		if s.At.IsZero() {
			return bad("step %d has no time", i)
		}
		if !validLevel(s.Level) {
			return bad("step %d: level %v outside [0, 100]", i, s.Level)
		}
		if i > 0 && !s.At.After(p.Steps[i-1].At) {
			return bad("step %d (%s) not after step %d (%s): steps must be sorted by time, without duplicates",
				i, s.At.Format(time.RFC3339), i-1, p.Steps[i-1].At.Format(time.RFC3339))
		}
	}
	if b := p.Boost; b != nil && (!validLevel(b.Level) || b.HoldS <= 0 || b.HoldS > 86400) {
		return bad("boost: level %v must be in [0, 100] and hold_s %d in 1..86400", b.Level, b.HoldS)
	}
	if l := p.Lux; l != nil && (!validLevel(l.Level) || math.IsNaN(l.Below) || l.Below <= 0 || l.Below > 1e5) {
		return bad("lux: level %v must be in [0, 100] and below %v in (0, 100000]", l.Level, l.Below)
	}
	if last := p.Steps[len(p.Steps)-1].At; !p.Until.After(last) {
		return bad("until %s not after the last step %s", p.Until.Format(time.RFC3339), last.Format(time.RFC3339))
	}
	return nil
}

// StepAt is the step in force at t; false when t is outside [Steps[0].At, Until). The program is assumed valid.
func (p Program) StepAt(t time.Time) (Step, bool) {
	if len(p.Steps) == 0 || t.Before(p.Steps[0].At) || !t.Before(p.Until) {
		return Step{}, false
	}
	return p.Steps[sort.Search(len(p.Steps), func(i int) bool { return p.Steps[i].At.After(t) })-1], true
}

// LevelAt is the program's level at t; false when t is outside [Steps[0].At, Until), where the controller
// runs its failsafe. The program is assumed valid.
func (p Program) LevelAt(t time.Time) (float64, bool) {
	s, ok := p.StepAt(t)
	return s.Level, ok
}

// Validate checks the command: an id of 1 to MaxIDLen characters, a level in [0, 100], an Until. Whether
// Until is still ahead is for the controller to tell at receipt.
func (c CommandMsg) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("command %q: %w: %s", c.ID, ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case c.ID == "":
		return bad("no id")
	case len(c.ID) > MaxIDLen:
		return bad("id longer than %d characters", MaxIDLen)
	case !validLevel(c.Level):
		return bad("level %v outside [0, 100]", c.Level)
	case c.Until.IsZero():
		return bad("no until")
	}
	return nil
}

// ParseProgram decodes and validates a program payload.
func ParseProgram(payload []byte) (Program, error) {
	var p Program
	if err := json.Unmarshal(payload, &p); err != nil {
		return Program{}, fmt.Errorf("program: %w: %v", ErrInvalid, err)
	}
	return p, p.Validate()
}

// ParseCommand decodes and validates a command payload. On a validation error the command is still returned,
// so its id can be acknowledged as rejected; on a decoding error, the id is recovered when the payload has one.
func ParseCommand(payload []byte) (CommandMsg, error) {
	var c CommandMsg
	if err := json.Unmarshal(payload, &c); err != nil {
		var id struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(payload, &id) == nil && len(id.ID) <= MaxIDLen {
			c = CommandMsg{ID: id.ID}
		} else {
			c = CommandMsg{}
		}
		return c, fmt.Errorf("command: %w: %v", ErrInvalid, err)
	}
	return c, c.Validate()
}
