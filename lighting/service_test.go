package lighting

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// serviceRegistry: two cabinets in Laon, one controller speaking hv/<id>/… and one behind ChirpStack, and a
// cabinet in Soissons (CA GrandSoissons Agglomération) outside the Laon group.
const serviceRegistry = `
sites:
  - {id: armoire-1, name: Armoire 1, kind: lighting_cabinet, commune: "02408"}
  - {id: armoire-2, name: Armoire 2, kind: lighting_cabinet, commune: "02408"}
  - {id: armoire-s, name: Armoire Soissons, kind: lighting_cabinet, commune: "02722"}
devices:
  - {id: ctrl-1, site: armoire-1, kind: lighting_controller, interval: 5m, max_power_w: 2200}
  - {id: 70b3d57ed0000001, site: armoire-2, kind: lighting_controller, interval: 5m, max_power_w: 2200,
     downlink: {network: chirpstack, application: aisne}}
  - {id: ctrl-s, site: armoire-s, kind: lighting_controller, interval: 5m, max_power_w: 2200}
`

const servicePlan = `
programs:
  - name: nuit
    start: {sun: sunset}
    end: {sun: sunrise}
    level: 100
    steps:
      - {at: {at: "23:00"}, level: 0}
      - {at: {at: "05:00"}, level: 100}
  - name: detection
    start: {sun: sunset}
    end: {sun: sunrise}
    steps:
      - {at: {at: "22:00"}, level: 20}
    presence: {level: 100, hold: 2m}
calendars:
  - {name: standard, default: nuit}
groups:
  - {name: laon, communes: ["02408"], calendar: standard}
  - {name: soissons, communes: ["02722"], program: detection}
tariff_eur_kwh: 0.2
`

type published struct {
	topic    string
	retained bool
	payload  []byte
}

// recorder is a Publisher that keeps what it was given; fail makes the next publications fail.
type recorder struct {
	mu   sync.Mutex
	msgs []published
	fail error
	// during, when set, runs inside Publish: an ack that comes back before Publish returns.
	during func(topic string, payload []byte)
}

func (r *recorder) Publish(_ context.Context, topic string, retained bool, payload []byte) error {
	r.mu.Lock()
	if r.fail != nil {
		r.mu.Unlock()
		return r.fail
	}
	r.msgs = append(r.msgs, published{topic, retained, append([]byte(nil), payload...)})
	during := r.during
	r.mu.Unlock()
	if during != nil {
		during(topic, payload)
	}
	return nil
}

// take returns and forgets what was published.
func (r *recorder) take() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.msgs
	r.msgs = nil
	return out
}

// commands returns and forgets what was published, keeping only commands (programs are also resent until
// acknowledged).
func (r *recorder) commands() []published {
	var out []published
	for _, m := range r.take() {
		if strings.HasSuffix(m.topic, "/program") || strings.Contains(string(m.payload), `"kind":"program"`) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// rig is a service on a simulated clock with controllers heard when the test says.
type rig struct {
	t    *testing.T
	svc  *Service
	pub  *recorder
	db   *DB
	now  time.Time
	seen map[string]time.Time
	mu   sync.Mutex
	path string
}

func newRig(t *testing.T, now time.Time) *rig {
	t.Helper()
	r := &rig{t: t, pub: &recorder{}, now: now, seen: map[string]time.Time{}, path: filepath.Join(t.TempDir(), "state.db")}
	r.open()
	return r
}

func (r *rig) open() {
	r.t.Helper()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		r.t.Fatal(err)
	}
	reg, err := registry.LoadBytes(tr, "test registry", []byte(serviceRegistry))
	if err != nil {
		r.t.Fatal(err)
	}
	plan, err := ParsePlan("plan.yaml", []byte(servicePlan))
	if err != nil {
		r.t.Fatal(err)
	}
	db, err := OpenDB(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { db.Close() })
	svc, err := New(db, r.pub, reg, plan, r.lastSeen, Options{AckTimeout: 10 * time.Second, MaxAttempts: 3}, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	svc.now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	r.svc, r.db = svc, db
}

// sync pushes the programs of the night in force.
func (r *rig) sync() {
	r.t.Helper()
	if err := r.svc.SyncPrograms(context.Background(), r.now); err != nil {
		r.t.Fatal(err)
	}
}

// override asks alice's override of device at level for d from now.
func (r *rig) override(device string, level float64, d time.Duration) (Override, []Command) {
	r.t.Helper()
	o, cmds, err := r.svc.CreateOverride(context.Background(), OverrideRequest{Device: device, Level: level, Until: r.now.Add(d), Reason: "essai"}, "alice", nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return o, cmds
}

func (r *rig) lastSeen(device string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.seen[device]; ok {
		return t.UnixMilli()
	}
	return 0
}

func (r *rig) hear(device string) {
	r.mu.Lock()
	r.seen[device] = r.now
	r.mu.Unlock()
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
	r.svc.step(context.Background(), r.svc.now())
}

// report feeds the service a level (and power) reading of device at the current time.
func (r *rig) report(device string, level, power float64) {
	r.hear(device)
	t := r.svc.now().UnixMilli()
	r.svc.handle(context.Background(), event{readings: []hv.Reading{
		{Device: device, Metric: hv.PowerW, Time: t, Value: power},
		{Device: device, Metric: hv.LevelPct, Time: t, Value: level},
	}})
}

func (r *rig) ack(device string, a Ack) {
	r.svc.handle(context.Background(), event{device: device, ack: &a, at: r.svc.now()})
}

func (r *rig) trail(target, ref string) []string {
	r.t.Helper()
	es, err := r.db.AuditLog(context.Background(), AuditFilter{Target: target, Ref: ref})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(es) {
		out = append(out, e.Action+"→"+e.Outcome)
	}
	return out
}

// laonEvening is 2027-01-12 18:00 in Paris: after sunset (about 17:15), before the 23:00 step.
var laonEvening = time.Date(2027, 1, 12, 18, 0, 0, 0, paris)

func TestSyncPrograms(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.sync()
	msgs := r.pub.take()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want a program for each of the 3 controllers: %+v", len(msgs), msgs)
	}
	byTopic := map[string]published{}
	for _, m := range msgs {
		byTopic[m.topic] = m
	}
	m, ok := byTopic[ProgramTopic("ctrl-1")]
	if !ok || !m.retained {
		t.Fatalf("no retained program on %s: %+v", ProgramTopic("ctrl-1"), msgs)
	}
	p, err := ParseProgram(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != r.now.Unix() {
		t.Errorf("version %d, want the clock's seconds %d", p.Version, r.now.Unix())
	}
	// Tonight at Laon: on now, off at 23:00, on again at 05:00, and valid until the day after tomorrow's noon.
	for _, c := range []struct {
		at   time.Time
		want float64
	}{
		{laonEvening, 100},
		{time.Date(2027, 1, 12, 23, 30, 0, 0, paris), 0},
		{time.Date(2027, 1, 13, 5, 30, 0, 0, paris), 100},
		{time.Date(2027, 1, 13, 12, 0, 0, 0, paris), 0},
		{time.Date(2027, 1, 13, 23, 30, 0, 0, paris), 0},
		{time.Date(2027, 1, 14, 6, 0, 0, 0, paris), 100},
	} {
		if l, ok := p.LevelAt(c.at); !ok || l != c.want {
			t.Errorf("level at %s = %v (%v), want %v", c.at, l, ok, c.want)
		}
	}
	if want := time.Date(2027, 1, 14, 12, 0, 0, 0, paris); !p.Until.Equal(want) {
		t.Errorf("until %s, want %s (two nights ahead)", p.Until, want)
	}
	// The LoRaWAN controller gets it as a ChirpStack downlink.
	dl, ok := byTopic["application/aisne/device/70b3d57ed0000001/command/down"]
	if !ok || dl.retained {
		t.Fatalf("no ChirpStack downlink: %+v", msgs)
	}
	var down ChirpStackDown
	if err := json.Unmarshal(dl.payload, &down); err != nil || !down.Confirmed || down.FPort != DefaultFPort {
		t.Fatalf("downlink %s: %v", dl.payload, err)
	}
	if kind, body, err := DecodeDownlinkObject(down.Object); err != nil || kind != DownlinkProgram {
		t.Fatalf("downlink object %s: kind %q %v", down.Object, kind, err)
	} else if _, err := ParseProgram(body); err != nil {
		t.Fatal(err)
	}
	// The same night again: nothing to push. The next day: a new, higher version.
	r.now = r.now.Add(time.Hour)
	if err := r.svc.SyncPrograms(ctx, r.now); err != nil || len(r.pub.take()) != 0 {
		t.Fatalf("second sync the same night published again (%v)", err)
	}
	r.now = time.Date(2027, 1, 13, 12, 0, 1, 0, paris)
	r.sync()
	next := r.pub.take()
	if len(next) != 3 {
		t.Fatalf("%d programs the next day, want 3", len(next))
	}
	for _, m := range next {
		if m.topic == ProgramTopic("ctrl-1") {
			if q, err := ParseProgram(m.payload); err != nil || q.Version <= p.Version {
				t.Errorf("next version %d, want above %d (%v)", q.Version, p.Version, err)
			}
		}
	}
	if got := r.trail("ctrl-1", version(p.Version)); len(got) == 0 || got[0] != "program.push→sent" {
		t.Errorf("audit of the push: %v", got)
	}
}

func TestProgramAckedAndMeasured(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.sync()
	r.pub.take()
	v := r.svc.programs["ctrl-1"].Version
	r.ack("ctrl-1", Ack{ID: ProgramAckID(v), Status: AckOK, Level: 100})
	if st := r.svc.programs["ctrl-1"].State; st != StateAcked {
		t.Fatalf("program state %s after its ack, want acked", st)
	}
	// A report at the wrong level does not confirm it; at the program's level (and lit power) it does.
	r.advance(5 * time.Minute)
	r.report("ctrl-1", 40, 800)
	if st := r.svc.programs["ctrl-1"].State; st != StateAcked {
		t.Fatalf("program state %s after a report at 40 %%, want still acked", st)
	}
	r.advance(5 * time.Minute)
	r.report("ctrl-1", 100, 1900)
	if st := r.svc.programs["ctrl-1"].State; st != StateMeasured {
		t.Fatalf("program state %s after a report at 100 %%, want measured", st)
	}
	// The LoRaWAN controller's program is acked by the network server's ack event with the downlink id.
	dlID := r.svc.programs["70b3d57ed0000001"].DownlinkID
	a, err := ParseDownlinkAck("application/aisne/device/70b3d57ed0000001/event/ack",
		[]byte(`{"deviceInfo":{"devEui":"70b3d57ed0000001"},"queueItemId":"`+dlID+`","acknowledged":true}`))
	if err != nil {
		t.Fatal(err)
	}
	r.svc.handle(ctx, event{device: a.Device, dlAck: &a, at: r.now})
	if st := r.svc.programs["70b3d57ed0000001"].State; st != StateAcked {
		t.Fatalf("LoRaWAN program state %s after the network's ack, want acked", st)
	}
	want := []string{"program.push→sent", "program.ack→acked", "program.measured→measured"}
	if got := r.trail("ctrl-1", version(v)); !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
}

func TestOverrideEndToEnd(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.sync()
	r.pub.take()
	r.hear("ctrl-1")
	o, cmds := r.override("ctrl-1", 30, time.Hour)
	if len(cmds) != 1 || o.Target != "ctrl-1" {
		t.Fatalf("override %+v, commands %+v", o, cmds)
	}
	id := cmds[0].ID
	msgs := r.pub.take()
	if len(msgs) != 1 || msgs[0].topic != CommandTopic("ctrl-1") || msgs[0].retained {
		t.Fatalf("published %+v, want one command on %s at once", msgs, CommandTopic("ctrl-1"))
	}
	c, err := ParseCommand(msgs[0].payload)
	if err != nil || c.ID != id || c.Level != 30 || !c.Until.Equal(o.Until) {
		t.Fatalf("command %+v (%v)", c, err)
	}
	// While it is in force the commanded level is the override's; the program's after it.
	if l, since, ok := r.svc.Commanded("ctrl-1", r.now.Add(time.Minute)); !ok || l != 30 || !since.Equal(r.now.UTC()) {
		t.Errorf("commanded %v since %s (%v), want 30 since now", l, since, ok)
	}
	if l, _, ok := r.svc.Commanded("ctrl-1", o.Until.Add(time.Minute)); !ok || l != 100 {
		t.Errorf("commanded after the override %v (%v), want the program's 100", l, ok)
	}
	r.ack("ctrl-1", Ack{ID: id, Status: AckOK, Level: 30, At: r.now})
	r.advance(5 * time.Minute)
	r.report("ctrl-1", 30, 700)
	got, err := r.db.Command(ctx, id)
	if err != nil || got.State != StateMeasured {
		t.Fatalf("command %+v (%v), want measured", got, err)
	}
	want := []string{"command.create→scheduled", "command.sent→sent", "command.ack→acked", "command.measured→measured"}
	if trail := r.trail("ctrl-1", id); !slices.Equal(trail, want) {
		t.Errorf("audit %v, want %v", trail, want)
	}
	// A group override of Laon goes to both its controllers, the LoRaWAN one as a downlink; Soissons is untouched.
	r.hear("70b3d57ed0000001")
	_, cmds, err = r.svc.CreateOverride(ctx, OverrideRequest{Group: "laon", Level: 100, Until: r.now.Add(time.Hour), Reason: "fête"}, "alice", nil)
	if err != nil || len(cmds) != 2 {
		t.Fatalf("group override: %d commands, %v", len(cmds), err)
	}
	topics := []string{}
	for _, m := range r.pub.commands() {
		topics = append(topics, m.topic)
	}
	slices.Sort(topics)
	if want := []string{"application/aisne/device/70b3d57ed0000001/command/down", CommandTopic("ctrl-1")}; !slices.Equal(topics, want) {
		t.Errorf("group override published on %v, want %v", topics, want)
	}
	// Out of scope: refused whole.
	_, _, err = r.svc.CreateOverride(ctx, OverrideRequest{Group: "laon", Level: 0, Until: r.now.Add(time.Hour), Reason: "x"}, "bob",
		func(d hv.Device) bool { return d.ID != "ctrl-1" })
	if err == nil || !strings.Contains(err.Error(), "outside your scope") {
		t.Errorf("scoped override: %v", err)
	}
}

func TestOverrideRejected(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		req  OverrideRequest
		want string
	}{
		{"no target", OverrideRequest{Level: 10, Until: r.now.Add(time.Hour), Reason: "x"}, "exactly one of group and device"},
		{"both", OverrideRequest{Group: "laon", Device: "ctrl-1", Level: 10, Until: r.now.Add(time.Hour), Reason: "x"}, "exactly one"},
		{"level", OverrideRequest{Device: "ctrl-1", Level: 120, Until: r.now.Add(time.Hour), Reason: "x"}, "outside [0, 100]"},
		{"past", OverrideRequest{Device: "ctrl-1", Level: 10, Until: r.now.Add(-time.Minute), Reason: "x"}, "until must be after"},
		{"too long", OverrideRequest{Device: "ctrl-1", Level: 10, Until: r.now.Add(15 * 24 * time.Hour), Reason: "x"}, "at most"},
		{"no reason", OverrideRequest{Device: "ctrl-1", Level: 10, Until: r.now.Add(time.Hour)}, "reason"},
		{"unknown device", OverrideRequest{Device: "nope", Level: 10, Until: r.now.Add(time.Hour), Reason: "x"}, "not found"},
		{"unknown group", OverrideRequest{Group: "nope", Level: 10, Until: r.now.Add(time.Hour), Reason: "x"}, "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := r.svc.CreateOverride(ctx, c.req, "alice", nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
	if msgs := r.pub.take(); len(msgs) != 0 {
		t.Errorf("refused overrides published %d messages", len(msgs))
	}
}

func TestCommandRetriesAndOffline(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.hear("ctrl-1")
	_, cmds := r.override("ctrl-1", 50, 2*time.Hour)
	id := cmds[0].ID
	if n := len(r.pub.take()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
	// No ack: sent again after 10 s, then 20 s; the controller keeps reporting (it is online but deaf).
	r.advance(9 * time.Second)
	if n := len(r.pub.take()); n != 0 {
		t.Fatalf("resent before the ack timeout (%d)", n)
	}
	r.advance(time.Second)
	if n := len(r.pub.take()); n != 1 {
		t.Fatalf("%d sends after 10 s, want a resend", n)
	}
	r.hear("ctrl-1")
	r.advance(20 * time.Second)
	if n := len(r.pub.take()); n != 1 {
		t.Fatalf("%d sends after 20 more s, want the third", n)
	}
	r.hear("ctrl-1")
	r.advance(40 * time.Second)
	if n := len(r.pub.take()); n != 0 {
		t.Fatalf("%d sends after the last attempt", n)
	}
	c, _ := r.db.Command(ctx, id)
	if c.State != StateUnacked || c.Attempts != 3 {
		t.Fatalf("command %s after 3 unacknowledged sends (attempts %d), want unacked", c.State, c.Attempts)
	}
	// Unacked still counts as commanded: the rules engine's dimming_failure judges the reported level.
	if l, _, ok := r.svc.Commanded("ctrl-1", r.now); !ok || l != 50 {
		t.Errorf("commanded %v (%v) for an unacked command, want 50", l, ok)
	}

	// Offline: a controller not heard for 15 minutes gets its command when it reports again.
	r.advance(20 * time.Minute)
	_, cmds = r.override("ctrl-1", 10, 2*time.Hour)
	id = cmds[0].ID
	if n := len(r.pub.take()); n != 0 {
		t.Fatalf("%d sends to an offline controller, want it queued", n)
	}
	if c, _ := r.db.Command(ctx, id); c.State != StateQueued {
		t.Fatalf("command %s, want queued", c.State)
	}
	r.advance(time.Minute)
	if n := len(r.pub.take()); n != 0 {
		t.Fatal("a queued command went out while its controller is still silent")
	}
	r.hear("ctrl-1")
	r.advance(time.Second)
	msgs := r.pub.take()
	if len(msgs) != 1 || msgs[0].topic != CommandTopic("ctrl-1") {
		t.Fatalf("on reconnection published %+v, want the queued command", msgs)
	}
	want := []string{"command.create→scheduled", "command.queued→queued", "command.sent→sent"}
	if trail := r.trail("ctrl-1", id); !slices.Equal(trail, want) {
		t.Errorf("audit %v, want %v", trail, want)
	}
}

func TestCommandedSparesBoost(t *testing.T) {
	r := newRig(t, laonEvening)
	r.sync()
	// Soissons runs "detection": 20 % from 22:00 with a presence boost, so a controller may rightly report
	// 100 %: the level is not judged then. Before 22:00 it is.
	if _, _, ok := r.svc.Commanded("ctrl-s", time.Date(2027, 1, 12, 23, 0, 0, 0, paris)); ok {
		t.Error("a boosted step is judged")
	}
	if l, _, ok := r.svc.Commanded("ctrl-s", time.Date(2027, 1, 12, 21, 0, 0, 0, paris)); !ok || l != 100 {
		t.Errorf("commanded %v (%v) before 22:00, want 100", l, ok)
	}
	// Before the program was sent nothing is known (the controller ran its failsafe).
	if _, _, ok := r.svc.Commanded("ctrl-s", laonEvening.Add(-time.Hour)); ok {
		t.Error("commanded level known before the program was sent")
	}
}

func TestServiceRestart(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.sync()
	r.hear("ctrl-1")
	o, cmds := r.override("ctrl-1", 30, time.Hour)
	r.pub.take()
	r.db.Close()
	r.open() // a restart: same database
	if err := r.svc.SyncPrograms(ctx, r.now); err != nil || len(r.pub.take()) != 0 {
		t.Fatalf("programs pushed again after a restart (%v)", err)
	}
	if l, _, ok := r.svc.Commanded("ctrl-1", r.now.Add(time.Minute)); !ok || l != 30 {
		t.Errorf("after a restart commanded %v (%v), want the override's 30", l, ok)
	}
	// The open command is still retried.
	r.advance(10 * time.Second)
	if msgs := r.pub.commands(); len(msgs) != 1 || !strings.Contains(string(msgs[0].payload), cmds[0].ID) {
		t.Fatalf("after a restart resent %+v, want command %s", msgs, cmds[0].ID)
	}
	// Cancelling ends it and sends the program's level back.
	if err := r.svc.CancelOverride(ctx, o.ID, "alice", nil); err != nil {
		t.Fatal(err)
	}
	r.advance(time.Second)
	msgs := r.pub.commands()
	if len(msgs) != 1 {
		t.Fatalf("cancel published %d messages, want 1", len(msgs))
	}
	back, err := ParseCommand(msgs[0].payload)
	if err != nil || back.Level != 100 {
		t.Fatalf("back to the program: %+v (%v), want level 100", back, err)
	}
	if c, _ := r.db.Command(ctx, cmds[0].ID); c.State != StateCancelled {
		t.Errorf("cancelled override's command is %s", c.State)
	}
}

func TestProgramResent(t *testing.T) {
	r := newRig(t, laonEvening)
	r.sync()
	first := r.pub.take()
	// ctrl-1 acks; the others do not: theirs go out again after 10 s, 20 s, then no more (3 attempts).
	r.ack("ctrl-1", Ack{ID: ProgramAckID(r.svc.programs["ctrl-1"].Version), Status: AckOK})
	var resent []int
	for _, wait := range []time.Duration{9 * time.Second, time.Second, 20 * time.Second, 40 * time.Second, time.Hour} {
		r.advance(wait)
		resent = append(resent, len(r.pub.take()))
	}
	if want := []int{0, 2, 2, 0, 0}; !slices.Equal(resent, want) {
		t.Errorf("programs resent %v, want %v", resent, want)
	}
	// The same version each time, so a controller that got the first acks it and runs on.
	for _, m := range first {
		if m.topic == ProgramTopic("ctrl-s") {
			p, _ := ParseProgram(m.payload)
			if got := r.trail("ctrl-s", version(p.Version)); !slices.Equal(got, []string{"program.push→sent", "program.retry→sent", "program.retry→sent"}) {
				t.Errorf("audit %v", got)
			}
		}
	}
}

func TestSyncStopsWhenTheBrokerRefuses(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.pub.fail = errors.New("no PUBACK")
	err := r.svc.SyncPrograms(ctx, r.now)
	if err == nil || !strings.Contains(err.Error(), "stopped at") {
		t.Fatalf("sync with the broker down: %v, want it stopped at the first refusal", err)
	}
	es, _ := r.db.AuditLog(ctx, AuditFilter{ActionPrefix: "program.push"})
	if len(es) != 1 || !strings.HasPrefix(es[0].Outcome, "échec") {
		t.Errorf("audit %+v, want one failed push", es)
	}
	// Back up: the next sync pushes every program (the failed one again).
	r.pub.fail = nil
	r.sync()
	if n := len(r.pub.take()); n != 3 {
		t.Errorf("%d programs pushed once the broker is back, want 3", n)
	}
}

func TestBadAcksIgnored(t *testing.T) {
	r := newRig(t, laonEvening)
	for _, m := range []struct{ topic, payload string }{
		{AckTopic("ctrl-1"), `not json`},
		{AckTopic("ctrl-1"), `{"status":"ok"}`},
		{AckTopic("intrus"), `{"id":"x","status":"ok"}`},
		{"application/aisne/device/70b3d57ed0000001/event/ack", `{"queueItemId":`},
	} {
		r.svc.HandleAck(m.topic, []byte(m.payload))
		r.svc.HandleDownlinkAck(m.topic, []byte(m.payload))
	}
	if n := r.svc.BadAcks(); n != 4 {
		t.Errorf("%d acks ignored, want 4", n)
	}
	if len(r.svc.events) != 0 {
		t.Errorf("%d bad acks reached the command loop", len(r.svc.events))
	}
}

func TestSetPlanKeepsEdits(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.sync()
	r.pub.take()
	// An edit through the API: "detection" dims to 10 % instead of 20 %.
	def, _ := r.svc.Plan().Program("detection")
	def.Steps = []LevelStep{{At: Event{At: "22:00"}, Level: 10}}
	if err := r.svc.SetProgram(ctx, def, "alice"); err != nil {
		t.Fatal(err)
	}
	// The files change: "nuit" switches off at 22:00. The edit survives the reload.
	next, err := ParsePlan("plan.yaml", []byte(strings.Replace(servicePlan, `{at: {at: "23:00"}, level: 0}`, `{at: {at: "22:00"}, level: 0}`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.SetPlan(ctx, next); err != nil {
		t.Fatal(err)
	}
	if d, _ := r.svc.Plan().Program("detection"); d.Steps[0].Level != 10 {
		t.Errorf("the API edit was lost by the reload: %+v", d.Steps)
	}
	r.sync()
	got := map[string]Program{}
	msgs := r.pub.take()
	for _, m := range msgs {
		if p, err := ParseProgram(m.payload); err == nil { // the LoRaWAN one is a downlink
			got[p.Device] = p
		}
	}
	if l, _ := got["ctrl-1"].LevelAt(time.Date(2027, 1, 12, 22, 30, 0, 0, paris)); len(msgs) != 3 || l != 0 {
		t.Errorf("after the reload: %d programs pushed, ctrl-1 at 22:30 %v; want 3 and 0", len(msgs), l)
	}
	if l, _ := got["ctrl-s"].LevelAt(time.Date(2027, 1, 12, 22, 30, 0, 0, paris)); l != 10 {
		t.Errorf("ctrl-s at 22:30 %v, want the edited 10", l)
	}
	es, _ := r.db.AuditLog(ctx, AuditFilter{ActionPrefix: "plan."})
	if len(es) != 1 {
		t.Errorf("plan reloads audited: %d", len(es))
	}
}

// TestBacklogMeansOnline: a controller sending readings stamped long ago (its backlog after an outage) is
// online now: its queued command goes out.
func TestBacklogMeansOnline(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	_, cmds := r.override("ctrl-1", 20, time.Hour)
	if c, _ := r.db.Command(ctx, cmds[0].ID); c.State != StateQueued {
		t.Fatalf("command %s, want queued (never heard)", c.State)
	}
	old := r.now.Add(-3 * time.Hour).UnixMilli()
	r.advance(time.Second)
	r.svc.Observe([]hv.Reading{{Device: "ctrl-1", Metric: hv.LevelPct, Time: old, Value: 100}})
	r.advance(time.Second)
	if msgs := r.pub.commands(); len(msgs) != 1 {
		t.Fatalf("%d commands sent after the backlog arrived, want the queued one", len(msgs))
	}
}

// TestAckBeforePublishReturns: a controller's ack may be handled before Publish returns (the broker delivers it
// while the PUBACK is on its way): the command and the program still end acknowledged, and the audit log
// says sent, then acked.
func TestAckBeforePublishReturns(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.hear("ctrl-1")
	r.pub.during = func(topic string, payload []byte) {
		switch topic {
		case CommandTopic("ctrl-1"):
			c, _ := ParseCommand(payload)
			r.ack("ctrl-1", Ack{ID: c.ID, Status: AckOK, Level: c.Level})
		case ProgramTopic("ctrl-1"):
			p, _ := ParseProgram(payload)
			r.ack("ctrl-1", Ack{ID: ProgramAckID(p.Version), Status: AckOK})
		}
	}
	r.sync()
	v := r.svc.programs["ctrl-1"].Version
	if st := r.svc.programs["ctrl-1"].State; st != StateAcked {
		t.Errorf("program %s, want acked", st)
	}
	_, cmds := r.override("ctrl-1", 40, time.Hour)
	if c, _ := r.db.Command(ctx, cmds[0].ID); c.State != StateAcked {
		t.Errorf("command %s, want acked", c.State)
	}
	if got, want := r.trail("ctrl-1", cmds[0].ID), []string{"command.create→scheduled", "command.sent→sent", "command.ack→acked"}; !slices.Equal(got, want) {
		t.Errorf("command audit %v, want %v", got, want)
	}
	if got, want := r.trail("ctrl-1", version(v)), []string{"program.push→sent", "program.ack→acked"}; !slices.Equal(got, want) {
		t.Errorf("program audit %v, want %v", got, want)
	}
}

// TestCancelMeasuredOverride: an override already confirmed by a report is still in force at the controller:
// cancelling it sends the program's level back, and the commanded level is the program's again.
func TestCancelMeasuredOverride(t *testing.T) {
	r := newRig(t, laonEvening)
	ctx := context.Background()
	r.sync()
	r.hear("ctrl-1")
	o, cmds := r.override("ctrl-1", 30, time.Hour)
	r.ack("ctrl-1", Ack{ID: cmds[0].ID, Status: AckOK, Level: 30})
	r.advance(5 * time.Minute)
	r.report("ctrl-1", 30, 700)
	if c, _ := r.db.Command(ctx, cmds[0].ID); c.State != StateMeasured {
		t.Fatalf("command %s, want measured", c.State)
	}
	r.pub.take()
	if err := r.svc.CancelOverride(ctx, o.ID, "bob", nil); err != nil {
		t.Fatal(err)
	}
	r.advance(time.Second)
	msgs := r.pub.commands()
	if len(msgs) != 1 {
		t.Fatalf("cancelling a measured override published %d commands, want the way back to the program", len(msgs))
	}
	if back, _ := ParseCommand(msgs[0].payload); back.Level != 100 {
		t.Errorf("back to the program at %v, want 100", back.Level)
	}
	if c, _ := r.db.Command(ctx, cmds[0].ID); c.State != StateCancelled {
		t.Errorf("the measured command is %s after the cancel, want cancelled", c.State)
	}
	r.advance(10 * time.Second)
	if l, _, ok := r.svc.Commanded("ctrl-1", r.now); !ok || l != 100 {
		t.Errorf("commanded %v (%v) after the cancel, want the program's 100", l, ok)
	}
}
