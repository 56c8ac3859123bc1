package decode

import (
	"errors"
	"fmt"

	"github.com/useda02/hyperviseur"
)

// Errors of Normalise; both are wrapped with the key (and unit) concerned.
var (
	// ErrUnknownUnit marks a unit that is not a unit of the metric the key maps to.
	ErrUnknownUnit = errors.New("unknown unit")
	// ErrUnmapped marks a key that maps to no canonical metric: the device or its profile needs a key map.
	ErrUnmapped = errors.New("unmapped key")
)

// Mapper maps samples to canonical metrics. Profiles are the LoRaWAN device-profile key tables from config.
type Mapper struct {
	Profiles map[string]map[string]hyperviseur.KeyMap
}

// Normalise returns the canonical metric and the value in its canonical unit. dev may be nil (an
// unregistered device).
//
// The metric comes from the first of: the device's key map, its profile's key map, the name itself when it
// is a canonical metric, the built-in aliases (case-insensitive: energy, P, temp, dimming…), and, for an
// empty name (a SenML record naming only the device), the unit. The unit is the sample's, else the key map's,
// else the device's hint for the metric, else the canonical unit.
func (m *Mapper) Normalise(s Sample, dev *hyperviseur.Device) (hyperviseur.Metric, float64, error) {
	var (
		metric hyperviseur.Metric
		km     hyperviseur.KeyMap
		mapped bool
	)
	if dev != nil {
		if km, mapped = dev.Keys[s.Name]; !mapped && m != nil && dev.Profile != "" {
			km, mapped = m.Profiles[dev.Profile][s.Name]
		}
	}
	switch {
	case mapped:
		metric = km.Metric
		if !metric.Canonical() {
			return "", 0, fmt.Errorf("%w: key %q maps to %q, not a canonical metric", ErrUnmapped, s.Name, km.Metric)
		}
	case hyperviseur.Metric(s.Name).Canonical():
		metric = hyperviseur.Metric(s.Name)
	case s.Name == "":
		if metric = unitMetric(s.Unit); metric == "" {
			return "", 0, fmt.Errorf("%w: unnamed value with unit %q", ErrUnmapped, s.Unit)
		}
	default:
		if metric = alias(s.Name); metric == "" {
			return "", 0, fmt.Errorf("%w: key %q", ErrUnmapped, s.Name)
		}
	}

	unit := s.Unit
	if unit == "" {
		unit = km.Unit
	}
	if unit == "" && dev != nil {
		unit = dev.Units[metric]
	}
	v, ok := convert(metric, unit, s.Value)
	if !ok {
		return "", 0, fmt.Errorf("%w %q for key %q (metric %s)", ErrUnknownUnit, unit, s.Name, metric)
	}
	return metric, v, nil
}

// aliases are names devices commonly use (SenML, OMA LwM2M resource names, codec habits), lower-case.
var aliases = map[string]hyperviseur.Metric{
	"energy": hyperviseur.EnergyKWh, "e": hyperviseur.EnergyKWh, "wh": hyperviseur.EnergyKWh,
	"kwh": hyperviseur.EnergyKWh, "energy_wh": hyperviseur.EnergyKWh,
	"heat":  hyperviseur.HeatKWh,
	"power": hyperviseur.PowerW, "p": hyperviseur.PowerW,
	"volume": hyperviseur.VolumeM3, "water": hyperviseur.VolumeM3, "gas": hyperviseur.VolumeM3,
	"flow":        hyperviseur.FlowM3h,
	"temperature": hyperviseur.TemperatureC, "temp": hyperviseur.TemperatureC, "t": hyperviseur.TemperatureC,
	"level": hyperviseur.LevelPct, "dim": hyperviseur.LevelPct, "dimming": hyperviseur.LevelPct,
	"lux": hyperviseur.IlluminanceLux, "illuminance": hyperviseur.IlluminanceLux,
	"presence": hyperviseur.Presence, "occupancy": hyperviseur.Presence,
	"voltage": hyperviseur.VoltageV, "u": hyperviseur.VoltageV,
	"current": hyperviseur.CurrentA, "i": hyperviseur.CurrentA,
	"pf": hyperviseur.PowerFactor, "power_factor": hyperviseur.PowerFactor,
	"hours":        hyperviseur.OperatingHours,
	"lamp_failure": hyperviseur.LampFailure,
	"door":         hyperviseur.DoorOpen, "door_open": hyperviseur.DoorOpen,
}

func init() {
	// Canonical names in any case are aliases too ("Energy_kWh").
	for _, m := range hyperviseur.Metrics() {
		aliases[string(m)] = m
	}
}

// alias looks a name up case-insensitively, lower-casing into a stack buffer so that no string is built.
func alias(name string) hyperviseur.Metric {
	if m, ok := aliases[name]; ok {
		return m
	}
	var buf [32]byte
	if len(name) > len(buf) {
		return "" // longer than any alias
	}
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return aliases[string(b)]
}

// unitMetric guesses the metric of an unnamed SenML value from its unit; only units that belong to one
// metric qualify (a bare "V" could be a battery, but an unnamed record has no better clue).
func unitMetric(unit string) hyperviseur.Metric {
	switch unit {
	case "kWh", "Wh", "MWh", "J":
		return hyperviseur.EnergyKWh
	case "W", "kW":
		return hyperviseur.PowerW
	case "m3", "l", "L":
		return hyperviseur.VolumeM3
	case "m3/h", "l/h", "L/h", "m3/s", "l/s":
		return hyperviseur.FlowM3h
	case "Cel", "°C", "degC", "K":
		return hyperviseur.TemperatureC
	case "lx":
		return hyperviseur.IlluminanceLux
	case "V":
		return hyperviseur.VoltageV
	case "A":
		return hyperviseur.CurrentA
	}
	return ""
}

// convert turns v in unit into the canonical unit of metric. Units are case-sensitive (mW is not MW), with
// the few case slips meters are known to print (KWh) listed explicitly. "" is the canonical unit.
func convert(metric hyperviseur.Metric, unit string, v float64) (float64, bool) {
	switch metric {
	case hyperviseur.EnergyKWh, hyperviseur.HeatKWh:
		switch unit {
		case "", "kWh", "KWh", "kwh", "kW.h":
			return v, true
		case "Wh", "W.h", "wh":
			return v / 1e3, true
		case "MWh", "MW.h":
			return v * 1e3, true
		case "J":
			return v / 3.6e6, true
		case "kJ":
			return v / 3.6e3, true
		case "MJ":
			return v / 3.6, true
		case "GJ":
			return v * (1e3 / 3.6), true
		}
	case hyperviseur.PowerW:
		switch unit {
		case "", "W":
			return v, true
		case "kW", "KW":
			return v * 1e3, true
		case "MW":
			return v * 1e6, true
		}
	case hyperviseur.VolumeM3:
		switch unit {
		case "", "m3", "m³":
			return v, true
		case "L", "l":
			return v / 1e3, true
		}
	case hyperviseur.FlowM3h:
		switch unit {
		case "", "m3/h", "m³/h":
			return v, true
		case "L/h", "l/h":
			return v / 1e3, true
		case "L/min", "l/min":
			return v * 60 / 1e3, true
		case "m3/s":
			return v * 3600, true
		case "L/s", "l/s":
			return v * 3.6, true
		}
	case hyperviseur.TemperatureC:
		switch unit {
		case "", "Cel", "°C", "degC", "C":
			return v, true
		case "K":
			return v - 273.15, true
		case "°F", "degF", "Far":
			return (v - 32) * 5 / 9, true
		}
	case hyperviseur.LevelPct:
		switch unit {
		case "", "%":
			return v, true
		case "/": // SenML ratio, 0–1
			return v * 100, true
		}
	case hyperviseur.IlluminanceLux:
		switch unit {
		case "", "lx", "lux":
			return v, true
		}
	case hyperviseur.VoltageV:
		switch unit {
		case "", "V":
			return v, true
		case "mV":
			return v / 1e3, true
		case "kV":
			return v * 1e3, true
		}
	case hyperviseur.CurrentA:
		switch unit {
		case "", "A":
			return v, true
		case "mA":
			return v / 1e3, true
		}
	case hyperviseur.PowerFactor:
		switch unit {
		case "", "1", "/":
			return v, true
		case "%":
			return v / 100, true
		}
	case hyperviseur.OperatingHours:
		switch unit {
		case "", "h":
			return v, true
		case "min":
			return v / 60, true
		case "s":
			return v / 3600, true
		case "d":
			return v * 24, true
		}
	case hyperviseur.Presence, hyperviseur.LampFailure, hyperviseur.DoorOpen:
		switch unit {
		case "", "1", "/":
			return v, true
		}
	}
	return 0, false
}
