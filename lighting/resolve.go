package lighting

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
)

// GroupOf returns the group a lighting controller belongs to: the group naming the device, else the one naming
// its site (site.ID, or dev.Site when site is nil), else its commune, else its EPCI, else the default group.
// It is nil for any other kind of device, when nothing matches, or when the plan has not been validated.
func (p *Plan) GroupOf(dev *hv.Device, site *hv.Site) *Group {
	x := p.index
	if dev == nil || dev.Kind != hv.DeviceLightingController || x == nil {
		return nil
	}
	if i, ok := x.byDevice[dev.ID]; ok {
		return &p.Groups[i]
	}
	siteID := dev.Site
	if site != nil {
		siteID = site.ID
	}
	if i, ok := x.bySite[siteID]; ok {
		return &p.Groups[i]
	}
	if site != nil {
		if i, ok := x.byCommune[site.Commune]; ok {
			return &p.Groups[i]
		}
		if i, ok := x.byEPCI[site.EPCI]; ok {
			return &p.Groups[i]
		}
	}
	if x.defaultGroup >= 0 {
		return &p.Groups[x.defaultGroup]
	}
	return nil
}

// DecreeFor returns the local switch-off decree of a commune (INSEE code), nil if it has none or the plan has
// not been validated.
func (p *Plan) DecreeFor(commune string) *Decree {
	if p.index == nil {
		return nil
	}
	if i, ok := p.index.decrees[commune]; ok {
		return &p.Decrees[i]
	}
	return nil
}

// CategoryOf returns the category of a lighting site under the arrêté of 27 December 2018: its entry in
// Categories, else voirie (with no sites and no activity end).
func (p *Plan) CategoryOf(site string) SiteCategory {
	if p.index != nil {
		if i, ok := p.index.categories[site]; ok {
			return p.Categories[i]
		}
	}
	return SiteCategory{Category: CategoryVoirie}
}

// Night resolves the night of group g starting the evening of date (its local date in Paris) at a place
// (lat, lon: the cabinet's): the program its calendar chooses (ProgramOn), resolved by ProgramDef.Night, with
// the rule that chose it. The plan must have been validated.
func (p *Plan) Night(g *Group, date time.Time, lat, lon float64) (Night, error) {
	if g == nil {
		return Night{}, errors.New("resolve night: no group")
	}
	def, rule := p.ProgramOn(g, date)
	if def.Name == "" {
		return Night{}, fmt.Errorf("resolve night of group %q: %w: no program (is the plan validated?)", g.Name, ErrInvalid)
	}
	n, err := def.Night(date, lat, lon)
	if err != nil {
		return Night{}, fmt.Errorf("resolve night of group %q: %w", g.Name, err)
	}
	n.Rule = rule
	return n, nil
}

// Night resolves the program over the night starting the evening of date (its local date in Paris) at a place.
// All instants are UTC.
//
//   - The night runs from From, 12:00 on the date, to Until, 12:00 the next day, in Paris civil time: 23 or
//     25 hours on the nights of a DST change.
//   - Events: sunset and dusk are the date's; sunrise and dawn the next day's; a fixed time from 12:00 is on
//     the date, before 12:00 on the next morning. A fixed time that does not exist (02:30 on the
//     spring-forward night) follows time.Date: it lands an hour later on the wall clock (03:30 CEST, 01:30Z);
//     one that happens twice (02:30 on the fall-back night) is taken after the change (02:30 CET, 01:30Z).
//   - On (Start) and Off (End) are kept within [From, Until]; Off must come after On.
//   - The level is 0 from From, then from On the level in force at that time of night: Level, or that of the
//     last step at or before On (a "0 % from 23:00" step keeps the lights off after 23:00 even when the sun
//     sets later); then each step between On and Off at its time; steps at or after Off are dropped; 0 from
//     Off. Steps happening at the same instant: the last listed wins.
//   - Ramp: each change of level starts at its time and moves in equal sub-steps, one every Ramp/n with
//     n = min(10, whole minutes of Ramp), reaching the new level at Ramp − Ramp/n (so a switch-on at sunset
//     begins at sunset, as TALQ ramps do, and a switch-off or a dimming down finishes a little after its
//     time). A ramp cut by the next change stops where it got to; a Ramp under 2 minutes is a plain switch.
//   - Presence: Boost is set and every step within [On, Off) below its level is marked Boost.
//   - Lux guard: steps within [On−Window, On) and [Off, Off+Window) (within the night) are marked Lux, with a
//     step added at the window bounds when needed; Lux is set when Window > 0.
//   - Extinction: a single step at 0 from From; On and Off stay zero; no Boost, no Lux.
//
// Equal consecutive steps (level and flags) are merged. The error names what cannot be resolved: a sun event
// that does not happen (polar day or night), or a switch-off not after the switch-on.
func (d ProgramDef) Night(date time.Time, lat, lon float64) (Night, error) {
	loc := sun.Paris()
	y, m, day := date.In(loc).Date()
	n := Night{
		Date:    time.Date(y, m, day, 0, 0, 0, 0, loc),
		Program: d.Name,
		From:    time.Date(y, m, day, 12, 0, 0, 0, loc).UTC(),
		Until:   time.Date(y, m, day+1, 12, 0, 0, 0, loc).UTC(),
	}
	n.Sun = sun.Compute(n.From, lat, lon, loc)
	n.SunNext = sun.Compute(n.Until, lat, lon, loc)
	bad := func(format string, a ...any) (Night, error) {
		return Night{}, fmt.Errorf("program %q, night of %s: %w: %s", d.Name, n.Date.Format(time.DateOnly), ErrInvalid, fmt.Sprintf(format, a...))
	}
	if d.Extinction {
		n.Steps = []Step{{At: n.From, Level: 0}}
		return n, nil
	}

	on, err := n.instant(d.Start)
	if err != nil {
		return bad("start: %v", err)
	}
	off, err := n.instant(d.End)
	if err != nil {
		return bad("end: %v", err)
	}
	on, off = clampTime(on, n.From, n.Until), clampTime(off, n.From, n.Until)
	if !off.After(on) {
		return bad("switch-off %s is not after switch-on %s", off.Format(time.RFC3339), on.Format(time.RFC3339))
	}
	n.On, n.Off = on, off

	type point struct {
		at    time.Time
		level float64
	}
	steps := make([]point, 0, len(d.Steps))
	for i, s := range d.Steps {
		at, err := n.instant(s.At)
		if err != nil {
			return bad("steps[%d]: %v", i, err)
		}
		steps = append(steps, point{at, s.Level})
	}
	slices.SortStableFunc(steps, func(a, b point) int { return a.at.Compare(b.at) })

	// The nominal timeline: one change per instant, the last one set at an instant winning.
	changes := []point{{n.From, 0}}
	put := func(pt point) {
		if last := &changes[len(changes)-1]; last.at.Equal(pt.at) {
			last.level = pt.level
		} else {
			changes = append(changes, pt)
		}
	}
	level, i := d.Level, 0
	for ; i < len(steps) && !steps[i].at.After(on); i++ {
		level = steps[i].level
	}
	put(point{on, level})
	for ; i < len(steps) && steps[i].at.Before(off); i++ {
		put(steps[i])
	}
	if off.Before(n.Until) {
		put(point{off, 0})
	}

	// Ramps.
	out := make([]Step, 0, len(changes)*4)
	cur := 0.0
	for i, c := range changes {
		next := n.Until
		if i+1 < len(changes) {
			next = changes[i+1].at
		}
		subs := int(d.Ramp / time.Minute)
		if subs < 2 || c.level == cur {
			out = append(out, Step{At: c.at, Level: c.level})
			cur = c.level
			continue
		}
		subs = min(subs, 10)
		every := d.Ramp / time.Duration(subs)
		from := cur
		for k := 1; k <= subs; k++ {
			at := c.at.Add(every * time.Duration(k-1))
			if !at.Before(next) {
				break
			}
			l := c.level
			if k < subs {
				l = math.Round((from+(c.level-from)*float64(k)/float64(subs))*100) / 100
			}
			out = append(out, Step{At: at, Level: l})
			cur = l
		}
	}

	if l := d.Lux; l != nil && l.Window > 0 {
		n.Lux = &Lux{Below: l.Below, Level: l.Level}
		before := maxTime(n.From, on.Add(-l.Window))
		after := minTime(n.Until, off.Add(l.Window))
		out = splitAt(splitAt(out, before, n.Until), after, n.Until)
		for i := range out {
			t := out[i].At
			if !t.Before(before) && t.Before(on) || !t.Before(off) && t.Before(after) {
				out[i].Lux = true
			}
		}
	}
	if pr := d.Presence; pr != nil {
		n.Boost = &Boost{Level: pr.Level, HoldS: int((pr.Hold + time.Second - 1) / time.Second)}
		for i := range out {
			if t := out[i].At; !t.Before(on) && t.Before(off) && out[i].Level < pr.Level {
				out[i].Boost = true
			}
		}
	}
	n.Steps = mergeSteps(nil, out)
	return n, nil
}

// instant is when an event happens in the night n (Date, Sun and SunNext set), in UTC.
func (n *Night) instant(e Event) (time.Time, error) {
	if e.At != "" {
		hm, ok := parseHM(e.At)
		if !ok {
			return time.Time{}, fmt.Errorf("%q is not a time HH:MM", e.At)
		}
		y, m, d := n.Date.Date()
		if hm < 12*60 {
			d++ // the next morning
		}
		return time.Date(y, m, d, hm/60, hm%60, 0, 0, sun.Paris()).UTC(), nil
	}
	var t time.Time
	switch e.Sun {
	case SunSunset:
		t = n.Sun.Sunset
	case SunDusk:
		t = n.Sun.Dusk
	case SunSunrise:
		t = n.SunNext.Sunrise
	case SunDawn:
		t = n.SunNext.Dawn
	default:
		return time.Time{}, fmt.Errorf("%q is not a sun event", e.Sun)
	}
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("no %s that day at this latitude (polar day or night)", e.Sun)
	}
	return t.Add(e.Offset).UTC(), nil
}

func clampTime(t, lo, hi time.Time) time.Time { return maxTime(lo, minTime(hi, t)) }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// splitAt makes sure a step starts at t, copying the one in force then; t outside [first step, until) or
// already a step's time changes nothing.
func splitAt(steps []Step, t, until time.Time) []Step {
	if len(steps) == 0 || t.Before(steps[0].At) || !t.Before(until) {
		return steps
	}
	i, found := slices.BinarySearchFunc(steps, t, func(s Step, t time.Time) int { return s.At.Compare(t) })
	if found {
		return steps
	}
	s := steps[i-1]
	s.At = t
	return slices.Insert(steps, i, s)
}

// mergeSteps appends steps to dst, leaving out each step equal to the one before it (level and flags).
func mergeSteps(dst, steps []Step) []Step {
	for _, s := range steps {
		if k := len(dst); k > 0 && dst[k-1].Level == s.Level && dst[k-1].Boost == s.Boost && dst[k-1].Lux == s.Lux {
			continue
		}
		dst = append(dst, s)
	}
	return dst
}

// ProgramFrom builds the contract program of a device from consecutive resolved nights (each one's Until is
// the next one's From): their steps end to end, equal adjacent steps merged across nights, valid from the
// first night's From until the last night's Until. The contract has one Boost and one Lux per program: they
// are the first night's that has one, so nights with different presence or lux settings get the first's
// levels (a night without presence still has no Boost steps). The program is validated.
func ProgramFrom(device string, version int64, nights ...Night) (Program, error) {
	if len(nights) == 0 {
		return Program{}, fmt.Errorf("program %q v%d: %w: no nights", device, version, ErrInvalid)
	}
	p := Program{Device: device, Version: version, Until: nights[len(nights)-1].Until}
	for i, n := range nights {
		if i > 0 && !nights[i-1].Until.Equal(n.From) {
			return Program{}, fmt.Errorf("program %q v%d: %w: night %d (%s) does not start where night %d ends (%s)",
				device, version, ErrInvalid, i, n.From.Format(time.RFC3339), i-1, nights[i-1].Until.Format(time.RFC3339))
		}
		if p.Boost == nil && n.Boost != nil {
			b := *n.Boost
			p.Boost = &b
		}
		if p.Lux == nil && n.Lux != nil {
			l := *n.Lux
			p.Lux = &l
		}
		p.Steps = mergeSteps(p.Steps, n.Steps)
	}
	if err := p.Validate(); err != nil {
		return Program{}, err
	}
	return p, nil
}
