package load

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/internal/testenv"
)

func TestDeviceID(t *testing.T) {
	if got := DeviceID(0); got != "bench-000001" {
		t.Errorf("DeviceID(0) = %q", got)
	}
	if got := DeviceID(MaxDevices - 1); got != "bench-999999" {
		t.Errorf("DeviceID(max) = %q", got)
	}
}

func TestPayloadDecodes(t *testing.T) {
	dec, err := decode.Lookup("json")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 20, 8, 30, 0, 123e6, time.UTC).UnixMilli()
	for _, i := range []int{0, 1, 4242, MaxDevices - 1} {
		id := DeviceID(i)
		payload := AppendPayload(nil, i, ts)
		samples, err := dec.Decode("hv/"+id+"/up", payload, nil)
		if err != nil {
			t.Fatalf("%s: %s: %v", id, payload, err)
		}
		got := map[string]float64{}
		for _, s := range samples {
			if s.Device != id || s.Time.UnixMilli() != ts {
				t.Errorf("%s: sample %+v: want device %s at %d", id, s, id, ts)
			}
			got[s.Name] = s.Value
		}
		if len(got) != ReadingsPerMessage || got["energy_kwh"] <= 0 || got["power_w"] <= 0 || got["power_w"] > MaxPowerW(i) {
			t.Errorf("%s: %s decodes to %v", id, payload, got)
		}
		if !bytes.Equal(payload, AppendPayload(nil, i, ts)) {
			t.Errorf("%s: the same device and time give different payloads", id)
		}
	}
}

// The indexes the generator sends must look like healthy meters to ingest: increasing, consistent with the
// power the registry declares, whatever the publishing pace, the arrival order or what the service remembers
// from an earlier run. A jump or a reset would add counter events and break the bench's reading counts.
func TestIndexesAreValidMeters(t *testing.T) {
	dec, _ := decode.Lookup("json")
	mapper := &decode.Mapper{}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
	tests := []struct {
		name  string
		times []int64 // offsets in ms, in arrival order
	}{
		{"one per ms", []int64{0, 1, 2, 3, 4, 5}},
		{"same ms twice", []int64{0, 0, 1, 1}},
		{"fast then slow", []int64{0, 7, 1000, 600_000, 86_400_000}},
		{"out of order", []int64{1000, 0, 3000, 2000, 5000, 4000}},
		{"a later run", []int64{0, 10, 20, 30 * 86_400_000, 30*86_400_000 + 5}},
	}
	for _, tt := range tests {
		for _, i := range []int{0, 17, 99_999} {
			t.Run(fmt.Sprintf("%s/%s", tt.name, DeviceID(i)), func(t *testing.T) {
				dev := &hv.Device{ID: DeviceID(i), Kind: hv.DeviceMeter, Fluid: hv.Electricity, MaxPowerW: MaxPowerW(i)}
				counters := ingest.NewCounters()
				for _, off := range tt.times {
					ts := start + off
					samples, err := dec.Decode("hv/"+dev.ID+"/up", AppendPayload(nil, i, ts), nil)
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range samples {
						m, v, err := mapper.Normalise(s, dev)
						if err != nil {
							t.Fatal(err)
						}
						if !m.Cumulative() {
							continue
						}
						delta, at, flag, ok := counters.Observe(hv.Reading{Device: dev.ID, Metric: m, Value: v, Time: ts}, dev)
						if flag != hv.FlagNone {
							t.Fatalf("reading at +%d ms flagged %s (delta %g at %d)", off, flag, delta, at)
						}
						if ok && delta < 0 {
							t.Fatalf("negative delta %g", delta)
						}
					}
				}
			})
		}
	}
	// The index follows the nominal power: an hour adds NominalW/1000 kWh.
	for _, i := range []int{0, 5, 1234} {
		kwh := func(ts int64) float64 {
			s, _ := dec.Decode("hv/x/up", AppendPayload(nil, i, ts), nil)
			for _, x := range s {
				if x.Name == "energy_kwh" {
					return x.Value
				}
			}
			return math.NaN()
		}
		if d := kwh(start+3_600_000) - kwh(start); math.Abs(d-NominalW(i)/1000) > 1e-5 {
			t.Errorf("%s: an hour adds %g kWh, want %g", DeviceID(i), d, NominalW(i)/1000)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Broker: "tcp://127.0.0.1:1", Devices: 10, Messages: 100, Connections: 2}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no broker", func(c *Config) { c.Broker = "" }, "broker"},
		{"no devices", func(c *Config) { c.Devices = 0 }, "devices"},
		{"too many devices", func(c *Config) { c.Devices = MaxDevices + 1 }, "devices"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"nothing to send", func(c *Config) { c.Messages = 0 }, "duration"},
		{"more connections than devices", func(c *Config) { c.Connections = 11 }, "connections"},
		{"window beyond packet ids", func(c *Config) { c.InFlight = 70000 }, "in-flight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// subscriber counts what reaches the broker, per device, and checks each device's timestamps arrive in order.
type subscriber struct {
	mu       sync.Mutex
	perDev   map[string]int
	lastTS   map[string]int64
	total    int
	disorder int
}

func subscribe(t *testing.T, broker string) *subscriber {
	t.Helper()
	s := &subscriber{perDev: map[string]int{}, lastTS: map[string]int64{}}
	dec, _ := decode.Lookup("json")
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("load-test-sub").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("hv/+/up", 1, func(_ paho.Client, m paho.Message) {
		samples, err := dec.Decode(m.Topic(), m.Payload(), nil)
		if err != nil || len(samples) == 0 {
			t.Errorf("undecodable message on %s: %s: %v", m.Topic(), m.Payload(), err)
			return
		}
		dev, ts := samples[0].Device, samples[0].Time.UnixMilli()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total++
		s.perDev[dev]++
		if ts < s.lastTS[dev] {
			s.disorder++
		}
		s.lastTS[dev] = ts
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return s
}

func (s *subscriber) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		got := s.total
		s.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %d of %d messages within a minute", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunIntegration(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	t.Run("max rate, every device its share", func(t *testing.T) {
		sub := subscribe(t, mq.URL)
		const devices, messages = 37, 1000 // not multiples of the connections: uneven rounds
		stats, err := Run(context.Background(), Config{Broker: mq.URL, ClientID: "load-max", Devices: devices,
			Messages: messages, Connections: 3, InFlight: 16})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Published != messages || stats.Failed != 0 {
			t.Fatalf("published %d, failed %d (%v), want %d, 0", stats.Published, stats.Failed, stats.FirstErr, messages)
		}
		sub.wait(t, messages)
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if len(sub.perDev) != devices {
			t.Errorf("%d devices published, want %d", len(sub.perDev), devices)
		}
		for i := range devices {
			// Message k belongs to device k mod devices.
			want := messages / devices
			if i < messages%devices {
				want++
			}
			if got := sub.perDev[DeviceID(i)]; got != want {
				t.Errorf("%s published %d messages, want %d", DeviceID(i), got, want)
			}
		}
		if sub.disorder != 0 {
			t.Errorf("%d messages arrived with a timestamp older than their device's previous one", sub.disorder)
		}
	})
	t.Run("target rate", func(t *testing.T) {
		const rate, messages = 2000.0, 600
		stats, err := Run(context.Background(), Config{Broker: mq.URL, ClientID: "load-rate", Devices: 50,
			Messages: messages, Rate: rate, Connections: 2})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Published != messages {
			t.Fatalf("published %d of %d (%v)", stats.Published, messages, stats.FirstErr)
		}
		// A limiter can make a run slower than its rate, never faster: beyond the burst (rate/100 = 20
		// messages), each message waited its 1/rate.
		if min := time.Duration(float64(messages-20) / rate * float64(time.Second)); stats.End.Sub(stats.Start) < min {
			t.Errorf("%d messages in %s at %g/s: faster than the limiter allows (%s)", messages, stats.End.Sub(stats.Start), rate, min)
		}
	})
	t.Run("duration", func(t *testing.T) {
		const rate = 1000.0
		stats, err := Run(context.Background(), Config{Broker: mq.URL, ClientID: "load-duration", Devices: 20,
			Duration: 300 * time.Millisecond, Rate: rate, Connections: 2})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Published == 0 || stats.Failed != 0 {
			t.Fatalf("published %d, failed %d (%v)", stats.Published, stats.Failed, stats.FirstErr)
		}
		if max := 10 + rate*stats.End.Sub(stats.Start).Seconds(); float64(stats.Published) > max {
			t.Errorf("published %d in %s, above the limiter's %g", stats.Published, stats.End.Sub(stats.Start), max)
		}
	})
}
