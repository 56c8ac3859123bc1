package rules

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
)

// Street-lighting rule kinds: three streaming rules on the telemetry of lighting controllers.
const (
	KindDayBurner      = "day_burner"
	KindLampFailure    = "lamp_failure"
	KindDimmingFailure = "dimming_failure"
)

// nominalW is a controller's nominal lamp power at full level: the fleet registers max_power_w as nominal
// × 1.1 (simulators/fleet), 0 when unknown.
func nominalW(d *hv.Device) float64 { return d.MaxPowerW / 1.1 }

// isController keeps lighting controllers.
func isController(d *hv.Device, _ *hv.Site) bool { return d.Kind == hv.DeviceLightingController }

// DayBurnerConfig finds street lights burning in daylight: a power_w reading above OnShare of the nominal
// power (and above OnW) while the sun is up at the site's position by more than Margin (sunrise + Margin to
// sunset − Margin, lighting/sun). When the service knows the commanded levels, lights commanded on (a
// maintenance test, an override for an event) are spared.
type DayBurnerConfig struct {
	Margin  time.Duration `yaml:"margin"`   // default 30m: programs switch around sunrise and sunset
	OnShare float64       `yaml:"on_share"` // default 0.05 of the nominal power (standby is ≈ 1 %)
	OnW     float64       `yaml:"on_w"`     // floor in W, and the level used when the nominal is unknown; default 20
	Stale   time.Duration `yaml:"stale"`    // a controller silent this long is not judged; default 30m
}

// DefaultDayBurnerConfig is 5 % of nominal, 30 minutes inside daylight.
func DefaultDayBurnerConfig() DayBurnerConfig {
	return DayBurnerConfig{Margin: 30 * time.Minute, OnShare: 0.05, OnW: 20, Stale: 30 * time.Minute}
}

// DayBurnerRule is the streaming day-burner rule.
type DayBurnerRule struct {
	*base
	cfg       DayBurnerConfig
	commanded CommandedFunc

	mu     sync.Mutex
	states []dayBurnerState
}

type dayBurnerState struct {
	last      int64
	power     float64
	burnSince int64 // first daylight reading of the current burning run; 0 when not burning
	sun       sunCache
}

// sunCache is one day's sunrise and sunset at a site: computed once a day per controller, not per reading.
type sunCache struct {
	day       int // yyyymmdd in Paris
	rise, set int64
}

func (c *sunCache) at(t int64, site *hv.Site) (rise, set int64) {
	p := time.UnixMilli(t).In(parisLoc())
	y, m, d := p.Date()
	if key := y*10000 + int(m)*100 + d; key != c.day {
		s := sun.Compute(p, site.Lat, site.Lon, parisLoc())
		c.day, c.rise, c.set = key, s.Sunrise.UnixMilli(), s.Sunset.UnixMilli()
		if s.Sunrise.IsZero() || s.Sunset.IsZero() {
			c.rise, c.set = 0, 0
		}
	}
	return c.rise, c.set
}

var (
	_ Rule     = (*DayBurnerRule)(nil)
	_ Observer = (*DayBurnerRule)(nil)
)

// NewDayBurner builds a day-burner rule; commanded may be nil.
func NewDayBurner(rc RuleConfig, c DayBurnerConfig, reg *registry.Registry, commanded CommandedFunc) (*DayBurnerRule, error) {
	var errs []fieldError
	if c.Margin < 0 || c.Margin > 6*time.Hour {
		errs = append(errs, ferr("margin", "margin must be 0 to 6h"))
	}
	if c.OnShare < 0 || c.OnShare >= 1 || c.OnW < 0 {
		errs = append(errs, ferr("on_share", "on_share must be in [0, 1) and on_w not negative"))
	}
	if c.Stale <= 0 {
		errs = append(errs, ferr("stale", "stale must be positive"))
	}
	b, berrs := newBase(rc, KindDayBurner, reg, isController)
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	return &DayBurnerRule{base: b, cfg: c, commanded: commanded, states: make([]dayBurnerState, len(b.targets))}, nil
}

func (r *DayBurnerRule) onLevel(t *target) float64 {
	return math.Max(r.cfg.OnW, r.cfg.OnShare*nominalW(t.dev))
}

// Observe judges each power reading of a watched controller.
func (r *DayBurnerRule) Observe(rs []hv.Reading) {
	margin := r.cfg.Margin.Milliseconds()
	r.observe(&r.mu, rs, []hv.Metric{hv.PowerW}, func(idx int, rd *hv.Reading) {
		st := &r.states[idx]
		if rd.Time <= st.last {
			return
		}
		t := &r.targets[idx]
		st.last, st.power = rd.Time, rd.Value
		rise, set := st.sun.at(rd.Time, t.site)
		burning := rise != 0 && rd.Time >= rise+margin && rd.Time < set-margin && rd.Value > r.onLevel(t)
		if burning && r.commanded != nil {
			if level, _, ok := r.commanded(rd.Device, rd.Timestamp()); ok && level > 0 {
				burning = false // commanded on: deliberate
			}
		}
		switch {
		case !burning:
			st.burnSince = 0
		case st.burnSince == 0:
			st.burnSince = rd.Time
		}
	})
}

// Eval returns the controllers whose last reading, less than Stale old, burned in daylight.
func (r *DayBurnerRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Condition
	for i := range r.states {
		st := &r.states[i]
		if st.burnSince == 0 || now.UnixMilli()-st.last > r.cfg.Stale.Milliseconds() {
			continue
		}
		t := &r.targets[i]
		on := r.onLevel(t)
		summary := fmt.Sprintf("Éclairage allumé en plein jour : %s W à %s, depuis %s (soleil levé à %s, couché à %s)",
			frNum(st.power, 0), clock(st.last), clock(st.burnSince), clock(st.sun.rise), clock(st.sun.set))
		out = append(out, r.condition(t, st.power, Evidence{Metric: hv.PowerW, Device: t.dev.ID, From: time.UnixMilli(st.burnSince).UTC(),
			To: time.UnixMilli(st.last).UTC(), Value: st.power, Threshold: on}, summary))
	}
	return out, nil
}

// clock is a Unix ms time as HH:MM in Paris.
func clock(ms int64) string { return time.UnixMilli(ms).In(parisLoc()).Format("15:04") }

// LampFailureConfig finds luminaires out on a controller: the lamp_failure alarm the controller raises
// (UseFlag), or a power below (1 − Tolerance) × the power expected at the reported level. The expected power
// is nominal × (0.1 + 0.9 × level), the LED curve of simulators/model.LampPowerW (nominal ≈ max_power_w /
// 1.1): the lowest curve of the fleet, as the registry does not say LED or sodium, so a sodium cabinet
// needs a larger failure to show on its power (its alarm still shows it). Power is judged only on a
// reading whose level is at least MinLevel; the condition holds through the day until a lit reading is
// back to normal and the alarm is off.
type LampFailureConfig struct {
	Tolerance float64       `yaml:"tolerance"` // default 0.2
	MinLevel  float64       `yaml:"min_level"` // %, default 10
	UseFlag   bool          `yaml:"use_flag"`  // default true
	Stale     time.Duration `yaml:"stale"`     // a controller silent this long is not judged; default 1h
}

// DefaultLampFailureConfig flags a power 20 % below the expected, or the controller's alarm.
func DefaultLampFailureConfig() LampFailureConfig {
	return LampFailureConfig{Tolerance: 0.2, MinLevel: 10, UseFlag: true, Stale: time.Hour}
}

// LampFailureRule is the streaming lamp-failure rule.
type LampFailureRule struct {
	*base
	cfg LampFailureConfig

	mu     sync.Mutex
	states []lampState
}

type lampState struct {
	last                   int64 // newest reading of any of the three metrics
	levelAt, powerAt       int64
	level, power, expected float64
	flag                   bool
	flagAt, flagSince      int64
	lowSince               int64 // first judged reading of the current low-power run; 0 when normal
}

var (
	_ Rule     = (*LampFailureRule)(nil)
	_ Observer = (*LampFailureRule)(nil)
)

// NewLampFailure builds a lamp-failure rule.
func NewLampFailure(rc RuleConfig, c LampFailureConfig, reg *registry.Registry) (*LampFailureRule, error) {
	var errs []fieldError
	if !(c.Tolerance > 0 && c.Tolerance < 1) {
		errs = append(errs, ferr("tolerance", "tolerance must be in (0, 1)"))
	}
	if c.MinLevel < 0 || c.MinLevel > 100 {
		errs = append(errs, ferr("min_level", "min_level must be in [0, 100]"))
	}
	if c.Stale <= 0 {
		errs = append(errs, ferr("stale", "stale must be positive"))
	}
	b, berrs := newBase(rc, KindLampFailure, reg, isController)
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	return &LampFailureRule{base: b, cfg: c, states: make([]lampState, len(b.targets))}, nil
}

// expectedW is the least power a controller of nominal power draws at level (see LampFailureConfig).
func expectedW(nominal, level float64) float64 {
	return nominal * (0.1 + 0.9*math.Min(level, 100)/100)
}

// Observe follows the level, power and alarm of watched controllers, judging power when a level and a
// power of the same report are both in.
func (r *LampFailureRule) Observe(rs []hv.Reading) {
	r.observe(&r.mu, rs, []hv.Metric{hv.PowerW, hv.LevelPct, hv.LampFailure}, func(idx int, rd *hv.Reading) {
		st := &r.states[idx]
		st.last = max(st.last, rd.Time)
		switch rd.Metric {
		case hv.LampFailure:
			if rd.Time <= st.flagAt {
				return
			}
			st.flagAt = rd.Time
			on := rd.Value >= 0.5
			if on && !st.flag {
				st.flagSince = rd.Time
			}
			st.flag = on
			return
		case hv.PowerW:
			if rd.Time <= st.powerAt {
				return
			}
			st.powerAt, st.power = rd.Time, rd.Value
		case hv.LevelPct:
			if rd.Time <= st.levelAt {
				return
			}
			st.levelAt, st.level = rd.Time, rd.Value
		}
		nominal := nominalW(r.targets[idx].dev)
		if st.levelAt != st.powerAt || st.level < r.cfg.MinLevel || nominal <= 0 {
			return
		}
		st.expected = expectedW(nominal, st.level)
		switch {
		case st.power >= (1-r.cfg.Tolerance)*st.expected:
			st.lowSince = 0
		case st.lowSince == 0:
			st.lowSince = st.powerAt
		}
	})
}

// Eval returns the controllers with their alarm on or their power low.
func (r *LampFailureRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Condition
	for i := range r.states {
		st := &r.states[i]
		if now.UnixMilli()-st.last > r.cfg.Stale.Milliseconds() {
			continue
		}
		t := &r.targets[i]
		switch {
		case st.lowSince != 0:
			summary := fmt.Sprintf("Panne de lampes probable : %s W mesurés pour %s W attendus au niveau %s %% (%s %%)",
				frNum(st.power, 0), frNum(st.expected, 0), frNum(st.level, 0), signed(100*(st.power/st.expected-1)))
			if r.cfg.UseFlag && st.flag {
				summary += ", défaut lampe signalé par le contrôleur"
			}
			out = append(out, r.condition(t, st.power, Evidence{Metric: hv.PowerW, Device: t.dev.ID, From: time.UnixMilli(st.lowSince).UTC(),
				To: time.UnixMilli(st.powerAt).UTC(), Value: st.power, Baseline: st.expected, Threshold: (1 - r.cfg.Tolerance) * st.expected}, summary))
		case r.cfg.UseFlag && st.flag:
			summary := "Défaut lampe signalé par le contrôleur depuis le " + time.UnixMilli(st.flagSince).In(parisLoc()).Format("02/01 à 15:04")
			out = append(out, r.condition(t, 1, Evidence{Metric: hv.LampFailure, Device: t.dev.ID, From: time.UnixMilli(st.flagSince).UTC(),
				To: time.UnixMilli(st.last).UTC(), Value: 1, Threshold: 1}, summary))
		}
	}
	return out, nil
}

// DimmingFailureConfig finds controllers that do not run the level they were commanded: a reported
// level_pct more than Tolerance points from the commanded level, once the command has been in force for
// AckWindow. It needs the commanded levels (Deps.Commanded): without them it finds nothing.
type DimmingFailureConfig struct {
	AckWindow time.Duration `yaml:"ack_window"` // default 15m
	Tolerance float64       `yaml:"tolerance"`  // points of %, default 5
	Stale     time.Duration `yaml:"stale"`      // default 30m
}

// DefaultDimmingFailureConfig allows 5 points after 15 minutes.
func DefaultDimmingFailureConfig() DimmingFailureConfig {
	return DimmingFailureConfig{AckWindow: 15 * time.Minute, Tolerance: 5, Stale: 30 * time.Minute}
}

// DimmingFailureRule is the streaming dimming-failure rule.
type DimmingFailureRule struct {
	*base
	cfg       DimmingFailureConfig
	commanded CommandedFunc

	mu     sync.Mutex
	states []dimmingState
}

type dimmingState struct {
	last               int64
	reported, commands float64
	since              int64 // first reading of the current mismatch; 0 when matching or not judged
}

var (
	_ Rule     = (*DimmingFailureRule)(nil)
	_ Observer = (*DimmingFailureRule)(nil)
)

// NewDimmingFailure builds a dimming-failure rule; with a nil commanded it is inactive.
func NewDimmingFailure(rc RuleConfig, c DimmingFailureConfig, reg *registry.Registry, commanded CommandedFunc) (*DimmingFailureRule, error) {
	var errs []fieldError
	if c.AckWindow < 0 {
		errs = append(errs, ferr("ack_window", "ack_window must not be negative"))
	}
	if !(c.Tolerance >= 0) || c.Tolerance >= 100 {
		errs = append(errs, ferr("tolerance", "tolerance must be in [0, 100)"))
	}
	if c.Stale <= 0 {
		errs = append(errs, ferr("stale", "stale must be positive"))
	}
	b, berrs := newBase(rc, KindDimmingFailure, reg, isController)
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	return &DimmingFailureRule{base: b, cfg: c, commanded: commanded, states: make([]dimmingState, len(b.targets))}, nil
}

// Observe compares each reported level with the level commanded at its time.
func (r *DimmingFailureRule) Observe(rs []hv.Reading) {
	if r.commanded == nil {
		return
	}
	r.observe(&r.mu, rs, []hv.Metric{hv.LevelPct}, func(idx int, rd *hv.Reading) {
		st := &r.states[idx]
		if rd.Time <= st.last {
			return
		}
		st.last, st.reported = rd.Time, rd.Value
		at := rd.Timestamp()
		level, since, ok := r.commanded(rd.Device, at)
		if !ok || at.Sub(since) < r.cfg.AckWindow || math.Abs(rd.Value-level) <= r.cfg.Tolerance {
			st.since = 0
			return
		}
		if st.since == 0 {
			st.since = rd.Time
		}
		st.commands = level
	})
}

// Eval returns the controllers whose last level, less than Stale old, is not the commanded one.
func (r *DimmingFailureRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Condition
	for i := range r.states {
		st := &r.states[i]
		if st.since == 0 || now.UnixMilli()-st.last > r.cfg.Stale.Milliseconds() {
			continue
		}
		t := &r.targets[i]
		summary := fmt.Sprintf("Gradation non appliquée : niveau mesuré %s %% pour %s %% commandé, depuis %s",
			frNum(st.reported, 0), frNum(st.commands, 0), time.UnixMilli(st.since).In(parisLoc()).Format("02/01 à 15:04"))
		out = append(out, r.condition(t, st.reported, Evidence{Metric: hv.LevelPct, Device: t.dev.ID, From: time.UnixMilli(st.since).UTC(),
			To: time.UnixMilli(st.last).UTC(), Value: st.reported, Baseline: st.commands, Threshold: r.cfg.Tolerance}, summary))
	}
	return out, nil
}
