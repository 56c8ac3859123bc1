package simulators

import (
	"math"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

func laonFleet(t *testing.T) (*fleet.Fleet, *registry.Registry) {
	t.Helper()
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	f, reg, err := fleet.Load(territory, fleet.Options{Seed: 1, EPCIs: []string{"200043495"}})
	if err != nil {
		t.Fatal(err)
	}
	return f, reg
}

// formatOf is the decoder the service's default topics route a message to.
func formatOf(topic string) string {
	switch {
	case topic == "hv/lp":
		return "lineprotocol"
	case strings.HasPrefix(topic, "application/"):
		return "chirpstack"
	case strings.HasPrefix(topic, "v3/"):
		return "tts"
	}
	return "json"
}

type sent struct {
	device string
	t      time.Time
}

// TestRunnerRoundTrip: every message of two hours of the Pays de Laon fleet decodes with the decoder of its
// topic, maps every key through the registry, and gives back exactly the values the models produced.
func TestRunnerRoundTrip(t *testing.T) {
	f, reg := laonFleet(t)
	start := time.Date(2027, 1, 12, 17, 0, 0, 0, time.UTC) // a winter evening: heating on, lights coming on
	r := NewRunner(f, 1, start)
	want := map[sent]map[hv.Metric]float64{}
	r.observe = func(id string, at time.Time, vals map[hv.Metric]float64) {
		cp := map[hv.Metric]float64{}
		for k, v := range vals {
			cp[k] = v
		}
		want[sent{id, at.Truncate(time.Millisecond)}] = cp
	}
	msgs := r.Due(start.Add(2 * time.Hour))
	mapper := &decode.Mapper{Profiles: reg.Profiles()}
	formats := map[string]int{}
	reports := map[string]int{}
	for _, m := range msgs {
		format := formatOf(m.Topic)
		dec, err := decode.Lookup(format)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := dec.Decode(m.Topic, m.Payload, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", m.Topic, m.Payload, err)
		}
		got := map[hv.Metric]float64{}
		var key sent
		for _, s := range samples {
			dev, _, ok := reg.Lookup(s.Device)
			if !ok {
				t.Fatalf("%s: device %q not in the registry", m.Topic, s.Device)
			}
			metric, v, err := mapper.Normalise(s, dev)
			if err != nil {
				t.Fatalf("%s: key %q: %v", m.Topic, s.Name, err)
			}
			got[metric] = v
			key = sent{s.Device, s.Time.Truncate(time.Millisecond)}
		}
		exp, ok := want[key]
		if !ok {
			t.Fatalf("%s: decoded a report (%v) the runner did not make", m.Topic, key)
		}
		for metric, v := range exp {
			if g, ok := got[metric]; !ok || math.Abs(g-v) > 1e-9*math.Max(1, math.Abs(v)) {
				t.Errorf("%s %s: %s = %v after the round trip, the model said %v", format, key.device, metric, got[metric], v)
			}
		}
		formats[format]++
		reports[key.device]++
	}
	for _, fm := range []string{"json", "lineprotocol", "chirpstack", "tts"} {
		if formats[fm] == 0 {
			t.Errorf("no %s message in two hours of fleet", fm)
		}
	}
	// Each device reports once per interval: two hours is 2 hourly reports, 12 of 10 minutes, 24 of 5.
	for _, d := range f.Devices {
		if n, want := reports[d.ID], int(2*time.Hour/d.Interval); n != want {
			t.Errorf("%s (every %s) reported %d times in 2 h, want %d", d.ID, d.Interval, n, want)
		}
	}
}

func TestRunnerIndexesRiseAndLightsFollowTheClock(t *testing.T) {
	f, _ := laonFleet(t)
	start := time.Date(2027, 1, 12, 12, 0, 0, 0, time.UTC)
	r := NewRunner(f, 1, start)
	last := map[string]float64{}
	levels := map[int]float64{}
	r.observe = func(id string, at time.Time, vals map[hv.Metric]float64) {
		for _, m := range []hv.Metric{hv.EnergyKWh, hv.VolumeM3, hv.HeatKWh} {
			if v, ok := vals[m]; ok {
				if v < last[id] {
					t.Fatalf("%s: index %s went down from %v to %v", id, m, last[id], v)
				}
				last[id] = v
			}
		}
		if lv, ok := vals[hv.LevelPct]; ok {
			levels[at.In(time.FixedZone("CET", 3600)).Hour()] = lv
		}
	}
	r.Due(start.Add(24 * time.Hour))
	if levels[12] != 0 || levels[19] != 100 || levels[2] != 50 {
		t.Errorf("street-light levels by hour %v: want off at noon, full at 19:00, half at 02:00", levels)
	}
}

// TestPresenceReports: the controllers of cabinets with presence detection report presence, the others do not;
// over a night both answers come, rarer after midnight.
func TestPresenceReports(t *testing.T) {
	f, _ := laonFleet(t)
	sensors := map[string]bool{}
	for _, d := range f.Devices {
		if d.Presence {
			if !d.LED || d.Kind != hv.DeviceLightingController {
				t.Fatalf("%s: presence detection on a non-LED cabinet or a device that is not a controller", d.ID)
			}
			sensors[d.ID] = true
		}
	}
	if len(sensors) < 5 {
		t.Fatalf("only %d cabinets with presence detection in the Pays de Laon", len(sensors))
	}
	start := time.Date(2027, 1, 12, 17, 0, 0, 0, time.UTC)
	r := NewRunner(f, 1, start)
	evening, night := [2]int{}, [2]int{} // reports without, with someone detected
	r.observe = func(id string, at time.Time, vals map[hv.Metric]float64) {
		v, ok := vals[hv.Presence]
		if ok != sensors[id] {
			t.Fatalf("%s reports presence: %v, has a sensor: %v", id, ok, sensors[id])
		}
		if !ok {
			return
		}
		h := at.In(time.FixedZone("CET", 3600)).Hour()
		switch {
		case h >= 18 && h < 21:
			evening[int(v)]++
		case h >= 1 && h < 5:
			night[int(v)]++
		}
	}
	r.Due(start.Add(14 * time.Hour))
	shareEvening := float64(evening[1]) / float64(evening[0]+evening[1])
	shareNight := float64(night[1]) / float64(night[0]+night[1])
	if night[1] == 0 || shareNight >= shareEvening/2 {
		t.Errorf("someone detected in %.0f %% of evening reports and %.0f %% of night ones", 100*shareEvening, 100*shareNight)
	}
}
