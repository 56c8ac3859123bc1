package simulators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/broker"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
)

// nightProgram is the program of the night of 15 to 16 January 2027 (Paris): on at 17:20, 50 % at 23:00,
// off 01:00–05:00, 100 % until sunrise at 08:40.
func nightProgram(device string, version int64) lighting.Program {
	return lighting.Program{Device: device, Version: version, Until: paris(16, 8, 40), Steps: []lighting.Step{
		{At: paris(15, 17, 20), Level: 100},
		{At: paris(15, 23, 0), Level: 50},
		{At: paris(16, 1, 0), Level: 0},
		{At: paris(16, 5, 0), Level: 100},
	}}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseAck(t *testing.T, b []byte) lighting.Ack {
	t.Helper()
	var a lighting.Ack
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("ack %s: %v", b, err)
	}
	return a
}

// expectedPowerW is what a controller without failed lamps reports at level.
func expectedPowerW(d fleet.Device, level float64) float64 {
	n := max(1, d.Luminaires)
	return round(model.LampPowerW(d.NominalW/float64(n), level, d.LED)*float64(n), 1)
}

// drive calls Due every minute over [from, to], as Publish does every second, and returns what was sent.
func drive(r *Runner, from, to time.Time, out []emitted) []emitted {
	for t := from; !t.After(to); t = t.Add(time.Minute) {
		for _, m := range r.Due(t) {
			out = append(out, emitted{m, t})
		}
	}
	return out
}

// TestControllerExecutesProgramAcrossMidnight: controllers of every payload format run a program across
// midnight; two of them get a 30-minute override at 21:00 that takes effect at once and expires back to the
// program. Every report, through the service's decoders, carries the expected level and power.
func TestControllerExecutesProgramAcrossMidnight(t *testing.T) {
	f, reg := smallFleet(t)
	ctrls := []string{ctrlFlatLED, ctrlLPSodium, ctrlTTS, ctrlSenML, ctrlChirp}
	overridden := map[string]bool{ctrlFlatLED: true, ctrlChirp: true}
	start := paris(15, 16, 0)
	r := NewRunner(f, 1, start)
	for _, id := range ctrls {
		b, err := r.ApplyProgram(id, mustJSON(t, nightProgram(id, 5)), start)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if a := parseAck(t, b); a.ID != "program:5" || a.Status != lighting.AckOK || a.Level != r.level(r.byID[id], start) {
			t.Errorf("%s: program ack %+v, want ok for program:5 at the level it runs", id, a)
		}
	}
	// An older version, as a late retry of a superseded program would be: ignored.
	old := nightProgram(ctrlFlatLED, 4)
	for i := range old.Steps {
		old.Steps[i].Level = 100
	}
	b, err := r.ApplyProgram(ctrlFlatLED, mustJSON(t, old), start.Add(time.Minute))
	if !errors.Is(err, ErrStaleProgram) {
		t.Errorf("older version: %v, want ErrStaleProgram", err)
	}
	if a := parseAck(t, b); a.ID != "program:4" || a.Status != lighting.AckRejected || !strings.Contains(a.Reason, "running 5") {
		t.Errorf("older version: ack %+v, want rejected for program:4", a)
	}
	// The same version again, as a retained program redelivered on reconnect: acked again, no change.
	b, err = r.ApplyProgram(ctrlFlatLED, mustJSON(t, nightProgram(ctrlFlatLED, 5)), start.Add(time.Minute))
	if err != nil {
		t.Errorf("same version again: %v", err)
	}
	if a := parseAck(t, b); a.ID != "program:5" || a.Status != lighting.AckOK {
		t.Errorf("same version again: ack %+v, want ok", a)
	}

	msgs := drive(r, start, paris(15, 21, 0).Add(-time.Minute), nil)
	// The override arrives at 21:00 plus 20 s: between two Due calls, as over MQTT.
	cmdAt := paris(15, 21, 0).Add(20 * time.Second)
	cmdUntil := cmdAt.Add(30 * time.Minute)
	for id := range overridden {
		b, err := r.ApplyCommand(id, mustJSON(t, lighting.CommandMsg{ID: "ovr-" + id, Level: 20, Until: cmdUntil}), cmdAt)
		if err != nil {
			t.Fatal(err)
		}
		if a := parseAck(t, b); a.ID != "ovr-"+id || a.Status != lighting.AckOK || a.Level != 20 || !a.At.Equal(cmdAt) {
			t.Errorf("%s: ack %+v, want ok at level 20", id, a)
		}
		// Takes effect at once: the level the controller runs now, before any report.
		if got := r.level(r.byID[id], cmdAt); got != 20 {
			t.Errorf("%s: level %v right after the command, want 20", id, got)
		}
	}
	msgs = drive(r, paris(15, 21, 0), paris(16, 10, 0), msgs)

	expect := func(id string, at time.Time) float64 {
		if overridden[id] && !at.Before(cmdAt) && at.Before(cmdUntil) {
			return 20
		}
		if l, ok := nightProgram(id, 5).LevelAt(at); ok {
			return l
		}
		site := r.byID[id].site
		return DefaultLevel(at, site.Lat, site.Lon)
	}
	for _, id := range ctrls {
		dev := nominal(t, f, id)
		reports := of(decodeAll(t, reg, msgs), id)
		if len(reports) != int(paris(16, 10, 0).Sub(start)/dev.Interval) {
			t.Errorf("%s: %d reports", id, len(reports))
		}
		seen := map[float64]int{}
		for _, rep := range reports {
			if rep.err != nil {
				t.Fatalf("%s: %v", id, rep.err)
			}
			want := expect(id, rep.at)
			lv, pw := rep.vals[hv.LevelPct], rep.vals[hv.PowerW]
			if lv != want || math.Abs(pw-expectedPowerW(dev, want)) > 0.05 {
				t.Errorf("%s at %s: level %v power %v W, want %v and %v W", id, rep.at.In(model.Paris()).Format("02 15:04:05"),
					lv, pw, want, expectedPowerW(dev, want))
			}
			seen[want]++
		}
		// Every phase was reported: failsafe 0 before sunset and after 08:40, 100, 50 across midnight, 0, and
		// the override.
		for _, l := range []float64{0, 50, 100} {
			if seen[l] == 0 {
				t.Errorf("%s: no report at level %v: %v", id, l, seen)
			}
		}
		if overridden[id] != (seen[20] > 0) {
			t.Errorf("%s: %d reports at the override's level", id, seen[20])
		}
	}
}

// TestControllerRejectsBadCommands: malformed or expired commands are acked "rejected" with a reason (and the
// id when there is one) and change nothing; programs that break the contract are refused.
func TestControllerRejectsBadCommands(t *testing.T) {
	f, _ := smallFleet(t)
	at := paris(15, 20, 0)
	r := NewRunner(f, 1, at)
	failsafe := r.byID[ctrlFlatLED].failsafe
	until := at.Add(time.Hour).UTC().Format(time.RFC3339)
	cases := []struct{ payload, id, reason string }{
		{`not json`, "", "invalid"},
		{`{"id":"c1","level":"high","until":"` + until + `"}`, "c1", "invalid"},
		{`{"id":"c2","level":150,"until":"` + until + `"}`, "c2", "level"},
		{`{"level":30,"until":"` + until + `"}`, "", "no id"},
		{`{"id":"c3","level":30}`, "c3", "until"},
		{`{"id":"c4","level":30,"until":"` + at.UTC().Format(time.RFC3339) + `"}`, "c4", "expired"},
	}
	for _, c := range cases {
		b, err := r.ApplyCommand(ctrlFlatLED, []byte(c.payload), at)
		if err != nil {
			t.Fatalf("%s: %v", c.payload, err)
		}
		a := parseAck(t, b)
		if a.Status != lighting.AckRejected || a.ID != c.id || !strings.Contains(a.Reason, c.reason) || a.Level != failsafe(at) {
			t.Errorf("%s: ack %+v, want rejected, id %q, reason mentioning %q, level %v", c.payload, a, c.id, c.reason, failsafe(at))
		}
	}
	if got := r.level(r.byID[ctrlFlatLED], at.Add(time.Minute)); got != failsafe(at) {
		t.Errorf("level %v after rejected commands, want the failsafe's %v", got, failsafe(at))
	}
	if _, err := r.ApplyCommand("nobody", []byte(`{}`), at); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := r.ApplyCommand(waterMeter, []byte(`{}`), at); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("a water meter took a command: %v", err)
	}
	// Programs refused are in TestControllerProgramAcks.
}

// TestControllerDimmingFailure: a stuck controller acks commands "ok" and takes programs without error, but
// its reports stay at the stuck level; once the fault is cleared it runs what it had before (the failsafe).
func TestControllerDimmingFailure(t *testing.T) {
	f, reg := smallFleet(t)
	start := paris(15, 16, 0)
	r := NewRunner(f, 1, start)
	if err := r.Inject(Fault{Kind: FaultDimmingFailure, Device: ctrlSenML, Param: 80}); err != nil {
		t.Fatal(err)
	}
	// It acks the program as a working controller would, with the level the program gives (it lies).
	b, err := r.ApplyProgram(ctrlSenML, mustJSON(t, nightProgram(ctrlSenML, 1)), paris(15, 18, 0))
	if err != nil {
		t.Errorf("stuck controller refused a program: %v", err)
	}
	if a := parseAck(t, b); a.ID != "program:1" || a.Status != lighting.AckOK || a.Level != 100 {
		t.Errorf("stuck controller's program ack %+v, want ok at the program's 100", a)
	}
	cmdAt := paris(15, 21, 0)
	b, err = r.ApplyCommand(ctrlSenML, mustJSON(t, lighting.CommandMsg{ID: "c1", Level: 20, Until: cmdAt.Add(time.Hour)}), cmdAt)
	if err != nil {
		t.Fatal(err)
	}
	if a := parseAck(t, b); a.Status != lighting.AckOK || a.ID != "c1" || a.Level != 20 {
		t.Errorf("stuck controller's ack %+v, want ok at 20 (it lies)", a)
	}
	dev := nominal(t, f, ctrlSenML)
	msgs := drive(r, start, paris(16, 10, 0), nil)
	reports := of(decodeAll(t, reg, msgs), ctrlSenML)
	if len(reports) == 0 {
		t.Fatal("no reports")
	}
	for _, rep := range reports {
		if rep.vals[hv.LevelPct] != 80 || math.Abs(rep.vals[hv.PowerW]-expectedPowerW(dev, 80)) > 0.05 {
			t.Fatalf("stuck controller at %s: level %v power %v, want 80 and %v", rep.at, rep.vals[hv.LevelPct],
				rep.vals[hv.PowerW], expectedPowerW(dev, 80))
		}
	}
	r.Clear(ctrlSenML)
	if at := paris(16, 23, 30); r.level(r.byID[ctrlSenML], at) != r.byID[ctrlSenML].failsafe(at) {
		t.Errorf("after the fault: level %v, want the failsafe (the program was ignored)", r.level(r.byID[ctrlSenML], at))
	}
}

// TestPublishControllersOverMQTT: against the embedded broker, a controller of a running Publish gets the
// program retained before it connected and acks it, acks a command "ok", and its next reports carry the
// commanded level. LoRaWAN controllers ignore hv/<device>/… and take a program and a command as ChirpStack
// and The Things Stack downlinks, which the simulated network servers acknowledge as the service expects.
func TestPublishControllersOverMQTT(t *testing.T) {
	testenv.Slow(t, "loopback network test (never skipped with CI=true)")
	f, reg := smallFleet(t)
	// Controllers reporting every second, so the test need not wait for 5-minute reports.
	var devs []fleet.Device
	for _, id := range []string{ctrlFlatLED, ctrlChirp, ctrlTTS} {
		d := nominal(t, f, id)
		d.Interval = time.Second
		devs = append(devs, d)
	}
	tiny := &fleet.Fleet{Sites: f.Sites, Profiles: f.Profiles, Devices: devs}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var b *broker.Broker
	var addr string
	for i := 0; ; i++ { // the free port may be taken between FreePort and Start
		addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		var err error
		if b, err = broker.Start(broker.Config{Listen: addr}, log); err == nil {
			break
		} else if i == 4 {
			t.Fatal(err)
		}
	}
	defer b.Close()

	levels := map[string]chan float64{}
	for _, d := range devs {
		levels[d.ID] = make(chan float64, 1000)
	}
	acks := make(chan lighting.Ack, 10)
	nsAcks := make(chan lighting.DownlinkAck, 10)
	var strayAcks atomic.Int32 // acks on hv/<device>/ack of a LoRaWAN controller
	mapper := &decode.Mapper{Profiles: reg.Profiles()}
	var once sync.Once
	handle := func(_ paho.Client, m paho.Message) {
		switch {
		case m.Topic() == lighting.AckTopic(ctrlFlatLED):
			var a lighting.Ack
			if json.Unmarshal(m.Payload(), &a) == nil {
				select {
				case acks <- a:
				default:
				}
			}
			return
		case strings.HasPrefix(m.Topic(), "hv/") && strings.HasSuffix(m.Topic(), "/ack"):
			strayAcks.Add(1)
			return
		case strings.HasSuffix(m.Topic(), "/event/ack") || strings.HasSuffix(m.Topic(), "/down/ack"):
			a, err := lighting.ParseDownlinkAck(m.Topic(), m.Payload())
			if err != nil {
				once.Do(func() { t.Errorf("network server ack %s: %v", m.Payload(), err) })
				return
			}
			select {
			case nsAcks <- a:
			default:
			}
			return
		}
		dec, err := decode.Lookup(formatOf(m.Topic()))
		if err != nil {
			once.Do(func() { t.Error(err) })
			return
		}
		samples, err := dec.Decode(m.Topic(), m.Payload(), nil)
		if err != nil {
			once.Do(func() { t.Errorf("report %s: %v", m.Payload(), err) })
			return
		}
		for _, s := range samples {
			regDev, _, ok := reg.Lookup(s.Device)
			if !ok || levels[s.Device] == nil {
				continue
			}
			if metric, v, err := mapper.Normalise(s, regDev); err == nil && metric == hv.LevelPct {
				select {
				case levels[s.Device] <- v:
				default:
				}
			}
		}
	}
	filters := map[string]byte{lighting.AckTopics: 1, lighting.ChirpStackAckTopics: 1, lighting.TTSAckTopics: 1,
		"hv/" + ctrlFlatLED + "/up": 1, "application/+/device/" + ctrlChirp + "/event/up": 1, "v3/+/devices/" + ctrlTTS + "/up": 1}
	service := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("test-service").
		SetCleanSession(true).SetOnConnectHandler(func(c paho.Client) {
		c.SubscribeMultiple(filters, handle).WaitTimeout(10 * time.Second)
	}))
	if tok := service.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer service.Disconnect(100)
	publish := func(topic string, retained bool, payload []byte) {
		t.Helper()
		if tok := service.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}

	// The programs are retained before the controllers connect: the MQTT one gets its own when it
	// subscribes; the LoRaWAN one must ignore it (level 40 is no failsafe level).
	now := time.Now()
	program := func(device string, version int64, level float64) lighting.Program {
		return lighting.Program{Device: device, Version: version, Until: now.Add(2 * time.Hour),
			Steps: []lighting.Step{{At: now.Add(-time.Hour), Level: level}}}
	}
	publish(lighting.ProgramTopic(ctrlFlatLED), true, mustJSON(t, program(ctrlFlatLED, 1, 40)))
	publish(lighting.ProgramTopic(ctrlChirp), true, mustJSON(t, program(ctrlChirp, 1, 40)))
	defer publish(lighting.ProgramTopic(ctrlChirp), true, nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Publish(ctx, PublishConfig{Broker: "tcp://" + addr, ClientID: "test-fleet", Speed: 1}, NewRunner(tiny, 1, time.Now()), log)
	}()
	defer func() { cancel(); <-done }()

	waitLevel := func(device string, want float64) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case l := <-levels[device]:
				if l == want {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no report at level %v within 20 s", device, want)
			}
		}
	}
	waitAck := func(id string, level float64) {
		t.Helper()
		select {
		case a := <-acks:
			if a.ID != id || a.Status != lighting.AckOK || a.Level != level {
				t.Fatalf("ack %+v, want %s ok at %v", a, id, level)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no ack of %s within 20 s", id)
		}
	}
	waitLevel(ctrlFlatLED, 40) // the retained program is running, so the controllers' subscriptions are in place
	waitAck(lighting.ProgramAckID(1), 40)
	// Sent on the MQTT contract to a LoRaWAN controller: ignored, no ack.
	publish(lighting.CommandTopic(ctrlChirp), false, mustJSON(t, lighting.CommandMsg{ID: "stray", Level: 40, Until: now.Add(time.Hour)}))

	publish(lighting.CommandTopic(ctrlFlatLED), false, mustJSON(t, lighting.CommandMsg{ID: "cmd-1", Level: 70, Until: time.Now().Add(10 * time.Minute)}))
	waitAck("cmd-1", 70)
	waitLevel(ctrlFlatLED, 70)

	// LoRaWAN: a program through ChirpStack, a command through The Things Stack.
	downlink := func(device, kind, id string, body []byte, level float64) {
		t.Helper()
		d, _, _ := reg.Lookup(device)
		dl, err := lighting.EncodeDownlink(device, d.Downlink, kind, id, body)
		if err != nil {
			t.Fatal(err)
		}
		publish(dl.Topic, false, dl.Payload)
		select {
		case a := <-nsAcks:
			if a != (lighting.DownlinkAck{Device: device, ID: id, Delivered: true}) {
				t.Fatalf("network server ack %+v, want %s delivered to %s", a, id, device)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no network server ack of %s within 20 s", device, id)
		}
		waitLevel(device, level)
	}
	downlink(ctrlChirp, lighting.DownlinkProgram, "6f0a3c1e-3b8e-4c57-9d36-2f1f0c7e9a41", mustJSON(t, program(ctrlChirp, 2, 30)), 30)
	downlink(ctrlTTS, lighting.DownlinkCommand, "0d5e8f0c-77a2-4a0e-bb43-5f2a6f1d8c90",
		mustJSON(t, lighting.CommandMsg{ID: "0d5e8f0c-77a2-4a0e-bb43-5f2a6f1d8c90", Level: 60, Until: time.Now().Add(10 * time.Minute)}), 60)
	for len(levels[ctrlChirp]) > 0 { // the retained hv/ program never ran
		if l := <-levels[ctrlChirp]; l == 40 {
			t.Fatal("the LoRaWAN controller ran the program retained on hv/<device>/program")
		}
	}
	if n := strayAcks.Load(); n != 0 {
		t.Errorf("%d acks on hv/<device>/ack of LoRaWAN controllers", n)
	}
}

// TestControllerProgramAcks: every program carrying a version is acknowledged with ProgramAckID: "ok" with
// the level the controller then runs when it is new or the one it runs already, "rejected" with the reason
// and the level it keeps otherwise; no ack without a version to name or a controller to answer.
func TestControllerProgramAcks(t *testing.T) {
	f, _ := smallFleet(t)
	at := paris(15, 20, 0)
	r := NewRunner(f, 1, at)
	evening := func(device string, version int64, level float64) lighting.Program {
		return lighting.Program{Device: device, Version: version, Until: paris(16, 8, 0),
			Steps: []lighting.Step{{At: paris(15, 19, 0), Level: level}}}
	}
	invalid := evening(ctrlFlatLED, 4, 150)
	tests := []struct {
		name    string
		device  string
		payload []byte
		id      string // the ack's; empty: no ack
		status  string
		reason  string
		level   float64
		err     error
	}{
		{"a first version", ctrlFlatLED, mustJSON(t, evening(ctrlFlatLED, 3, 70)), "program:3", lighting.AckOK, "", 70, nil},
		{"the same version again", ctrlFlatLED, mustJSON(t, evening(ctrlFlatLED, 3, 70)), "program:3", lighting.AckOK, "", 70, nil},
		{"an older version", ctrlFlatLED, mustJSON(t, evening(ctrlFlatLED, 2, 30)), "program:2", lighting.AckRejected, "version 2, running 3", 70, ErrStaleProgram},
		{"a level out of range", ctrlFlatLED, mustJSON(t, invalid), "program:4", lighting.AckRejected, "level 150", 70, lighting.ErrInvalid},
		{"another device's", ctrlFlatLED, mustJSON(t, evening(ctrlTTS, 5, 10)), "program:5", lighting.AckRejected, "is for", 70, lighting.ErrInvalid},
		{"undecodable", ctrlFlatLED, []byte(`{"device":`), "", "", "", 70, lighting.ErrInvalid},
		{"no version", ctrlFlatLED, mustJSON(t, evening(ctrlFlatLED, 0, 10)), "", "", "", 70, lighting.ErrInvalid},
		{"a newer version", ctrlFlatLED, mustJSON(t, evening(ctrlFlatLED, 6, 20)), "program:6", lighting.AckOK, "", 20, nil},
		{"a device that is no controller", waterMeter, mustJSON(t, evening(waterMeter, 1, 10)), "", "", "", 20, ErrUnknownDevice},
		{"no such device", "nobody", mustJSON(t, evening("nobody", 1, 10)), "", "", "", 20, ErrUnknownDevice},
	}
	for _, tt := range tests { // in order: each case sees what the previous ones left
		t.Run(tt.name, func(t *testing.T) {
			b, err := r.ApplyProgram(tt.device, tt.payload, at)
			if tt.err == nil && err != nil || !errors.Is(err, tt.err) {
				t.Errorf("err %v, want %v", err, tt.err)
			}
			if tt.id == "" {
				if b != nil {
					t.Errorf("ack %s, want none", b)
				}
			} else if a := parseAck(t, b); a.ID != tt.id || a.Status != tt.status || !strings.Contains(a.Reason, tt.reason) ||
				(tt.reason == "") != (a.Reason == "") || a.Level != tt.level || !a.At.Equal(at) {
				t.Errorf("ack %+v, want %s %s at level %v, reason mentioning %q", a, tt.id, tt.status, tt.level, tt.reason)
			}
			if got := r.level(r.byID[ctrlFlatLED], at); got != tt.level {
				t.Errorf("running at %v, want %v", got, tt.level)
			}
		})
	}
}

// presenceCabinets returns a Pays de Laon controller with presence detection and one without.
func presenceCabinets(t *testing.T, f *fleet.Fleet) (sensor, plain fleet.Device) {
	t.Helper()
	for _, d := range f.Devices {
		switch {
		case d.Kind != hv.DeviceLightingController:
		case d.Presence && sensor.ID == "":
			sensor = d
		case !d.Presence && plain.ID == "":
			plain = d
		}
	}
	if sensor.ID == "" || plain.ID == "" {
		t.Fatal("no controller with presence detection, or none without, in the Pays de Laon")
	}
	return sensor, plain
}

// TestPresenceBoost: a program at 0 % whose step is marked Boost, with a 100 % boost held 5 minutes, lights
// a cabinet with presence detection exactly in the intervals it detects someone, and its energy follows its
// power; a cabinet without a sensor stays off. Holds shorter and longer than the interval boost part of it
// or carry into the next ones.
func TestPresenceBoost(t *testing.T) {
	f, _ := laonFleet(t)
	sensor, plain := presenceCabinets(t, f)
	tiny := &fleet.Fleet{Sites: f.Sites, Profiles: f.Profiles, Devices: []fleet.Device{sensor, plain}}
	start := time.Date(2027, 1, 12, 17, 0, 0, 0, model.Paris())
	end := start.Add(14 * time.Hour)
	program := func(device string, boost *lighting.Boost) []byte {
		return mustJSON(t, lighting.Program{Device: device, Version: 1, Until: end.Add(time.Hour), Boost: boost,
			Steps: []lighting.Step{{At: start.Add(-time.Hour), Level: 0, Boost: true}}})
	}
	type report struct{ level, presence, power, energy float64 }
	run := func(boost *lighting.Boost) (*Runner, map[string][]report) {
		r := NewRunner(tiny, 1, start)
		for _, d := range tiny.Devices {
			if _, err := r.ApplyProgram(d.ID, program(d.ID, boost), start); err != nil {
				t.Fatal(err)
			}
		}
		out := map[string][]report{}
		r.observe = func(id string, _ time.Time, v map[hv.Metric]float64) {
			out[id] = append(out[id], report{v[hv.LevelPct], v[hv.Presence], v[hv.PowerW], v[hv.EnergyKWh]})
		}
		r.Due(end)
		return r, out
	}
	r, boosted := run(&lighting.Boost{Level: 100, HoldS: 300})
	_, flat := run(nil)

	lit := 0
	for i, rep := range boosted[sensor.ID] {
		if want := 100 * rep.presence; rep.level != want || flat[sensor.ID][i].level != 0 {
			t.Fatalf("report %d: level %v with presence %v (%v without boost), want %v", i, rep.level, rep.presence, flat[sensor.ID][i].level, want)
		}
		if rep.level > 0 {
			lit++
		}
	}
	if n := len(boosted[sensor.ID]); lit == 0 || lit == n {
		t.Fatalf("boosted in %d of %d reports: want some, not all", lit, n)
	}
	for _, rep := range boosted[plain.ID] {
		if rep.level != 0 {
			t.Fatalf("cabinet without a sensor boosted: %+v", rep)
		}
	}
	// Energy follows the reported power (trapezoids between 5-minute reports) and rises with the boost.
	reps := boosted[sensor.ID]
	integral := 0.0
	for i := 1; i < len(reps); i++ {
		integral += (reps[i-1].power + reps[i].power) / 2 * sensor.Interval.Hours() / 1000
	}
	rise := reps[len(reps)-1].energy - reps[0].energy
	flatRise := flat[sensor.ID][len(reps)-1].energy - flat[sensor.ID][0].energy
	if math.Abs(rise-integral) > 0.002*float64(len(reps)) || rise < flatRise+integral/2 {
		t.Errorf("energy rose %.3f kWh with the boost (%.3f from the reported power), %.3f without", rise, integral, flatRise)
	}
	t.Logf("%s: boosted in %d of %d reports, %.2f kWh against %.2f without the boost", sensor.ID, lit, len(reps), rise, flatRise)

	// Holds: 15 minutes boost the slot of a detection and the two after; 1 minute only a slot's first minute.
	d := r.byID[sensor.ID]
	p := &lighting.Program{Device: sensor.ID, Version: 2, Until: end, Boost: &lighting.Boost{Level: 80, HoldS: 900},
		Steps: []lighting.Step{{At: start, Level: 10, Boost: true}}}
	short := *p
	short.Boost = &lighting.Boost{Level: 80, HoldS: 60}
	detected := func(t time.Time) bool { return model.PresenceDetected(d.seed, t) }
	var carried, cut int
	for at := start.Add(time.Hour); at.Before(end); at = at.Add(presenceSlot) {
		probe := at.Add(150 * time.Second)
		want := 10.0
		if detected(at) || detected(at.Add(-presenceSlot)) || detected(at.Add(-2*presenceSlot)) {
			want = 80
			if !detected(at) {
				carried++
			}
		}
		if got := d.running(p, probe); got != want {
			t.Fatalf("hold 15 min at %s: level %v, want %v", probe, got, want)
		}
		want = 10
		if detected(at) {
			want = 80
		}
		if got := d.running(&short, at.Add(30*time.Second)); got != want {
			t.Fatalf("hold 1 min at %s +30 s: level %v, want %v", at, got, want)
		}
		if got := d.running(&short, at.Add(90*time.Second)); got != 10 {
			t.Fatalf("hold 1 min at %s +90 s: level %v, want 10", at, got)
		} else if want == 80 {
			cut++
		}
	}
	if carried == 0 || cut == 0 {
		t.Errorf("%d slots boosted by an earlier detection, %d boosts cut short: want some of each", carried, cut)
	}
}

// TestDefaultLevelAstronomical: the failsafe follows the sun at the cabinet: in June at Laon it is off at
// 20:00 (the former 18:00 switch-on burned in daylight), on at sunset, half from 23:00, off at sunrise; in
// January on before 18:00 and still half at 08:00. The per-device cache agrees with it all year, across the
// clock changes.
func TestDefaultLevelAstronomical(t *testing.T) {
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	laon, ok := territory.Commune("02408")
	if !ok {
		t.Fatal("no Laon in the territory")
	}
	paris := model.Paris()
	at := func(m time.Month, d, h, min int) time.Time { return time.Date(2027, m, d, h, min, 0, 0, paris) }
	today := sun.Compute(at(6, 21, 12, 0), laon.Lat, laon.Lon, paris)
	tomorrow := sun.Compute(at(6, 22, 12, 0), laon.Lat, laon.Lon, paris)
	if set := today.Sunset.In(paris); set.Before(at(6, 21, 21, 45)) || set.After(at(6, 21, 22, 15)) {
		t.Fatalf("sunset at Laon on 21 June at %s, want about 22:00", set.Format("15:04"))
	}
	tests := []struct {
		name string
		at   time.Time
		want float64
	}{
		{"june, 20:00: daylight", at(6, 21, 20, 0), 0},
		{"june, a minute before sunset", today.Sunset.Add(-time.Minute), 0},
		{"june, a minute after sunset", today.Sunset.Add(time.Minute), 100},
		{"june, 22:59", at(6, 21, 22, 59), 100},
		{"june, 23:00", at(6, 21, 23, 0), 50},
		{"june, 02:00", at(6, 22, 2, 0), 50},
		{"june, a minute before sunrise", tomorrow.Sunrise.Add(-time.Minute), 50},
		{"june, a minute after sunrise", tomorrow.Sunrise.Add(time.Minute), 0},
		{"june, noon", at(6, 22, 12, 0), 0},
		{"january, 17:30: after sunset", at(1, 15, 17, 30), 100},
		{"january, 08:00: before sunrise", at(1, 15, 8, 0), 50},
		{"january, 09:00", at(1, 15, 9, 0), 0},
	}
	for _, tt := range tests {
		if got := DefaultLevel(tt.at, laon.Lat, laon.Lon); got != tt.want {
			t.Errorf("%s (%s): level %v, want %v", tt.name, tt.at.In(paris).Format("02/01 15:04"), got, tt.want)
		}
	}

	var c sunClock
	for t0 := at(1, 1, 0, 0); t0.Before(at(12, 31, 0, 0)); t0 = t0.Add(7 * time.Minute) {
		got, next := c.level(t0, laon.Lat, laon.Lon)
		if want := DefaultLevel(t0, laon.Lat, laon.Lon); got != want || !next.After(t0) {
			t.Fatalf("%s: cached level %v until %s, want %v", t0.In(paris), got, next.In(paris), want)
		}
	}
}

// TestHistoryBurnsAlongTheSun: the history integrates the failsafe exactly, hour by hour, over days of 24,
// 23 (spring forward) and 25 hours: burning hours are the night, sunset to sunrise, and energy is full power
// from sunset to 23:00, half power after, standby by day.
func TestHistoryBurnsAlongTheSun(t *testing.T) {
	f, _ := smallFleet(t)
	r := NewRunner(f, 1, paris(15, 0, 0))
	d := r.byID[ctrlFlatLED]
	loc := model.Paris()
	for _, day := range []time.Time{time.Date(2027, 1, 15, 0, 0, 0, 0, loc), time.Date(2027, 3, 28, 0, 0, 0, 0, loc),
		time.Date(2027, 6, 21, 0, 0, 0, 0, loc), time.Date(2027, 10, 31, 0, 0, 0, 0, loc)} {
		next := day.AddDate(0, 0, 1)
		hd := &histDevice{d: d} // local days start on the hour: whole hours cover them
		for at := day; at.Before(next); at = at.Add(HistoryStep) {
			hd.burn(at, at.Add(HistoryStep), nil)
		}
		s := sun.Compute(day, d.site.Lat, d.site.Lon, loc)
		late := time.Date(day.Year(), day.Month(), day.Day(), 23, 0, 0, 0, loc)
		night := next.Sub(day) - s.Sunset.Sub(s.Sunrise)
		evening := late.Sub(s.Sunset)
		energy := (d.lampsPowerW(100)*evening.Hours() + d.lampsPowerW(50)*(night-evening).Hours() +
			d.lampsPowerW(0)*(next.Sub(day)-night).Hours()) / 1000 // off, the drivers still draw their standby
		if math.Abs(hd.hours.v-night.Hours()) > 1e-9 || math.Abs(hd.energy.v-energy) > 1e-9 {
			t.Errorf("%s (%.0f h): burned %.4f h and %.4f kWh, want %.4f h and %.4f kWh", day.Format("02/01"),
				next.Sub(day).Hours(), hd.hours.v, hd.energy.v, night.Hours(), energy)
		}
	}
}

// TestHistoryFollowsPrograms: given the programs, the history burns along them, across the spring-forward
// night: hours lit and energy are the program's, integrated exactly over the hourly readings.
func TestHistoryFollowsPrograms(t *testing.T) {
	f, _ := smallFleet(t)
	r := NewRunner(f, 1, paris(15, 0, 0))
	d := r.byID[ctrlFlatLED]
	loc := model.Paris()
	night := time.Date(2027, 3, 27, 0, 0, 0, 0, loc)
	at := func(day, h, m int) time.Time { return time.Date(2027, 3, day, h, m, 0, 0, loc) }
	prog := lighting.Program{Device: d.ID, Version: 1, Until: at(28, 12, 0), Steps: []lighting.Step{
		{At: at(27, 12, 0), Level: 0}, {At: at(27, 19, 7), Level: 100}, {At: at(27, 23, 0), Level: 40},
		{At: at(28, 1, 0), Level: 0}, {At: at(28, 5, 0), Level: 100}, {At: at(28, 7, 23), Level: 0},
	}}
	calls := 0
	schedule := func(device string, t time.Time) (lighting.Program, bool) {
		calls++
		return prog, device == d.ID && !t.Before(prog.Steps[0].At) && t.Before(prog.Until)
	}
	hd := &histDevice{d: d}
	from := time.Date(2027, 3, 27, 12, 0, 0, 0, loc)
	for t := from; t.Before(prog.Until); t = t.Add(HistoryStep) {
		hd.burn(t, t.Add(HistoryStep), schedule)
	}
	// 19:07–23:00 at 100 %, 23:00–01:00 at 40 %, 05:00–07:23 (summer time) at 100 %; 01:00 to 05:00 local is
	// 3 hours that night.
	full := at(27, 23, 0).Sub(at(27, 19, 7)) + at(28, 7, 23).Sub(at(28, 5, 0))
	dim := 2 * time.Hour
	off := prog.Until.Sub(from) - full - dim
	if off != 23*time.Hour-full-dim {
		t.Fatalf("the night of %s lasts %s, want 23 h", night.Format("02/01"), prog.Until.Sub(from))
	}
	energy := (d.lampsPowerW(100)*full.Hours() + d.lampsPowerW(40)*dim.Hours() + d.lampsPowerW(0)*off.Hours()) / 1000
	if math.Abs(hd.hours.v-(full+dim).Hours()) > 1e-9 || math.Abs(hd.energy.v-energy) > 1e-9 {
		t.Errorf("burned %.4f h and %.4f kWh, want %.4f h and %.4f kWh", hd.hours.v, hd.energy.v, (full + dim).Hours(), energy)
	}
	if calls > 2 {
		t.Errorf("the schedule was asked %d times for one night: the program is not kept", calls)
	}
}

// BenchmarkFailsafe: the failsafe level of one controller at its 5-minute reports, from its per-day cache
// (what every report and history hour pays), against computing the day's sun times on every call.
func BenchmarkFailsafe(b *testing.B) {
	lat, lon := 49.56, 3.62 // Laon
	start := time.Date(2027, 1, 1, 0, 0, 0, 0, model.Paris())
	b.Run("cached", func(b *testing.B) {
		var c sunClock
		for i := 0; b.Loop(); i++ {
			c.level(start.Add(time.Duration(i%105120)*5*time.Minute), lat, lon)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			DefaultLevel(start.Add(time.Duration(i%105120)*5*time.Minute), lat, lon)
		}
	})
}
