package model

import (
	"math"
	"time"
)

// Street-light power curves.
const (
	// StandbyW is what a luminaire draws at level 0: the controller node and the driver (or the contactor
	// coil) stay powered so the light can be commanded back on.
	StandbyW = 0.5
	// ledFloor: an LED driver's own losses, ≈ 10 % of nominal whatever the dimming level.
	ledFloor = 0.10
	// SodiumMinLevelPct is the lowest level a high-pressure sodium lamp on a magnetic ballast reaches (bi-power
	// ballast or line-voltage reducer): below it the arc would extinguish, so lower commands give this level.
	SodiumMinLevelPct = 50
	// Sodium curve P/Pnom = sodiumLoss + (1 − sodiumLoss)·L^sodiumExp: the ballast's core losses (≈ 15 % of
	// the system's power) do not dim, and the arc's efficacy falls when its power is reduced, so the power
	// needed for a light level L is above L: 67 % of nominal power for 50 % light.
	sodiumLoss = 0.15
	sodiumExp  = 0.7
)

// LampPowerW returns the power (W) a luminaire of nominal system power nominalW (lamp and driver or
// ballast, at full level) draws at dimming level levelPct (0-100). LED: linear with a 10 % driver floor
// (≈ 55 % of nominal at level 50). Sodium with magnetic ballast: clamped to SodiumMinLevelPct and above
// linear (see sodiumLoss). Level 0 (or below): StandbyW. The result is non-decreasing in levelPct.
func LampPowerW(nominalW, levelPct float64, led bool) float64 {
	if nominalW <= 0 {
		return 0
	}
	l := math.Min(levelPct, 100) / 100
	if !(l > 0) { // also NaN: a luminaire that is not told anything stays off
		return StandbyW
	}
	var f float64
	if led {
		f = ledFloor + (1-ledFloor)*l
	} else {
		l = math.Max(l, SodiumMinLevelPct/100.0)
		f = sodiumLoss + (1-sodiumLoss)*math.Pow(l, sodiumExp)
	}
	// Never below standby, so a tiny luminaire's power still grows with its level.
	return math.Max(StandbyW, nominalW*f)
}

// OperatingHours accumulates a lamp's burning hours (operating_hours) from on/off states. The state given
// at a call holds until the next call, as a commanded lamp does: call it at every switching instant for
// exact totals, or at the reporting interval for totals accurate to one interval per switch.
type OperatingHours struct {
	Hours float64 // the counter; set it to start from a controller's reading
	last  time.Time
	on    bool
	ok    bool
}

// Advance adds the time since the previous call if the lamp was on then, records on, and returns the
// counter. A t before the previous call is ignored.
func (o *OperatingHours) Advance(t time.Time, on bool) float64 {
	switch {
	case !o.ok:
		o.last, o.on, o.ok = t, on, true
	case !t.Before(o.last):
		if o.on {
			o.Hours += t.Sub(o.last).Hours()
		}
		o.last, o.on = t, on
	}
	return o.Hours
}

// PresenceChance is the chance that a street with presence detection sees someone (a pedestrian, a cyclist,
// a car) during a 5-minute interval at t, Paris time: nearly always by day and in the evening, rarely in the
// small hours, a little more on Friday and Saturday nights. It is what presence-triggered dimming saves on:
// a street lit at its boost level only for the intervals someone passes.
func PresenceChance(t time.Time) float64 {
	local := t.In(paris)
	h := local.Hour()
	p := 0.0
	switch {
	case h >= 7 && h < 21:
		p = 0.95
	case h >= 21 && h < 23:
		p = 0.6
	case h == 23:
		p = 0.35
	case h >= 5 && h < 7:
		p = 0.4
	default: // 00:00 to 05:00
		p = 0.12
	}
	if wd := local.Weekday(); h < 5 && (wd == time.Saturday || wd == time.Sunday) {
		p += 0.1 // the nights after Friday and Saturday
	}
	return p
}

// PresenceDetected says whether the presence sensor of a street (seed) detected someone in the 5-minute
// interval holding t: the same answer whenever it is asked again.
func PresenceDetected(seed uint64, t time.Time) bool {
	slot := floorDiv(t.Unix(), 300)
	key := keyPresence // a variable: the product wraps, as the other streams' do
	return uniform(seed, key*golden+uint64(slot)) < PresenceChance(t)
}
