package simulators

import (
	"context"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
)

// simClock is the simulated time the service and the controllers share.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *simClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// waitFor polls cond every 20 ms (real time) for at most limit; it fails the test with what cond says.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s: %s", what, limit, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLightingControlIntegration runs the lighting service against the simulated controllers of the Pays de
// Laon through a real Mosquitto, on a simulated night across midnight and the spring-forward DST change
// (Saturday 27 to Sunday 28 March 2027):
//   - programs are pushed before the controllers connect; back online, they get them (retained, or resent
//     LoRaWAN downlinks) and acknowledge them;
//   - every 5-minute report through the night runs the level of the program the controller was given;
//   - an override on an MQTT and a LoRaWAN controller is acknowledged and reported, then expires back to the
//     program;
//   - a controller ignoring its commands (stuck driver) raises dimming_failure through the rules engine;
//   - each step is in the audit log.
func TestLightingControlIntegration(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	full, reg := laonFleet(t)
	var ctrls []fleet.Device
	for _, d := range full.Devices {
		if d.Kind == hv.DeviceLightingController {
			ctrls = append(ctrls, d)
		}
	}
	f := &fleet.Fleet{Sites: full.Sites, Profiles: full.Profiles, Devices: ctrls}
	paris := model.Paris()
	start := time.Date(2027, 3, 27, 15, 0, 0, 0, paris)
	clock := &simClock{t: start}
	runner := NewRunner(f, 1, start)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// What the controllers report, as ingest would store it.
	var (
		mu       sync.Mutex
		reported []hv.Reading
		lastSeen = map[string]int64{}
	)
	runner.observe = func(device string, at time.Time, vals map[hv.Metric]float64) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range []hv.Metric{hv.LevelPct, hv.PowerW} {
			reported = append(reported, hv.Reading{Device: device, Metric: m, Time: at.UnixMilli(), Value: vals[m]})
		}
		lastSeen[device] = at.UnixMilli()
	}
	seen := func(device string) int64 { mu.Lock(); defer mu.Unlock(); return lastSeen[device] }

	plan, err := lighting.LoadPlan(configs.Lighting(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db, err := lighting.OpenDB(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var svc *lighting.Service
	svcClient := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL).SetClientID("hyperviseur-lighting").
		SetOrderMatters(false).SetOnConnectHandler(func(c paho.Client) { lighting.Subscribe(c, svc, log) }))
	svc, err = lighting.New(db, lighting.MQTTPublisher{Client: svcClient}, reg, plan, seen,
		lighting.Options{AckTimeout: 2 * time.Second, MaxAttempts: 10, Offline: time.Hour, Now: clock.now}, log)
	if err != nil {
		t.Fatal(err)
	}
	if tok := svcClient.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("service client: %v", tok.Error())
	}
	defer svcClient.Disconnect(100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	programs := func() map[string]*lighting.PushedProgram {
		out := map[string]*lighting.PushedProgram{}
		for _, st := range svc.State(nil, true) {
			out[st.Device] = st.Program
		}
		return out
	}
	countState := func(states ...string) (int, string) {
		n := 0
		for _, p := range programs() {
			if p != nil && slices.Contains(states, p.State) {
				n++
			}
		}
		return n, ""
	}
	// 1. Programs go out while every controller is offline.
	waitFor(t, 30*time.Second, "programs pushed", func() (bool, string) {
		n, _ := countState(lighting.StateSent)
		return n == len(ctrls), strconv.Itoa(n) + " of " + strconv.Itoa(len(ctrls)) + " sent"
	})
	// 2. The controllers come online: retained programs arrive, LoRaWAN downlinks are resent until acked.
	ctrlClient := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL).SetClientID("fleet").SetCleanSession(true).
		SetOnConnectHandler(func(c paho.Client) {
			subscribeControllers(c, runner, clock.now, log)
		}))
	if tok := ctrlClient.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fleet client: %v", tok.Error())
	}
	defer ctrlClient.Disconnect(100)
	lora := 0
	for _, d := range ctrls {
		if d.Downlink != nil {
			lora++
		}
	}
	waitFor(t, 60*time.Second, "programs acknowledged", func() (bool, string) {
		clock.set(clock.now().Add(100 * time.Millisecond)) // simulated time runs 5× real time: resends are due
		n, _ := countState(lighting.StateAcked)
		return n == len(ctrls), strconv.Itoa(n) + " of " + strconv.Itoa(len(ctrls)) + " acked (" + strconv.Itoa(lora) + " LoRaWAN)"
	})
	given := programs()

	// The MQTT and LoRaWAN controllers the override targets, and the one whose driver is stuck.
	var mqttCtrl, loraCtrl, stuck string
	for _, d := range ctrls {
		switch {
		case d.Downlink == nil && mqttCtrl == "":
			mqttCtrl = d.ID
		case d.Downlink != nil && loraCtrl == "":
			loraCtrl = d.ID
		case d.Downlink == nil && stuck == "":
			stuck = d.ID
		}
	}
	stuckFrom := time.Date(2027, 3, 27, 19, 0, 0, 0, paris) // before the override
	if err := runner.Inject(Fault{Kind: FaultDimmingFailure, Device: stuck, From: stuckFrom, Param: 100}); err != nil {
		t.Fatal(err)
	}
	dimming, err := rules.NewDimmingFailure(rules.RuleConfig{Name: "gradation-defaillante", Severity: hv.SeverityWarning},
		rules.DefaultDimmingFailureConfig(), reg, svc.Commanded)
	if err != nil {
		t.Fatal(err)
	}

	overrideAt := time.Date(2027, 3, 27, 20, 0, 0, 0, paris)
	overrideUntil := overrideAt.Add(40 * time.Minute)
	var overrideCmds []lighting.Command
	checked, mismatches := 0, 0
	var dimmingSeen bool
	end := time.Date(2027, 3, 28, 10, 0, 0, 0, paris)
	for at := start.Add(5 * time.Minute); !at.After(end); at = at.Add(5 * time.Minute) {
		clock.set(at)
		if at.Equal(overrideAt) {
			for _, dev := range []string{mqttCtrl, loraCtrl, stuck} {
				_, cmds, err := svc.CreateOverride(ctx, lighting.OverrideRequest{Device: dev, Level: 30, Until: overrideUntil, Reason: "essai"}, "alice", nil)
				if err != nil {
					t.Fatal(err)
				}
				overrideCmds = append(overrideCmds, cmds...)
			}
			took := waitFor(t, 10*time.Second, "override acknowledged", func() (bool, string) {
				for _, c := range overrideCmds {
					got, err := db.Command(ctx, c.ID)
					if err != nil || got.State != lighting.StateAcked {
						return false, c.Device + " " + got.State
					}
				}
				return true, ""
			})
			t.Logf("override acknowledged by the 3 controllers (MQTT and LoRaWAN, through Mosquitto) %s after the request", took.Round(time.Millisecond))
		}
		runner.Due(at)
		mu.Lock()
		batch := reported
		reported = nil
		mu.Unlock()
		svc.Observe(batch)
		dimming.Observe(batch)
		for _, rd := range batch {
			if rd.Metric != hv.LevelPct {
				continue
			}
			ts := rd.Timestamp() // a report due before `at` is stamped when it was due
			want, ok := given[rd.Device].Program.LevelAt(ts)
			if !ok {
				t.Fatalf("%s at %s: outside its program", rd.Device, ts)
			}
			inOverride := !ts.Before(overrideAt) && ts.Before(overrideUntil) && slices.Contains([]string{mqttCtrl, loraCtrl, stuck}, rd.Device)
			switch {
			case rd.Device == stuck && !ts.Before(stuckFrom):
				want = 100
			case inOverride:
				want = 30
			}
			checked++
			if math.Abs(rd.Value-want) > 0.01 {
				mismatches++
				if mismatches < 5 {
					t.Errorf("%s at %s (%s): level %v, want %v", rd.Device, rd.Timestamp().In(paris).Format("02/01 15:04 MST"), at.UTC().Format("15:04Z"), rd.Value, want)
				}
			}
		}
		conds, err := dimming.Eval(ctx, at, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range conds {
			if c.Labels["device"] != stuck {
				t.Errorf("dimming_failure on %s at %s: only %s ignores its commands", c.Labels["device"], at, stuck)
			}
			dimmingSeen = true
		}
	}
	if mismatches > 0 || checked < len(ctrls)*200 {
		t.Fatalf("%d of %d reported levels differ from the program", mismatches, checked)
	}
	if !dimmingSeen {
		t.Error("the stuck controller raised no dimming_failure")
	}
	// The night crossed the DST change: 05:00 local on Sunday is 03:00Z, and the program switched back on then.
	p := given[mqttCtrl].Program
	if l, _ := p.LevelAt(time.Date(2027, 3, 28, 2, 55, 0, 0, time.UTC)); l != 0 {
		t.Errorf("level %v at 04:55 summer time, want 0", l)
	}
	if l, _ := p.LevelAt(time.Date(2027, 3, 28, 3, 0, 0, 0, time.UTC)); l != 100 {
		t.Errorf("level %v at 05:00 summer time (03:00Z), want 100", l)
	}

	// Every program was confirmed by a report (the stuck controller's in the afternoon, when it still ran it); the
	// overrides were measured, except on the stuck controller.
	waitFor(t, 10*time.Second, "programs measured", func() (bool, string) {
		n, _ := countState(lighting.StateMeasured)
		return n == len(ctrls), strconv.Itoa(n) + " measured"
	})
	for _, c := range overrideCmds {
		got, _ := db.Command(ctx, c.ID)
		want := lighting.StateMeasured
		if c.Device == stuck {
			want = lighting.StateExpired
		}
		if got.State != want {
			t.Errorf("override command on %s: %s, want %s", c.Device, got.State, want)
		}
	}
	trail := func(target, ref string) []string {
		es, err := db.AuditLog(ctx, lighting.AuditFilter{Target: target, Ref: ref})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range slices.Backward(es) {
			if !slices.Contains(out, e.Action) {
				out = append(out, e.Action)
			}
		}
		return out
	}
	if got, want := trail(mqttCtrl, overrideCmds[0].ID), []string{"command.create", "command.sent", "command.ack", "command.measured"}; !slices.Equal(got, want) {
		t.Errorf("audit of the MQTT override %v, want %v", got, want)
	}
	if got, want := trail(loraCtrl, overrideCmds[1].ID), []string{"command.create", "command.sent", "command.ack", "command.measured"}; !slices.Equal(got, want) {
		t.Errorf("audit of the LoRaWAN override %v, want %v", got, want)
	}
	if got, want := trail(stuck, overrideCmds[2].ID), []string{"command.create", "command.sent", "command.ack", "command.expired"}; !slices.Equal(got, want) {
		t.Errorf("audit of the stuck controller's override %v, want %v", got, want)
	}
	if got := trail(mqttCtrl, "v"+strconv.FormatInt(given[mqttCtrl].Version, 10)); !slices.Equal(got, []string{"program.push", "program.ack", "program.measured"}) {
		t.Errorf("audit of the program %v", got)
	}
}
