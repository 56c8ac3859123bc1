// Package simulators makes devices that behave like the Aisne fleet. For now it holds the small demo
// publisher `hyperviseur demo` runs: every registered device reports plausible values in one of the real
// payload formats, so every decoder is exercised. The full fleet simulator (load curves, faults, history) is
// its own issue.
package simulators

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
)

// DemoConfig says where to publish and what.
type DemoConfig struct {
	Broker   string
	Devices  []hv.Device
	Interval time.Duration
	Seed     uint64
}

// Format names the payload format a simulated device speaks, chosen from its registry entry: "lp-" ids speak
// line protocol, LoRaWAN devices (with a profile) speak ChirpStack when their id is a DevEUI and The Things
// Stack otherwise, the rest alternate flat JSON and SenML.
func Format(d hv.Device, i int) string {
	switch {
	case strings.HasPrefix(d.ID, "lp-"):
		return "lineprotocol"
	case d.Profile != "" && isDevEUI(d.ID):
		return "chirpstack"
	case d.Profile != "":
		return "tts"
	case i%2 == 1:
		return "senml"
	}
	return "flat"
}

func isDevEUI(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// RunDemo publishes until ctx ends.
func RunDemo(ctx context.Context, cfg DemoConfig, log *slog.Logger) {
	opts := paho.NewClientOptions().AddBroker(cfg.Broker).SetClientID("hyperviseur-demo-fleet").
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second)
	c := paho.NewClient(opts)
	c.Connect().Wait()
	defer c.Disconnect(250)
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	fleet := make([]*demoDevice, len(cfg.Devices))
	for i, d := range cfg.Devices {
		fleet[i] = &demoDevice{Device: d, format: Format(d, i), index: 1000 + rng.Float64()*5000}
	}
	log.Info("demo fleet publishing", "devices", len(fleet), "interval", cfg.Interval)
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		now := time.Now()
		for _, d := range fleet {
			topic, payload := d.next(now, rng, cfg.Interval)
			if t := c.Publish(topic, 1, false, payload); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
				log.Warn("demo publish failed", "topic", topic, "err", t.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type demoDevice struct {
	hv.Device
	format string
	index  float64 // the cumulative index the device reports (kWh or m³)
}

// next advances the device by one interval and returns its message.
func (d *demoDevice) next(now time.Time, rng *rand.Rand, every time.Duration) (string, []byte) {
	hour := float64(now.Hour()) + float64(now.Minute())/60
	occupied := 0.3 + 0.7*math.Max(0, math.Sin((hour-6)/14*math.Pi)) // day bump, base load at night
	values := map[string]float64{}
	switch d.Kind {
	case hv.DeviceWeather:
		values["temperature_c"] = round(8+6*math.Sin((hour-9)/24*2*math.Pi)+rng.NormFloat64(), 1)
	case hv.DeviceLightingController:
		level := 0.0
		if hour < 7 || hour > 18 {
			level = 100
			if hour >= 23 || hour < 5 {
				level = 50
			}
		}
		power := d.MaxPowerW * 0.6 * level / 100
		d.index += power / 1000 * every.Hours()
		values["level_pct"], values["power_w"], values["energy_kwh"] = level, round(power, 1), round(d.index, 3)
	default:
		power := math.Max(0, d.MaxPowerW*0.25*occupied*(1+0.1*rng.NormFloat64()))
		switch d.Fluid {
		case hv.Water, hv.Gas:
			d.index += occupied * every.Hours() * 0.4
			values["volume_m3"] = round(d.index, 3)
		case hv.Heat:
			d.index += power / 1000 * every.Hours()
			values["heat_kwh"], values["power_w"] = round(d.index, 3), round(power, 1)
		default:
			d.index += power / 1000 * every.Hours()
			values["energy_kwh"], values["power_w"] = round(d.index, 3), round(power, 1)
		}
	}
	// A device with a unit hint sends unit-less values in that unit, as a real one would.
	for k, v := range values {
		switch d.Units[hv.Metric(k)] {
		case "L":
			values[k] = math.Round(v * 1000)
		case "Wh":
			values[k] = math.Round(v * 1000)
		}
	}
	return encode(d.format, d.ID, d.Profile, now, values)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// encode writes values in one of the real formats of DESIGN.md.
func encode(format, id, profile string, now time.Time, values map[string]float64) (string, []byte) {
	switch format {
	case "lineprotocol":
		var b strings.Builder
		b.WriteString("meter,device=" + id + " ")
		first := true
		for k, v := range values {
			if !first {
				b.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&b, "%s=%g", k, v)
		}
		fmt.Fprintf(&b, " %d", now.UnixNano())
		return "hv/lp", []byte(b.String())
	case "chirpstack", "tts":
		object := map[string]float64{}
		for k, v := range values {
			object[codecKey(profile, k)] = codecValue(profile, k, v)
		}
		if format == "chirpstack" {
			b, _ := json.Marshal(map[string]any{
				"time":       now.UTC().Format(time.RFC3339Nano),
				"deviceInfo": map[string]any{"devEui": id, "deviceProfileName": profile, "applicationId": "demo"},
				"object":     object,
			})
			return "application/demo/device/" + id + "/event/up", b
		}
		b, _ := json.Marshal(map[string]any{
			"end_device_ids": map[string]any{"device_id": id},
			"received_at":    now.UTC().Format(time.RFC3339Nano),
			"uplink_message": map[string]any{"decoded_payload": object, "received_at": now.UTC().Format(time.RFC3339Nano)},
		})
		return "v3/demo@ttn/devices/" + id + "/up", b
	case "senml":
		recs := make([]map[string]any, 0, len(values))
		for k, v := range values {
			recs = append(recs, map[string]any{"n": k, "v": v})
		}
		if len(recs) > 0 {
			recs[0]["bn"] = id + "/"
			recs[0]["bt"] = float64(now.UnixMilli()) / 1000
		}
		b, _ := json.Marshal(recs)
		return "hv/" + id + "/up", b
	default:
		obj := map[string]any{"ts": now.UnixMilli()}
		for k, v := range values {
			obj[k] = v
		}
		b, _ := json.Marshal(obj)
		return "hv/" + id + "/up", b
	}
}

// codecKey and codecValue speak the demo LoRaWAN profiles of configs/registry.yaml: an Adeunis pulse counter
// in litres, a Kamstrup heat meter with its own key names.
func codecKey(profile, metric string) string {
	switch profile + "/" + metric {
	case "adeunis-pulse/volume_m3":
		return "counter_a"
	case "kamstrup-multical/heat_kwh":
		return "heat_energy"
	case "kamstrup-multical/power_w":
		return "power"
	}
	return metric
}

func codecValue(profile, metric string, v float64) float64 {
	switch profile + "/" + metric {
	case "adeunis-pulse/volume_m3":
		return math.Round(v * 1000) // litres
	case "kamstrup-multical/power_w":
		return v / 1000 // kW
	}
	return v
}
