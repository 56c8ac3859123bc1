package rules

import (
	"context"
	"fmt"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// KindCounter names the counter rule kind.
const KindCounter = "counter"

// CounterConfig watches the counter events ingest writes when a cumulative index misbehaves (the
// counter_event metric, whose value is an hv.CounterFlag): a reset (meter replaced), a rollover (register
// wrapped), an implausible jump (not counted), or a clock running ahead (ingest compares each message's
// timestamps with its arrival: ahead by more than a minute is flagged and stored; beyond ingest.max_future
// the message is refused, dead-lettered with the reason, and the device then shows up as silent). An event is
// an instant, so the condition holds for Hold after the device's last event, long enough for the lifecycle to
// fire and a technician to look.
type CounterConfig struct {
	Flags []string      `yaml:"flags"` // reset, rollover, jump, clock_skew; default all four
	Hold  time.Duration `yaml:"hold"`  // how long a condition lasts after the last event; default 24h
}

// DefaultCounterConfig watches every flag and holds 24 h.
func DefaultCounterConfig() CounterConfig {
	return CounterConfig{Flags: []string{"reset", "rollover", "jump", "clock_skew"}, Hold: 24 * time.Hour}
}

// CounterRule is the streaming counter-event rule.
type CounterRule struct {
	*base
	cfg   CounterConfig
	flags [5]bool // by hv.CounterFlag

	mu     sync.Mutex
	states []counterState
}

type counterState struct {
	first, last int64 // first and last event of the current episode (events less than Hold apart)
	flag        hv.CounterFlag
	n           int
}

var (
	_ Rule     = (*CounterRule)(nil)
	_ Observer = (*CounterRule)(nil)
)

// NewCounter builds a counter rule.
func NewCounter(rc RuleConfig, c CounterConfig, reg *registry.Registry) (*CounterRule, error) {
	var errs []fieldError
	r := &CounterRule{cfg: c}
	if len(c.Flags) == 0 {
		errs = append(errs, ferr("flags", "flags must name at least one of reset, rollover, jump, clock_skew"))
	}
	for _, f := range c.Flags {
		switch f {
		case "reset":
			r.flags[hv.FlagReset] = true
		case "rollover":
			r.flags[hv.FlagRollover] = true
		case "jump":
			r.flags[hv.FlagJump] = true
		case "clock_skew":
			r.flags[hv.FlagClockSkew] = true
		default:
			errs = append(errs, fieldError{"flags", f, fmt.Sprintf("flag %q is not one of reset, rollover, jump, clock_skew", f)})
		}
	}
	if c.Hold <= 0 {
		errs = append(errs, ferr("hold", "hold must be positive"))
	}
	b, berrs := newBase(rc, KindCounter, reg, func(d *hv.Device, _ *hv.Site) bool { return d.Kind != hv.DeviceWeather })
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	r.base = b
	r.states = make([]counterState, len(b.targets))
	return r, nil
}

// Observe records the counter events of watched devices.
func (r *CounterRule) Observe(rs []hv.Reading) {
	hold := r.cfg.Hold.Milliseconds()
	r.observe(&r.mu, rs, []hv.Metric{hv.CounterEvent}, func(idx int, rd *hv.Reading) {
		f := hv.CounterFlag(rd.Value)
		if f <= hv.FlagNone || int(f) >= len(r.flags) || !r.flags[f] {
			return
		}
		st := &r.states[idx]
		if rd.Time <= st.last { // the same event again (a redelivery), or an older one
			return
		}
		if st.n == 0 || rd.Time-st.last > hold {
			st.first, st.n = rd.Time, 0
		}
		st.last, st.flag = rd.Time, f
		st.n++
	})
}

// Eval returns one condition per device with an event less than Hold before now.
func (r *CounterRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Condition
	for i := range r.states {
		st := r.states[i]
		if st.n == 0 || now.UnixMilli()-st.last > r.cfg.Hold.Milliseconds() {
			continue
		}
		t := &r.targets[i]
		at := time.UnixMilli(st.last).In(parisLoc()).Format("02/01 à 15:04")
		var summary string
		switch st.flag {
		case hv.FlagReset:
			summary = "Index remis à zéro le " + at + " (compteur remplacé ou réinitialisé)"
		case hv.FlagRollover:
			summary = "Index passé par son maximum le " + at + " (rebouclage du registre)"
		case hv.FlagClockSkew:
			summary = "Horloge de l'équipement en avance (message du " + at + ") : à remettre à l'heure"
		default:
			summary = "Saut d'index invraisemblable le " + at + ", non compté dans la consommation"
		}
		if st.n > 1 {
			summary += fmt.Sprintf(" ; %d événements depuis le %s", st.n, time.UnixMilli(st.first).In(parisLoc()).Format("02/01 15:04"))
		}
		out = append(out, r.condition(t, float64(st.flag), Evidence{Metric: hv.CounterEvent, Device: t.dev.ID,
			From: time.UnixMilli(st.first).UTC(), To: time.UnixMilli(st.last).UTC(), Value: float64(st.flag)}, summary))
	}
	return out, nil
}
