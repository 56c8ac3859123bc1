package simulators

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// TestHandleDownlink: programs and commands sent as ChirpStack and The Things Stack downlinks, as the
// service encodes them, reach the LoRaWAN controllers, which apply them, and the simulated network servers
// answer with the acks the service parses. Refusals by the device still get the network server's ack;
// what the server could not queue, or what is not for a LoRaWAN controller of the fleet, gets none.
func TestHandleDownlink(t *testing.T) {
	f, reg := smallFleet(t)
	at := paris(15, 20, 0)
	until := paris(16, 8, 0)
	route := func(device string) *hv.Downlink {
		t.Helper()
		d, _, ok := reg.Lookup(device)
		if !ok || d.Downlink == nil {
			t.Fatalf("%s: no downlink route in the registry", device)
		}
		return d.Downlink
	}
	encode := func(device string, dl *hv.Downlink, kind, id string, body any) lighting.Downlink {
		t.Helper()
		b, ok := body.([]byte)
		if !ok {
			b = mustJSON(t, body)
		}
		out, err := lighting.EncodeDownlink(device, dl, kind, id, b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	program := func(device string, version int64, level float64) lighting.Program {
		return lighting.Program{Device: device, Version: version, Until: until,
			Steps: []lighting.Step{{At: paris(15, 17, 0), Level: level}}}
	}
	const (
		id1 = "6f0a3c1e-3b8e-4c57-9d36-2f1f0c7e9a41"
		id2 = "0d5e8f0c-77a2-4a0e-bb43-5f2a6f1d8c90"
	)
	tests := []struct {
		name   string
		device string
		dl     func() lighting.Downlink
		acked  string  // the id the network server acks it with; empty: no ack
		err    string  // HandleDownlink's error mentions it; empty: none
		level  float64 // a LoRaWAN controller's level after it
	}{
		{name: "chirpstack program", device: ctrlChirp, acked: id1, level: 30,
			dl: func() lighting.Downlink {
				return encode(ctrlChirp, route(ctrlChirp), lighting.DownlinkProgram, id1, program(ctrlChirp, 3, 30))
			}},
		{name: "chirpstack command", device: ctrlChirp, acked: id2, level: 80,
			dl: func() lighting.Downlink {
				return encode(ctrlChirp, route(ctrlChirp), lighting.DownlinkCommand, id2,
					lighting.CommandMsg{ID: id2, Level: 80, Until: at.Add(time.Hour)})
			}},
		{name: "tts program", device: ctrlTTS, acked: id1, level: 20,
			dl: func() lighting.Downlink {
				return encode(ctrlTTS, route(ctrlTTS), lighting.DownlinkProgram, id1, program(ctrlTTS, 3, 20))
			}},
		{name: "tts command", device: ctrlTTS, acked: id2, level: 10,
			dl: func() lighting.Downlink {
				return encode(ctrlTTS, route(ctrlTTS), lighting.DownlinkCommand, id2,
					lighting.CommandMsg{ID: id2, Level: 10, Until: at.Add(time.Hour)})
			}},
		{name: "stale program: refused by the device, acked by the network server", device: ctrlTTS, acked: id1,
			err: "stale", level: 10,
			dl: func() lighting.Downlink {
				return encode(ctrlTTS, route(ctrlTTS), lighting.DownlinkProgram, id1, program(ctrlTTS, 2, 90))
			}},
		{name: "expired command: refused by the device, acked by the network server", device: ctrlChirp, acked: id1,
			err: "expired", level: 80,
			dl: func() lighting.Downlink {
				return encode(ctrlChirp, route(ctrlChirp), lighting.DownlinkCommand, id1,
					lighting.CommandMsg{ID: id1, Level: 5, Until: at.Add(-time.Minute)})
			}},
		{name: "object the codec cannot encode: not queued", device: ctrlChirp, err: "not queued", level: 80,
			dl: func() lighting.Downlink {
				dl := encode(ctrlChirp, route(ctrlChirp), lighting.DownlinkCommand, id1, []byte(`{"id":"x"}`))
				dl.Payload = []byte(strings.Replace(string(dl.Payload), `"kind":"cmd"`, `"kind":"reboot"`, 1))
				return dl
			}},
		{name: "chirpstack body without id", device: ctrlChirp, err: "no id", level: 80,
			dl: func() lighting.Downlink {
				return lighting.Downlink{Topic: "application/aisne/device/" + ctrlChirp + "/command/down",
					Payload: []byte(`{"devEui":"` + ctrlChirp + `","confirmed":true,"fPort":10,"object":{"kind":"cmd"}}`)}
			}},
		{name: "unconfirmed: applied, no ack event", device: ctrlChirp, level: 55,
			dl: func() lighting.Downlink {
				obj, _ := json.Marshal(map[string]any{"kind": "cmd", "id": "u1", "level": 55, "until": at.Add(time.Hour)})
				b, _ := json.Marshal(lighting.ChirpStackDown{ID: id1, DevEUI: ctrlChirp, FPort: 10, Object: obj})
				return lighting.Downlink{Topic: "application/aisne/device/" + ctrlChirp + "/command/down", Payload: b}
			}},
		{name: "another application: not the fleet's network server", device: ctrlChirp, level: 55,
			dl: func() lighting.Downlink {
				return encode(ctrlChirp, &hv.Downlink{Network: hv.NetworkChirpStack, Application: "other"},
					lighting.DownlinkCommand, id1, lighting.CommandMsg{ID: id1, Level: 1, Until: at.Add(time.Hour)})
			}},
		{name: "tts topic for a chirpstack device", device: ctrlChirp, level: 55,
			dl: func() lighting.Downlink {
				return encode(ctrlChirp, &hv.Downlink{Network: hv.NetworkTTS, Application: fleet.TTSApplication},
					lighting.DownlinkCommand, id1, lighting.CommandMsg{ID: id1, Level: 1, Until: at.Add(time.Hour)})
			}},
		{name: "a LoRaWAN meter: no controller", device: elecChirp,
			dl: func() lighting.Downlink {
				return encode(elecChirp, route(elecChirp), lighting.DownlinkCommand, id1,
					lighting.CommandMsg{ID: id1, Level: 1, Until: at.Add(time.Hour)})
			}},
		{name: "an MQTT controller has no network server", device: ctrlFlatLED,
			dl: func() lighting.Downlink {
				return encode(ctrlFlatLED, &hv.Downlink{Network: hv.NetworkChirpStack, Application: fleet.ChirpStackApplication},
					lighting.DownlinkCommand, id1, lighting.CommandMsg{ID: id1, Level: 1, Until: at.Add(time.Hour)})
			}},
	}
	r := NewRunner(f, 1, at)
	for _, tt := range tests { // in order: each case starts from what the previous ones left
		t.Run(tt.name, func(t *testing.T) {
			dl := tt.dl()
			acks, err := r.HandleDownlink(dl.Topic, dl.Payload, at)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err %v, want one mentioning %q", err, tt.err)
			}
			if tt.acked == "" {
				if len(acks) != 0 {
					t.Fatalf("acks %v, want none", acks)
				}
			} else {
				if len(acks) != 1 {
					t.Fatalf("%d acks, want 1", len(acks))
				}
				a, err := lighting.ParseDownlinkAck(acks[0].Topic, acks[0].Payload)
				if err != nil {
					t.Fatalf("ack %s %s: %v", acks[0].Topic, acks[0].Payload, err)
				}
				want := lighting.DownlinkAck{Device: tt.device, ID: tt.acked, Delivered: true}
				if a != want || acks[0].Device != tt.device {
					t.Errorf("ack %+v from %s, want %+v", a, acks[0].Device, want)
				}
			}
			if d := r.byID[tt.device]; d.Kind == hv.DeviceLightingController && d.Downlink != nil {
				if got := r.level(d, at); got != tt.level {
					t.Errorf("level %v after the downlink, want %v", got, tt.level)
				}
			}
		})
	}
	// Frames reached the devices: 4 the ChirpStack controller (not the body without id, nor the object its
	// codec refuses, nor those of other routes), 3 the TTS one.
	if n := r.byID[ctrlChirp].ctl.fCntDown; n != 4 {
		t.Errorf("chirpstack controller: %d downlinks received, want 4", n)
	}
	if n := r.byID[ctrlTTS].ctl.fCntDown; n != 3 {
		t.Errorf("tts controller: %d downlinks received, want 3", n)
	}
	// The MQTT controller was left alone.
	if c := r.byID[ctrlFlatLED].ctl; c != nil && (c.program != nil || c.override != nil) {
		t.Errorf("the MQTT controller took a downlink: %+v", c)
	}
}

// TestDownlinkPushOfSeveral: a The Things Stack push of several downlinks is applied in order and each
// confirmed one acked with its own correlation ids.
func TestDownlinkPushOfSeveral(t *testing.T) {
	f, reg := smallFleet(t)
	at := paris(15, 20, 0)
	d, _, _ := reg.Lookup(ctrlTTS)
	var push lighting.TTSDownPush
	for i, level := range []float64{10, 20} {
		id := []string{"a", "b"}[i]
		dl, err := lighting.EncodeDownlink(ctrlTTS, d.Downlink, lighting.DownlinkCommand, id,
			mustJSON(t, lighting.CommandMsg{ID: id, Level: level, Until: at.Add(time.Hour)}))
		if err != nil {
			t.Fatal(err)
		}
		var one lighting.TTSDownPush
		if err := json.Unmarshal(dl.Payload, &one); err != nil {
			t.Fatal(err)
		}
		push.Downlinks = append(push.Downlinks, one.Downlinks...)
	}
	r := NewRunner(f, 1, at)
	acks, err := r.HandleDownlink("v3/"+fleet.TTSApplication+"/devices/"+ctrlTTS+"/down/push", mustJSON(t, push), at)
	if err != nil || len(acks) != 2 {
		t.Fatalf("%d acks, err %v; want 2 and none", len(acks), err)
	}
	for i, want := range []string{"a", "b"} {
		if a, err := lighting.ParseDownlinkAck(acks[i].Topic, acks[i].Payload); err != nil || a.ID != want || !a.Delivered {
			t.Errorf("ack %d: %+v, %v; want %s delivered", i, a, err, want)
		}
	}
	if got := r.level(r.byID[ctrlTTS], at); got != 20 {
		t.Errorf("level %v, want the last command's 20", got)
	}
	if _, err := r.HandleDownlink("v3/"+fleet.TTSApplication+"/devices/"+ctrlTTS+"/down/push", []byte(`{`), at); !errors.Is(err, lighting.ErrInvalid) {
		t.Errorf("malformed push: %v", err)
	}
}

// TestMQTTRouting: LoRaWAN controllers only take downlinks; the MQTT contract is for the others.
func TestMQTTRouting(t *testing.T) {
	f, _ := smallFleet(t)
	r := NewRunner(f, 1, paris(15, 20, 0))
	for _, c := range []struct {
		device     string
		controller bool
		mqtt       bool
	}{
		{ctrlFlatLED, true, true},
		{ctrlSenML, true, true},
		{ctrlChirp, true, false},
		{ctrlTTS, true, false},
		{elecChirp, false, false},
		{"nobody", false, false},
	} {
		if got := r.IsController(c.device); got != c.controller {
			t.Errorf("IsController(%s) = %v", c.device, got)
		}
		if got := r.listensMQTT(c.device); got != c.mqtt {
			t.Errorf("listensMQTT(%s) = %v", c.device, got)
		}
	}
}
