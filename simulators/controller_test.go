package simulators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/broker"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/lighting"
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
		if err := r.ApplyProgram(id, mustJSON(t, nightProgram(id, 5)), start); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// An older version, as a late retry of a superseded program would be: ignored.
	old := nightProgram(ctrlFlatLED, 4)
	for i := range old.Steps {
		old.Steps[i].Level = 100
	}
	if err := r.ApplyProgram(ctrlFlatLED, mustJSON(t, old), start.Add(time.Minute)); !errors.Is(err, ErrStaleProgram) {
		t.Errorf("older version: %v, want ErrStaleProgram", err)
	}
	// The same version again, as a retained program redelivered on reconnect: no error, no change.
	if err := r.ApplyProgram(ctrlFlatLED, mustJSON(t, nightProgram(ctrlFlatLED, 5)), start.Add(time.Minute)); err != nil {
		t.Errorf("same version again: %v", err)
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
		return DefaultLevel(at)
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
		// Every phase was reported: failsafe 0 before 17:20 and after 08:40, 100, 50 across midnight, 0, and
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
		if a.Status != lighting.AckRejected || a.ID != c.id || !strings.Contains(a.Reason, c.reason) || a.Level != DefaultLevel(at) {
			t.Errorf("%s: ack %+v, want rejected, id %q, reason mentioning %q, level %v", c.payload, a, c.id, c.reason, DefaultLevel(at))
		}
	}
	if got := r.level(r.byID[ctrlFlatLED], at.Add(time.Minute)); got != DefaultLevel(at) {
		t.Errorf("level %v after rejected commands, want the failsafe's %v", got, DefaultLevel(at))
	}
	if _, err := r.ApplyCommand("nobody", []byte(`{}`), at); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := r.ApplyCommand(waterMeter, []byte(`{}`), at); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("a water meter took a command: %v", err)
	}
	// Programs: malformed, for another device, to a non-controller.
	if err := r.ApplyProgram(ctrlFlatLED, []byte(`{"device":`), at); !errors.Is(err, lighting.ErrInvalid) {
		t.Errorf("truncated program: %v", err)
	}
	if err := r.ApplyProgram(ctrlFlatLED, mustJSON(t, nightProgram(ctrlTTS, 1)), at); !errors.Is(err, lighting.ErrInvalid) {
		t.Errorf("another device's program: %v", err)
	}
	if err := r.ApplyProgram(waterMeter, mustJSON(t, nightProgram(waterMeter, 1)), at); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("program to a water meter: %v", err)
	}
	if got := r.level(r.byID[ctrlFlatLED], paris(16, 2, 0)); got != DefaultLevel(paris(16, 2, 0)) {
		t.Errorf("level %v at 02:00 after refused programs, want the failsafe", got)
	}
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
	if err := r.ApplyProgram(ctrlSenML, mustJSON(t, nightProgram(ctrlSenML, 1)), start); err != nil {
		t.Errorf("stuck controller refused a program: %v", err)
	}
	cmdAt := paris(15, 21, 0)
	b, err := r.ApplyCommand(ctrlSenML, mustJSON(t, lighting.CommandMsg{ID: "c1", Level: 20, Until: cmdAt.Add(time.Hour)}), cmdAt)
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
	if at := paris(16, 23, 30); r.level(r.byID[ctrlSenML], at) != DefaultLevel(at) {
		t.Errorf("after the fault: level %v, want the failsafe (the program was ignored)", r.level(r.byID[ctrlSenML], at))
	}
}

// TestPublishControllersOverMQTT: against the embedded broker, a controller of a running Publish gets the
// program retained before it connected, acks a command "ok", and its next reports carry the commanded level.
func TestPublishControllersOverMQTT(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("loopback network test (never skipped with CI=true)")
	}
	f, reg := smallFleet(t)
	// One controller reporting every second, so the test need not wait for 5-minute reports.
	dev := nominal(t, f, ctrlFlatLED)
	dev.Interval = time.Second
	tiny := &fleet.Fleet{Sites: f.Sites, Profiles: f.Profiles, Devices: []fleet.Device{dev}}
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

	levels := make(chan float64, 1000)
	acks := make(chan lighting.Ack, 10)
	dec, err := decode.Lookup("json")
	if err != nil {
		t.Fatal(err)
	}
	mapper := &decode.Mapper{Profiles: reg.Profiles()}
	regDev, _, _ := reg.Lookup(ctrlFlatLED)
	var once sync.Once
	service := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("test-service").
		SetCleanSession(true).SetOnConnectHandler(func(c paho.Client) {
		c.SubscribeMultiple(map[string]byte{"hv/" + ctrlFlatLED + "/up": 1, lighting.AckTopic(ctrlFlatLED): 1},
			func(_ paho.Client, m paho.Message) {
				if strings.HasSuffix(m.Topic(), "/ack") {
					var a lighting.Ack
					if json.Unmarshal(m.Payload(), &a) == nil {
						select {
						case acks <- a:
						default:
						}
					}
					return
				}
				samples, err := dec.Decode(m.Topic(), m.Payload(), nil)
				if err != nil {
					once.Do(func() { t.Errorf("report %s: %v", m.Payload(), err) })
					return
				}
				for _, s := range samples {
					if metric, v, err := mapper.Normalise(s, regDev); err == nil && metric == hv.LevelPct {
						select {
						case levels <- v:
						default:
						}
					}
				}
			}).WaitTimeout(10 * time.Second)
	}))
	if tok := service.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer service.Disconnect(100)

	// The program is retained before the controller connects: it gets it when it subscribes.
	now := time.Now()
	prog := lighting.Program{Device: ctrlFlatLED, Version: 1, Until: now.Add(2 * time.Hour),
		Steps: []lighting.Step{{At: now.Add(-time.Hour), Level: 40}}}
	if tok := service.Publish(lighting.ProgramTopic(ctrlFlatLED), 1, true, mustJSON(t, prog)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish program: %v", tok.Error())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Publish(ctx, PublishConfig{Broker: "tcp://" + addr, ClientID: "test-fleet", Speed: 1}, NewRunner(tiny, 1, time.Now()), log)
	}()
	defer func() { cancel(); <-done }()

	waitLevel := func(want float64) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case l := <-levels:
				if l == want {
					return
				}
			case <-deadline:
				t.Fatalf("no report at level %v within 20 s", want)
			}
		}
	}
	waitLevel(40) // the retained program is running, so the controller's subscriptions are in place

	cmd := lighting.CommandMsg{ID: "cmd-1", Level: 70, Until: time.Now().Add(10 * time.Minute)}
	if tok := service.Publish(lighting.CommandTopic(ctrlFlatLED), 1, false, mustJSON(t, cmd)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish command: %v", tok.Error())
	}
	select {
	case a := <-acks:
		if a.ID != "cmd-1" || a.Status != lighting.AckOK || a.Level != 70 {
			t.Fatalf("ack %+v", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no ack within 20 s")
	}
	waitLevel(70)
}
