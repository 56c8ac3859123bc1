package decode

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/useda02/hyperviseur"
)

func TestNormalise(t *testing.T) {
	mapper := &Mapper{Profiles: map[string]map[string]hyperviseur.KeyMap{
		"countis-e": {
			"ea":  {Metric: hyperviseur.EnergyKWh, Unit: "Wh"},
			"pw":  {Metric: hyperviseur.PowerW},
			"bad": {Metric: "energy"},
		},
	}}
	meter := &hyperviseur.Device{
		ID: "m1", Profile: "countis-e",
		Keys:  map[string]hyperviseur.KeyMap{"pw": {Metric: hyperviseur.PowerW, Unit: "kW"}, "idx": {Metric: hyperviseur.VolumeM3}},
		Units: map[hyperviseur.Metric]string{hyperviseur.VolumeM3: "L", hyperviseur.TemperatureC: "K"},
	}
	noProfile := &hyperviseur.Device{ID: "m2", Profile: "unknown-profile"}

	tests := []struct {
		name    string
		sample  Sample
		dev     *hyperviseur.Device
		metric  hyperviseur.Metric
		value   float64
		wantErr error  // ErrUnknownUnit or ErrUnmapped
		errText string // substring of the error
	}{
		{name: "canonical name, no unit", sample: Sample{Name: "energy_kwh", Value: 12.5}, metric: hyperviseur.EnergyKWh, value: 12.5},
		{name: "canonical name, canonical unit", sample: Sample{Name: "power_w", Unit: "W", Value: 3}, metric: hyperviseur.PowerW, value: 3},
		{name: "Wh to kWh", sample: Sample{Name: "energy", Unit: "Wh", Value: 123456}, metric: hyperviseur.EnergyKWh, value: 123.456},
		{name: "MWh to kWh", sample: Sample{Name: "energy_kwh", Unit: "MWh", Value: 1.5}, metric: hyperviseur.EnergyKWh, value: 1500},
		{name: "J to kWh", sample: Sample{Name: "E", Unit: "J", Value: 7.2e6}, metric: hyperviseur.EnergyKWh, value: 2},
		{name: "SenML W.h", sample: Sample{Name: "energy", Unit: "W.h", Value: 500}, metric: hyperviseur.EnergyKWh, value: 0.5},
		{name: "heat in MWh", sample: Sample{Name: "heat_kwh", Unit: "MWh", Value: 2}, metric: hyperviseur.HeatKWh, value: 2000},
		{name: "kW to W", sample: Sample{Name: "P", Unit: "kW", Value: 1.52}, metric: hyperviseur.PowerW, value: 1520},
		{name: "L to m3", sample: Sample{Name: "water", Unit: "L", Value: 2500}, metric: hyperviseur.VolumeM3, value: 2.5},
		{name: "l to m3", sample: Sample{Name: "gas", Unit: "l", Value: 10}, metric: hyperviseur.VolumeM3, value: 0.01},
		{name: "L/h to m3/h", sample: Sample{Name: "flow", Unit: "L/h", Value: 500}, metric: hyperviseur.FlowM3h, value: 0.5},
		{name: "L/min to m3/h", sample: Sample{Name: "flow", Unit: "L/min", Value: 10}, metric: hyperviseur.FlowM3h, value: 0.6},
		{name: "K to Cel", sample: Sample{Name: "temperature", Unit: "K", Value: 293.15}, metric: hyperviseur.TemperatureC, value: 20},
		{name: "degC", sample: Sample{Name: "T", Unit: "°C", Value: -4}, metric: hyperviseur.TemperatureC, value: -4},
		{name: "percent", sample: Sample{Name: "dimming", Unit: "%", Value: 70}, metric: hyperviseur.LevelPct, value: 70},
		{name: "SenML ratio to percent", sample: Sample{Name: "dim", Unit: "/", Value: 0.7}, metric: hyperviseur.LevelPct, value: 70},
		{name: "lux", sample: Sample{Name: "Illuminance", Unit: "lx", Value: 12}, metric: hyperviseur.IlluminanceLux, value: 12},
		{name: "power factor ratio", sample: Sample{Name: "pf", Unit: "/", Value: 0.93}, metric: hyperviseur.PowerFactor, value: 0.93},
		{name: "boolean unit 1", sample: Sample{Name: "door", Unit: "1", Value: 1}, metric: hyperviseur.DoorOpen, value: 1},
		{name: "aliases ignore case", sample: Sample{Name: "OCCUPANCY", Value: 1}, metric: hyperviseur.Presence, value: 1},
		{name: "canonical name in another case", sample: Sample{Name: "Voltage_V", Value: 231}, metric: hyperviseur.VoltageV, value: 231},
		{name: "current alias I in mA", sample: Sample{Name: "I", Unit: "mA", Value: 1500}, metric: hyperviseur.CurrentA, value: 1.5},
		{name: "operating hours", sample: Sample{Name: "hours", Value: 1234}, metric: hyperviseur.OperatingHours, value: 1234},
		{name: "unnamed SenML value by unit", sample: Sample{Name: "", Unit: "Cel", Value: 23.1}, metric: hyperviseur.TemperatureC, value: 23.1},
		{name: "profile key with profile unit", sample: Sample{Name: "ea", Value: 2000}, dev: meter, metric: hyperviseur.EnergyKWh, value: 2},
		{name: "device key overrides profile key", sample: Sample{Name: "pw", Value: 1.5}, dev: meter, metric: hyperviseur.PowerW, value: 1500},
		{name: "sample unit beats key map unit", sample: Sample{Name: "pw", Unit: "W", Value: 1.5}, dev: meter, metric: hyperviseur.PowerW, value: 1.5},
		{name: "device unit hint", sample: Sample{Name: "idx", Value: 1500}, dev: meter, metric: hyperviseur.VolumeM3, value: 1.5},
		{name: "device unit hint for an alias", sample: Sample{Name: "temp", Value: 300}, dev: meter, metric: hyperviseur.TemperatureC, value: 300 - 273.15},
		{name: "canonical name on a device without key", sample: Sample{Name: "power_w", Value: 7}, dev: meter, metric: hyperviseur.PowerW, value: 7},
		{name: "unknown profile falls back to names", sample: Sample{Name: "energy", Unit: "kWh", Value: 1}, dev: noProfile, metric: hyperviseur.EnergyKWh, value: 1},

		{name: "unit of another metric", sample: Sample{Name: "energy", Unit: "W", Value: 1}, wantErr: ErrUnknownUnit, errText: `unknown unit "W" for key "energy"`},
		{name: "unknown unit", sample: Sample{Name: "power_w", Unit: "hp", Value: 1}, wantErr: ErrUnknownUnit, errText: `"hp"`},
		{name: "units are case-sensitive", sample: Sample{Name: "power", Unit: "mW", Value: 1}, wantErr: ErrUnknownUnit, errText: `"mW"`},
		{name: "bad device unit hint", sample: Sample{Name: "idx", Value: 1}, dev: &hyperviseur.Device{Keys: meter.Keys, Units: map[hyperviseur.Metric]string{hyperviseur.VolumeM3: "kWh"}}, wantErr: ErrUnknownUnit, errText: `"kWh" for key "idx"`},
		{name: "unmapped key", sample: Sample{Name: "battery", Unit: "V", Value: 3.6}, wantErr: ErrUnmapped, errText: `key "battery"`},
		{name: "unmapped on a registered device", sample: Sample{Name: "rssi", Value: -80}, dev: meter, wantErr: ErrUnmapped, errText: `key "rssi"`},
		{name: "key map to a non-canonical metric", sample: Sample{Name: "bad", Value: 1}, dev: meter, wantErr: ErrUnmapped, errText: `maps to "energy"`},
		{name: "unnamed value with ambiguous unit", sample: Sample{Name: "", Unit: "%", Value: 1}, wantErr: ErrUnmapped, errText: `unnamed value with unit "%"`},
		{name: "long name", sample: Sample{Name: strings.Repeat("x", 100), Value: 1}, wantErr: ErrUnmapped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metric, v, err := mapper.Normalise(tt.sample, tt.dev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want one wrapping %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if metric != tt.metric || math.Abs(v-tt.value) > 1e-9*math.Max(1, math.Abs(tt.value)) {
				t.Errorf("got %s %v, want %s %v", metric, v, tt.metric, tt.value)
			}
		})
	}
}

// Every canonical metric must accept its own canonical unit, and no sample may come out of a conversion
// with another metric's unit by mistake.
func TestNormaliseCanonicalUnits(t *testing.T) {
	var m *Mapper // a nil Mapper means no profiles
	for _, metric := range hyperviseur.Metrics() {
		got, v, err := m.Normalise(Sample{Name: string(metric), Unit: metric.Unit(), Value: 42}, nil)
		if err != nil || got != metric || v != 42 {
			t.Errorf("%s in %q: got %s %v %v", metric, metric.Unit(), got, v, err)
		}
	}
}

func TestNormaliseNoAlloc(t *testing.T) {
	m := &Mapper{}
	dev := &hyperviseur.Device{Keys: map[string]hyperviseur.KeyMap{"ea": {Metric: hyperviseur.EnergyKWh, Unit: "Wh"}}}
	for _, s := range []Sample{
		{Name: "energy_kwh", Value: 1},
		{Name: "Energy", Unit: "Wh", Value: 1},
		{Name: "ea", Value: 1},
	} {
		if n := testing.AllocsPerRun(100, func() { _, _, _ = m.Normalise(s, dev) }); n != 0 {
			t.Errorf("Normalise(%q) allocates %v times", s.Name, n)
		}
	}
}
