// Package hyperviseur holds the domain of the Aisne urban hypervisor: readings, the canonical metrics,
// the asset registry types, and the interfaces (Store, Notifier) the technology packages implement.
// It imports nothing outside the standard library.
package hyperviseur

import (
	"errors"
	"time"
)

// Sentinel errors shared by every package. Wrap them with %w and a prefix saying what was being done.
var (
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable means a dependency (store, broker) cannot be reached; the caller may retry.
	ErrUnavailable = errors.New("unavailable")
)

// Reading is one normalised sample of one canonical metric of one device. Site, Commune, EPCI and Fluid come
// from the registry (never from the payload); they are empty for an unregistered device.
type Reading struct {
	Device  string
	Metric  Metric
	Value   float64
	Time    int64 // Unix milliseconds
	Site    string
	Commune string // INSEE code
	EPCI    string // SIREN code
	Fluid   Fluid
}

// Timestamp returns the reading's time as a time.Time in UTC.
func (r Reading) Timestamp() time.Time { return time.UnixMilli(r.Time).UTC() }

// Metric is a canonical metric name; every decoder normalises to these.
type Metric string

// The canonical metrics of DESIGN.md.
const (
	EnergyKWh      Metric = "energy_kwh" // cumulative index
	PowerW         Metric = "power_w"
	VolumeM3       Metric = "volume_m3" // cumulative index (water, gas)
	FlowM3h        Metric = "flow_m3h"
	HeatKWh        Metric = "heat_kwh" // cumulative index
	TemperatureC   Metric = "temperature_c"
	LevelPct       Metric = "level_pct"
	IlluminanceLux Metric = "illuminance_lux"
	Presence       Metric = "presence"
	VoltageV       Metric = "voltage_v"
	CurrentA       Metric = "current_a"
	PowerFactor    Metric = "power_factor"
	OperatingHours Metric = "operating_hours" // cumulative index
	LampFailure    Metric = "lamp_failure"
	DoorOpen       Metric = "door_open"
)

// DeltaSuffix names the interval-consumption series derived from a cumulative index: energy_kwh_delta.
const DeltaSuffix = "_delta"

// CounterEvent is the metric ingest writes when an index misbehaves; its value is a CounterFlag.
const CounterEvent Metric = "counter_event"

// CounterFlag says what happened to a cumulative index between two readings.
type CounterFlag int

// Counter flags, stored as the value of CounterEvent.
const (
	FlagNone     CounterFlag = 0
	FlagReset    CounterFlag = 1 // index decreased: meter replaced or reset; delta = new value
	FlagRollover CounterFlag = 2 // index wrapped at the configured register width
	FlagJump     CounterFlag = 3 // increase above max power × interval: flagged, not counted
	// FlagClockSkew: the device stamps its readings ahead of the service's clock by more than ingest's
	// tolerance, but within the accepted future; the readings are stored, the event is at the receive time.
	FlagClockSkew CounterFlag = 4
)

func (f CounterFlag) String() string {
	switch f {
	case FlagReset:
		return "reset"
	case FlagRollover:
		return "rollover"
	case FlagJump:
		return "jump"
	case FlagClockSkew:
		return "clock_skew"
	}
	return "none"
}

// metricInfo is what the domain knows of each canonical metric.
var metricInfo = map[Metric]struct {
	unit       string
	cumulative bool
}{
	EnergyKWh: {"kWh", true}, PowerW: {"W", false}, VolumeM3: {"m3", true}, FlowM3h: {"m3/h", false},
	HeatKWh: {"kWh", true}, TemperatureC: {"Cel", false}, LevelPct: {"%", false},
	IlluminanceLux: {"lx", false}, Presence: {"", false}, VoltageV: {"V", false}, CurrentA: {"A", false},
	PowerFactor: {"", false}, OperatingHours: {"h", true}, LampFailure: {"", false}, DoorOpen: {"", false},
}

// Canonical reports whether m is one of the canonical metrics (not a derived delta series).
func (m Metric) Canonical() bool { _, ok := metricInfo[m]; return ok }

// Cumulative reports whether m is an index from which interval deltas are derived.
func (m Metric) Cumulative() bool { return metricInfo[m].cumulative }

// Unit is the canonical unit of m ("" for dimensionless metrics); a delta has its index's unit.
func (m Metric) Unit() string {
	if base, ok := m.DeltaOf(); ok {
		return metricInfo[base].unit
	}
	return metricInfo[m].unit
}

// Delta names the interval-consumption series of the cumulative index m.
func (m Metric) Delta() Metric { return m + DeltaSuffix }

// DeltaOf returns the index a delta series derives from.
func (m Metric) DeltaOf() (Metric, bool) {
	n := len(m) - len(DeltaSuffix)
	if n > 0 && m[n:] == DeltaSuffix && Metric(m[:n]).Cumulative() {
		return m[:n], true
	}
	return "", false
}

// Known reports whether m may be stored and queried: canonical, a delta of an index, or CounterEvent.
func (m Metric) Known() bool {
	_, delta := m.DeltaOf()
	return m.Canonical() || delta || m == CounterEvent
}

// Metrics lists the canonical metrics.
func Metrics() []Metric {
	out := make([]Metric, 0, len(metricInfo))
	for m := range metricInfo {
		out = append(out, m)
	}
	return out
}

// CumulativeMetrics lists the indexes.
func CumulativeMetrics() []Metric {
	var out []Metric
	for m, i := range metricInfo {
		if i.cumulative {
			out = append(out, m)
		}
	}
	return out
}

// Fluid is what a meter measures.
type Fluid string

// Fluids of the hypervisor.
const (
	Electricity Fluid = "electricity"
	Gas         Fluid = "gas"
	Water       Fluid = "water"
	Heat        Fluid = "heat"
	Weather     Fluid = "weather" // weather stations: no consumption
)

// Valid reports whether f is a known fluid ("" is not).
func (f Fluid) Valid() bool {
	switch f {
	case Electricity, Gas, Water, Heat, Weather:
		return true
	}
	return false
}
