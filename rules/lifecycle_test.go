package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// t0 is the simulated start of every test: no test reads the clock.
var t0 = time.Date(2025, 1, 15, 2, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// recorder is the tests' Notifier: it records every delivered alert as "state fingerprint".
type recorder struct {
	mu   sync.Mutex
	got  []hv.Alert
	fail int // fail the next fail calls
}

func (r *recorder) Notify(_ context.Context, alerts []hv.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("webhook down")
	}
	r.got = append(r.got, alerts...)
	return nil
}

// take returns the notifications since the last call, as "state rule labels" lines.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.got {
		out = append(out, fmt.Sprintf("%s %s %s", a.State, a.Rule, labelString(a.Labels)))
	}
	r.got = nil
	return out
}

func labelString(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

type harness struct {
	t     testing.TB
	path  string
	store *SQLite
	m     *Manager
	rec   *recorder
	opts  Options
	topo  Topology
}

// newHarness opens a manager on a fresh SQLite file in t.TempDir().
func newHarness(t testing.TB, opts Options, topo Topology) *harness {
	t.Helper()
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "state.db"), opts: opts, topo: topo}
	h.open()
	return h
}

func (h *harness) open() {
	h.t.Helper()
	store, err := OpenSQLite(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { store.Close() })
	h.store, h.rec = store, &recorder{}
	if h.m, err = NewManager(context.Background(), store, h.rec, h.topo, nil, h.opts); err != nil {
		h.t.Fatal(err)
	}
}

// restart drops the manager without flushing (as a crash would) and reopens the database.
func (h *harness) restart() {
	h.t.Helper()
	if err := h.store.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

func (h *harness) update(now time.Time, spec RuleSpec, conds ...Condition) {
	h.t.Helper()
	if err := h.m.Update(context.Background(), now, spec, conds); err != nil {
		h.t.Fatalf("update %s at %s: %v", spec.Name, now.Format("15:04"), err)
	}
}

func (h *harness) alert(id string) Alert {
	h.t.Helper()
	a, err := h.m.Alert(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func (h *harness) expectNotified(when string, want ...string) {
	h.t.Helper()
	got := h.rec.take()
	if !slices.Equal(got, want) {
		h.t.Fatalf("%s: notified %q, want %q", when, got, want)
	}
}

func cond(value float64, kv ...string) Condition {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return Condition{Labels: l, Value: value, Summary: fmt.Sprintf("valeur %g", value),
		Evidence: Evidence{Metric: hv.FlowM3h, Device: l["device"], Value: value, Baseline: 0.1}}
}

func kinds(evs []Event) []EventKind {
	out := make([]EventKind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

func TestPendingToFiring(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forDur  time.Duration
		firesAt int // minute
	}{
		{"for 5m", 5 * time.Minute, 5},
		{"for 0 fires at once", 0, 0},
		{"for between evaluations", 150 * time.Second, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{}, nil)
			spec := RuleSpec{Name: "leak", Severity: hv.SeverityCritical, For: tc.forDur}
			id := Fingerprint("leak", map[string]string{"device": "m1"})
			for i := 0; i <= tc.firesAt+2; i++ {
				h.update(at(i), spec, cond(0.4+float64(i)/100, "device", "m1"))
				a := h.alert(id)
				want := hv.AlertPending
				if i >= tc.firesAt {
					want = hv.AlertFiring
				}
				if a.State != want {
					t.Fatalf("minute %d: state %s, want %s", i, a.State, want)
				}
				if i == tc.firesAt {
					h.expectNotified(fmt.Sprintf("minute %d", i), "firing leak device=m1")
				} else {
					h.expectNotified(fmt.Sprintf("minute %d", i))
				}
			}
			a := h.alert(id)
			if !a.ActiveAt.Equal(at(0)) || !a.FiredAt.Equal(at(tc.firesAt)) {
				t.Errorf("active at %s fired at %s, want %s and %s", a.ActiveAt, a.FiredAt, at(0), at(tc.firesAt))
			}
			// The evidence follows the last evaluation.
			last := 0.4 + float64(tc.firesAt+2)/100
			if a.Value != last || a.Evidence.Value != last || a.Summary != fmt.Sprintf("valeur %g", last) {
				t.Errorf("evidence not current: value %g, evidence %+v, summary %q", a.Value, a.Evidence, a.Summary)
			}
			if got := kinds(a.History); !slices.Equal(got, []EventKind{EventPending, EventFiring}) {
				t.Errorf("history %v", got)
			}
		})
	}
}

func TestPendingClearedNeverFires(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "leak", For: 10 * time.Minute}
	id := Fingerprint("leak", map[string]string{"device": "m1"})
	for i := range 4 {
		h.update(at(i), spec, cond(1, "device", "m1"))
	}
	h.update(at(4), spec) // cleared
	for i := 5; i < 30; i++ {
		h.update(at(i), spec)
	}
	h.expectNotified("cleared while pending")
	if _, err := h.m.Alert(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped pending alert: got %v, want ErrNotFound", err)
	}
	list, err := h.m.Alerts(context.Background(), Filter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("alerts: %v %v, want none", list, err)
	}
	hist, err := h.store.history(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(hist); !slices.Equal(got, []EventKind{EventPending, EventInactive}) {
		t.Errorf("history %v, want pending, inactive", got)
	}

	// A resolved alert that comes back but clears before `for` returns to its resolved occurrence.
	spec.For = 0
	h.update(at(40), spec, cond(1, "device", "m1"))
	h.update(at(41), spec)
	h.expectNotified("fired and resolved", "firing leak device=m1", "resolved leak device=m1")
	spec.For = 10 * time.Minute
	h.update(at(50), spec, cond(2, "device", "m1"))
	if a := h.alert(id); a.State != hv.AlertPending || !a.ActiveAt.Equal(at(50)) || !a.FiredAt.IsZero() {
		t.Fatalf("back: %+v, want pending since 50", a.Alert)
	}
	h.update(at(51), spec)
	a := h.alert(id)
	if a.State != hv.AlertResolved || !a.ActiveAt.Equal(at(40)) || !a.FiredAt.Equal(at(40)) || !a.ResolvedAt.Equal(at(41)) {
		t.Fatalf("after a pending blip: %+v, want the occurrence 40–41 resolved", a.Alert)
	}
	h.expectNotified("pending blip")
}

func TestKeepFiringFor(t *testing.T) {
	h := newHarness(t, Options{FlapCount: -1}, nil)
	spec := RuleSpec{Name: "night", KeepFiringFor: 10 * time.Minute}
	id := Fingerprint("night", map[string]string{"site": "s1"})
	h.update(at(0), spec, cond(5, "site", "s1"))
	h.expectNotified("fire", "firing night site=s1")
	// Absent from 1; back at 5 (before 1+10): the hold starts again from the next absence, 6.
	for i := 1; i <= 4; i++ {
		h.update(at(i), spec)
	}
	h.update(at(5), spec, cond(6, "site", "s1"))
	for i := 6; i < 16; i++ {
		h.update(at(i), spec)
		if a := h.alert(id); a.State != hv.AlertFiring {
			t.Fatalf("minute %d: %s, want still firing (absent since 6, keep_firing_for 10m)", i, a.State)
		}
	}
	h.expectNotified("kept firing")
	h.update(at(16), spec)
	a := h.alert(id)
	if a.State != hv.AlertResolved || !a.ResolvedAt.Equal(at(16)) {
		t.Fatalf("minute 16: %s resolved at %s, want resolved at 16", a.State, a.ResolvedAt)
	}
	h.expectNotified("resolve", "resolved night site=s1")
	h.update(at(17), spec)
	h.expectNotified("once resolved")
}

func TestAcknowledge(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "leak"}
	id := Fingerprint("leak", map[string]string{"device": "m1"})
	h.update(at(0), spec, cond(1, "device", "m1"))

	if _, err := h.m.Acknowledge(ctx, id, "", "x", at(1)); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("ack without user: %v, want ErrInvalid", err)
	}
	if _, err := h.m.Acknowledge(ctx, "0123456789abcdef", "paul", "", at(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ack of an unknown alert: %v, want ErrNotFound", err)
	}
	if _, err := h.m.Acknowledge(ctx, "nope", "paul", "", at(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ack of a malformed id: %v, want ErrNotFound", err)
	}
	a, err := h.m.Acknowledge(ctx, id, "paul", "vanne fermée, plombier prévenu", at(2))
	if err != nil {
		t.Fatal(err)
	}
	want := Ack{By: "paul", Comment: "vanne fermée, plombier prévenu", At: at(2)}
	if a.State != hv.AlertFiring || a.Acknowledged == nil || *a.Acknowledged != want {
		t.Fatalf("after ack: %s %+v", a.State, a.Acknowledged)
	}
	h.update(at(3), spec, cond(1, "device", "m1"))
	h.expectNotified("ack", "firing leak device=m1") // only the original firing
	// The acknowledgement survives a restart.
	h.restart()
	a = h.alert(id)
	if a.Acknowledged == nil || *a.Acknowledged != want {
		t.Fatalf("after restart: ack %+v, want %+v", a.Acknowledged, want)
	}
	// Resolution clears it, the ack log keeps it.
	h.update(at(4), spec)
	a = h.alert(id)
	if a.State != hv.AlertResolved || a.Acknowledged != nil {
		t.Fatalf("resolved: %s ack %+v, want resolved without ack", a.State, a.Acknowledged)
	}
	if got := kinds(a.History); !slices.Equal(got, []EventKind{EventPending, EventFiring, EventAcknowledged, EventResolved}) {
		t.Errorf("history %v", got)
	}
	var n int
	if err := h.store.db.QueryRow(`SELECT count(*) FROM acks WHERE fingerprint = ? AND by_user = 'paul'`, id).Scan(&n); err != nil || n != 1 {
		t.Errorf("acks table: %d rows (%v), want 1", n, err)
	}
	if _, err := h.m.Acknowledge(ctx, id, "paul", "", at(5)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ack of a resolved alert: %v, want ErrNotFound", err)
	}
}

func TestSilence(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "leak", For: 5 * time.Minute}
	laon := cond(1, "device", "m1", "site", "mairie-laon", "epci", "200043495")
	soissons := cond(1, "device", "m2", "site", "ecole-soissons", "epci", "200071892")
	idLaon := Fingerprint("leak", laon.Labels)

	for _, tc := range []struct {
		name string
		s    Silence
	}{
		{"no matcher", Silence{To: at(60), By: "paul"}},
		{"empty value", Silence{Matchers: map[string]string{"site": ""}, To: at(60), By: "paul"}},
		{"no author", Silence{Matchers: map[string]string{"site": "x"}, To: at(60)}},
		{"end before start", Silence{Matchers: map[string]string{"site": "x"}, From: at(30), To: at(20), By: "paul"}},
		{"already over", Silence{Matchers: map[string]string{"site": "x"}, From: at(-60), To: at(-1), By: "paul"}},
	} {
		if _, err := h.m.AddSilence(ctx, tc.s, at(0)); !errors.Is(err, hv.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}

	// A maintenance window at the Laon town hall from 10 to 40.
	s, err := h.m.AddSilence(ctx, Silence{
		Matchers: map[string]string{"site": "mairie-laon", "rule": "leak"},
		From:     at(10), To: at(40), By: "paul", Comment: "remplacement du compteur",
	}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.m.Silences(at(0)); len(got) != 1 || got[0].ID != s.ID || !got[0].From.Equal(at(10)) {
		t.Fatalf("silences %+v", got)
	}
	for i := 0; i <= 45; i++ {
		h.update(at(i), spec, laon, soissons)
		switch i {
		case 5:
			// Before the window: both fire.
			h.expectNotified("minute 5", "firing leak device=m1,epci=200043495,site=mairie-laon",
				"firing leak device=m2,epci=200071892,site=ecole-soissons")
		case 40:
			h.expectNotified("silence over") // already notified at 5: no second firing
		default:
			h.expectNotified(fmt.Sprintf("minute %d", i))
		}
		if a := h.alert(idLaon); (i >= 10 && i < 40) != (len(a.SilencedBy) == 1) {
			t.Fatalf("minute %d: silenced by %v", i, a.SilencedBy)
		}
	}
	if got := h.m.Silences(at(45)); len(got) != 0 {
		t.Errorf("silences at 45: %+v, want none", got)
	}

	// Resolved during the silence after being notified: the resolution is notified (it closes the firing).
	// A new occurrence that fires during a silence is notified when the silence ends, early by expiry.
	s2, err := h.m.AddSilence(ctx, Silence{Matchers: map[string]string{"epci": "200043495"}, To: at(120), By: "marie"}, at(50))
	if err != nil {
		t.Fatal(err)
	}
	h.update(at(51), spec, soissons)
	h.expectNotified("resolved while silenced", "resolved leak device=m1,epci=200043495,site=mairie-laon")
	for i := 52; i <= 60; i++ {
		h.update(at(i), spec, laon, soissons)
	}
	h.expectNotified("fires while silenced")
	if a := h.alert(idLaon); a.State != hv.AlertFiring || !slices.Equal(a.SilencedBy, []string{s2.ID}) {
		t.Fatalf("minute 60: %s silenced by %v", a.State, a.SilencedBy)
	}
	if err := h.m.ExpireSilence(ctx, s2.ID, at(61)); err != nil {
		t.Fatal(err)
	}
	h.expectNotified("silence expired", "firing leak device=m1,epci=200043495,site=mairie-laon")
	if err := h.m.ExpireSilence(ctx, s2.ID, at(62)); err != nil {
		t.Errorf("expiring again: %v, want nil", err)
	}
	if err := h.m.ExpireSilence(ctx, "999", at(62)); !errors.Is(err, ErrNotFound) {
		t.Errorf("expiring an unknown silence: %v, want ErrNotFound", err)
	}
	hist := kinds(h.alert(idLaon).History)
	if !slices.Contains(hist, EventSilenced) || !slices.Contains(hist, EventUnsilenced) {
		t.Errorf("history %v lacks silenced/unsilenced", hist)
	}

	// Silences survive a restart; the expired one keeps its shortened end.
	s3, err := h.m.AddSilence(ctx, Silence{Matchers: map[string]string{"device": "m9"}, From: at(100), To: at(200), By: "paul"}, at(62))
	if err != nil {
		t.Fatal(err)
	}
	h.restart()
	got := h.m.Silences(at(62))
	if len(got) != 1 || got[0].ID != s3.ID || !got[0].To.Equal(at(200)) || got[0].Matchers["device"] != "m9" {
		t.Fatalf("silences after restart: %+v", got)
	}
}

func TestSilenceEndsNaturally(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "peak", For: 5 * time.Minute}
	c := cond(90, "device", "m1", "site", "gymnase")
	if _, err := h.m.AddSilence(context.Background(), Silence{Matchers: map[string]string{"site": "gymnase"},
		To: at(30), By: "marie", Comment: "match de handball"}, at(0)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		h.update(at(i), spec, c)
	}
	h.expectNotified("during the silence")
	if a := h.alert(Fingerprint("peak", c.Labels)); a.State != hv.AlertFiring || len(a.SilencedBy) != 1 {
		t.Fatalf("minute 29: %s silenced by %v", a.State, a.SilencedBy)
	}
	h.update(at(30), spec, c)
	h.expectNotified("silence over, still firing", "firing peak device=m1,site=gymnase")
	h.update(at(31), spec, c)
	h.expectNotified("once")
}

func TestNotANumber(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	c := cond(math.NaN(), "device", "m1")
	c.Evidence.Baseline = math.Inf(1)
	h.update(at(0), RuleSpec{Name: "peak"}, c)
	h.restart()
	a := h.alert(Fingerprint("peak", c.Labels))
	if _, err := json.Marshal(a); err != nil {
		t.Fatalf("alert with NaN value: %v", err)
	}
}

func TestLookupTopology(t *testing.T) {
	devices := map[string]*hv.Device{"l1": {ID: "l1", Site: "armoire-3"}}
	topo := LookupTopology(func(id string) (*hv.Device, *hv.Site, bool) {
		d, ok := devices[id]
		return d, &hv.Site{ID: "armoire-3"}, ok
	})
	if s, ok := topo.Parent("l1"); !ok || s != "armoire-3" {
		t.Errorf("l1: %q %v", s, ok)
	}
	if _, ok := topo.Parent("l9"); ok {
		t.Error("unknown device has a parent")
	}
}

// pairs is a Topology from device → site pairs.
func pairs(kv ...string) TopologyFunc {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(d string) (string, bool) { s, ok := m[d]; return s, ok }
}

func TestTopologySuppression(t *testing.T) {
	topo := pairs("m1", "mairie", "m2", "mairie", "l1", "armoire", "l2", "armoire", "m3", "ecole")
	h := newHarness(t, Options{SilenceRules: []string{"silence"}}, topo)
	silence := RuleSpec{Name: "silence", Severity: hv.SeverityWarning}
	leak := RuleSpec{Name: "leak", Severity: hv.SeverityCritical}
	siteDown := cond(3600, "site", "mairie")
	idLeakM1 := Fingerprint("leak", map[string]string{"device": "m1"})

	// The town hall goes silent; then m1's leak rule fires (on data received before the loss): suppressed.
	h.update(at(0), silence, siteDown)
	h.expectNotified("site silent", "firing silence site=mairie")
	h.update(at(1), leak, cond(1, "device", "m1"), cond(1, "device", "m3"))
	h.expectNotified("leak under a silent site", "firing leak device=m3")
	a := h.alert(idLeakM1)
	if a.State != hv.AlertFiring || a.SuppressedBy != Fingerprint("silence", siteDown.Labels) {
		t.Fatalf("m1 leak: %s suppressed by %q", a.State, a.SuppressedBy)
	}
	if a := h.alert(Fingerprint("leak", map[string]string{"device": "m3"})); a.SuppressedBy != "" {
		t.Errorf("m3 (another site) suppressed by %q", a.SuppressedBy)
	}
	// The site speaks again: its silence alert resolves and m1's leak, still firing, is notified now.
	h.update(at(2), silence)
	h.expectNotified("site back", "firing leak device=m1", "resolved silence site=mairie")
	if a := h.alert(idLeakM1); a.SuppressedBy != "" {
		t.Errorf("after resolution: suppressed by %q", a.SuppressedBy)
	}
	hist := kinds(h.alert(idLeakM1).History)
	if !slices.Equal(hist, []EventKind{EventPending, EventFiring, EventSuppressed, EventUnsuppressed}) {
		t.Errorf("history %v", hist)
	}

	// A silent cabinet: one alert, not one per luminaire; its luminaires' silence alerts are suppressed.
	h.update(at(3), silence, cond(3600, "site", "armoire"), cond(3600, "device", "l1"), cond(3600, "device", "l2"))
	h.expectNotified("cabinet silent", "firing silence site=armoire")
	list, err := h.m.Alerts(context.Background(), Filter{Rule: "silence", State: hv.AlertFiring})
	if err != nil {
		t.Fatal(err)
	}
	var suppressed int
	for _, a := range list {
		if a.SuppressedBy != "" {
			suppressed++
		}
	}
	if len(list) != 3 || suppressed != 2 {
		t.Errorf("cabinet: %d firing, %d suppressed, want 3 and 2", len(list), suppressed)
	}
	// A silent device suppresses its own other alerts, not another device's.
	h.update(at(4), silence, cond(3600, "site", "armoire"), cond(3600, "device", "l1"), cond(3600, "device", "l2"),
		cond(3600, "device", "m3"))
	h.update(at(5), leak, cond(1, "device", "m1"), cond(1, "device", "m3"))
	if a := h.alert(Fingerprint("leak", map[string]string{"device": "m3"})); a.SuppressedBy != Fingerprint("silence", map[string]string{"device": "m3"}) {
		t.Errorf("m3 leak under m3 silent: suppressed by %q", a.SuppressedBy)
	}
	if a := h.alert(idLeakM1); a.SuppressedBy != "" {
		t.Errorf("m1 leak: suppressed by %q", a.SuppressedBy)
	}
	h.expectNotified("device silent", "firing silence device=m3")
}

func TestFlapDamping(t *testing.T) {
	blink := func(h *harness, spec RuleSpec, from, to int) {
		for i := from; i < to; i++ {
			if i%2 == 0 {
				h.update(at(i), spec, cond(1, "device", "m1"))
			} else {
				h.update(at(i), spec)
			}
		}
	}
	spec := RuleSpec{Name: "door"}
	id := Fingerprint("door", map[string]string{"device": "m1"})

	t.Run("damped", func(t *testing.T) {
		h := newHarness(t, Options{}, nil) // 3 transitions within 1 h
		blink(h, spec, 0, 20)
		// Fired at 0, resolved at 1, fired at 2: flapping, held from then on.
		h.expectNotified("blinking", "firing door device=m1", "resolved door device=m1", "firing door device=m1")
		a := h.alert(id)
		if a.State != hv.AlertFiring || !a.Flapping {
			t.Fatalf("blinking: %s flapping=%v", a.State, a.Flapping)
		}
		// Last seen at 18, absent since 19: resolved at 19 + 1 h, once.
		for i := 20; i < 79; i++ {
			h.update(at(i), spec)
		}
		h.expectNotified("held")
		h.update(at(79), spec)
		h.expectNotified("quiet for the window", "resolved door device=m1")
		if a := h.alert(id); a.State != hv.AlertResolved || a.Flapping {
			t.Fatalf("after quiet: %s flapping=%v", a.State, a.Flapping)
		}
		// Transitions have aged out: the next occurrence is an ordinary one.
		h.update(at(200), spec, cond(1, "device", "m1"))
		h.update(at(201), spec)
		h.expectNotified("later", "firing door device=m1", "resolved door device=m1")
		if hist := kinds(h.alert(id).History); !slices.Contains(hist, EventFlapping) {
			t.Errorf("history %v lacks flapping", hist)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		h := newHarness(t, Options{FlapCount: -1}, nil)
		blink(h, spec, 0, 20)
		if got := h.rec.take(); len(got) != 20 {
			t.Fatalf("without damping: %d notifications, want 20", len(got))
		}
	})
	t.Run("slow changes are not flapping", func(t *testing.T) {
		h := newHarness(t, Options{}, nil)
		for _, i := range []int{0, 70, 140, 210} { // a transition every 35 minutes: 2 per hour
			h.update(at(i), spec, cond(1, "device", "m1"))
			h.update(at(i+35), spec)
		}
		if got := h.rec.take(); len(got) != 8 {
			t.Fatalf("%d notifications, want 8: %q", len(got), got)
		}
	})
}

func TestRestart(t *testing.T) {
	spec := RuleSpec{Name: "leak", For: 10 * time.Minute, KeepFiringFor: 10 * time.Minute}
	c := cond(1, "device", "m1")
	id := Fingerprint("leak", c.Labels)

	t.Run("for progress kept", func(t *testing.T) {
		h := newHarness(t, Options{}, nil)
		for i := 0; i <= 3; i++ {
			h.update(at(i), spec, c)
		}
		h.restart()
		for i := 4; i < 10; i++ {
			h.update(at(i), spec, c)
		}
		h.expectNotified("still pending after restart")
		h.update(at(10), spec, c)
		h.expectNotified("fires at ActiveAt + for", "firing leak device=m1")
		if a := h.alert(id); !a.FiredAt.Equal(at(10)) || !a.ActiveAt.Equal(at(0)) {
			t.Fatalf("active %s fired %s", a.ActiveAt, a.FiredAt)
		}
	})
	t.Run("down past for", func(t *testing.T) {
		h := newHarness(t, Options{}, nil)
		h.update(at(0), spec, c)
		h.restart()
		h.update(at(15), spec, c) // first evaluation after 15 minutes down: `for` already elapsed
		h.expectNotified("first evaluation", "firing leak device=m1")
	})
	t.Run("firing not re-notified", func(t *testing.T) {
		h := newHarness(t, Options{}, nil)
		h.update(at(0), spec, c)
		h.update(at(10), spec, c)
		h.expectNotified("fire", "firing leak device=m1")
		h.restart()
		for i := 11; i < 20; i++ {
			h.update(at(i), spec, c)
		}
		h.expectNotified("after restart")
		if a := h.alert(id); a.State != hv.AlertFiring || !a.FiredAt.Equal(at(10)) {
			t.Fatalf("%s fired at %s", a.State, a.FiredAt)
		}
	})
	t.Run("keep_firing_for progress kept", func(t *testing.T) {
		h := newHarness(t, Options{}, nil)
		h.update(at(0), spec, c)
		h.update(at(10), spec, c)
		h.update(at(11), spec) // absent since 11: resolves at 21
		h.restart()
		h.update(at(20), spec)
		h.expectNotified("held")
		h.update(at(21), spec)
		h.expectNotified("resolved 10 minutes after it cleared", "resolved leak device=m1")
		if a := h.alert(id); !a.ResolvedAt.Equal(at(21)) {
			t.Fatalf("resolved at %s, want 21", a.ResolvedAt)
		}
	})
}

func TestRemoveRule(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "old", For: 10 * time.Minute, KeepFiringFor: time.Hour}
	h.update(at(0), spec, cond(1, "device", "m1"))
	h.update(at(10), spec, cond(1, "device", "m1"), cond(1, "device", "m2"))
	h.expectNotified("fire", "firing old device=m1")
	h.restart() // the rule is gone from the configuration after the restart
	if got := h.m.Rules(); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("rules %v", got)
	}
	if err := h.m.RemoveRule(ctx, at(20), "old"); err != nil {
		t.Fatal(err)
	}
	h.expectNotified("removed", "resolved old device=m1")
	if got := h.m.Rules(); len(got) != 0 {
		t.Errorf("rules after removal %v", got)
	}
	if a := h.alert(Fingerprint("old", map[string]string{"device": "m1"})); a.State != hv.AlertResolved || !a.ResolvedAt.Equal(at(20)) {
		t.Errorf("m1: %s at %s", a.State, a.ResolvedAt)
	}
	if _, err := h.m.Alert(ctx, Fingerprint("old", map[string]string{"device": "m2"})); !errors.Is(err, ErrNotFound) {
		t.Errorf("pending m2: %v, want dropped", err)
	}
	if err := h.m.RemoveRule(ctx, at(21), "never"); err != nil {
		t.Errorf("unknown rule: %v", err)
	}
}

func TestNotifyFailureRetried(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "leak"}
	h.rec.fail = 1
	err := h.m.Update(context.Background(), at(0), spec, []Condition{cond(1, "device", "m1")})
	if err == nil || !strings.Contains(err.Error(), "webhook down") {
		t.Fatalf("update with the notifier down: %v", err)
	}
	h.expectNotified("failed")
	h.update(at(1), spec, cond(1, "device", "m1"))
	h.expectNotified("retried", "firing leak device=m1")
	h.update(at(2), spec, cond(1, "device", "m1"))
	h.expectNotified("once delivered")
}

func TestUpdateInvalidSpec(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	for _, tc := range []struct {
		name string
		spec RuleSpec
	}{
		{"no name", RuleSpec{}},
		{"negative for", RuleSpec{Name: "x", For: -time.Minute}},
		{"negative keep_firing_for", RuleSpec{Name: "x", KeepFiringFor: -time.Minute}},
		{"unknown severity", RuleSpec{Name: "x", Severity: "urgent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.m.Update(context.Background(), at(0), tc.spec, nil); !errors.Is(err, hv.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint("leak", map[string]string{"device": "m1", "site": "s1"})
	for _, tc := range []struct {
		name   string
		rule   string
		labels map[string]string
		same   bool
	}{
		{"same labels", "leak", map[string]string{"site": "s1", "device": "m1"}, true},
		{"other rule", "peak", map[string]string{"device": "m1", "site": "s1"}, false},
		{"other value", "leak", map[string]string{"device": "m2", "site": "s1"}, false},
		{"shifted boundary", "leak", map[string]string{"device": "m1s", "ite": "1"}, false},
		{"fewer labels", "leak", map[string]string{"device": "m1"}, false},
	} {
		if got := Fingerprint(tc.rule, tc.labels); (got == a) != tc.same || len(got) != 16 {
			t.Errorf("%s: %s vs %s", tc.name, got, a)
		}
	}
}

func TestAlertsFilter(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Options{}, nil)
	leak := RuleSpec{Name: "leak", Severity: hv.SeverityCritical}
	peak := RuleSpec{Name: "peak", Severity: hv.SeverityWarning}
	laon := cond(1, "device", "m1", "epci", "200043495")
	soissons := cond(1, "device", "m2", "epci", "200071892")
	h.update(at(0), leak, laon, soissons)
	h.update(at(0), peak, laon)
	h.update(at(1), leak, soissons) // laon's leak resolves
	for _, tc := range []struct {
		name string
		f    Filter
		want []string // rule/device, in order
	}{
		{"all", Filter{}, []string{"leak/m2", "peak/m1", "leak/m1"}},
		{"firing", Filter{State: hv.AlertFiring}, []string{"leak/m2", "peak/m1"}},
		{"resolved", Filter{State: hv.AlertResolved}, []string{"leak/m1"}},
		{"critical", Filter{Severity: hv.SeverityCritical}, []string{"leak/m2", "leak/m1"}},
		{"rule", Filter{Rule: "peak"}, []string{"peak/m1"}},
		{"pilote of Laon", Filter{EPCI: []string{"200043495"}}, []string{"peak/m1", "leak/m1"}},
		{"pilote without EPCI", Filter{EPCI: []string{}}, nil},
		{"labels", Filter{Labels: map[string]string{"device": "m1"}}, []string{"peak/m1", "leak/m1"}},
		{"limit applies to resolved", Filter{State: hv.AlertResolved, Limit: 1}, []string{"leak/m1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := h.m.Alerts(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range list {
				got = append(got, a.Rule+"/"+a.Labels["device"])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConcurrentRules(t *testing.T) {
	h := newHarness(t, Options{SilenceRules: []string{"silence"}}, pairs("m1", "s1", "m2", "s1"))
	var wg sync.WaitGroup
	for _, name := range []string{"leak", "silence"} {
		wg.Go(func() {
			spec := RuleSpec{Name: name, For: 2 * time.Minute}
			for i := range 200 {
				var conds []Condition
				if i%7 < 4 {
					conds = []Condition{cond(float64(i), "device", "m1"), cond(float64(i), "device", "m2"), cond(1, "site", "s1")}
				}
				if err := h.m.Update(context.Background(), at(i), spec, conds); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if _, err := h.m.Alerts(context.Background(), Filter{}); err != nil {
				t.Error(err)
				return
			}
			h.m.Silences(at(0))
		}
	})
	wg.Go(func() {
		for i := range 20 {
			if _, err := h.m.AddSilence(context.Background(), Silence{Matchers: map[string]string{"device": "m2"},
				From: at(i * 10), To: at(i*10 + 5), By: "paul"}, at(0)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	// Every delivered notification alternates firing/resolved per alert: no duplicate.
	last := map[string]hv.AlertState{}
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	for _, a := range h.rec.got {
		if last[a.Fingerprint] == a.State {
			t.Fatalf("alert %s %v notified %s twice in a row", a.Rule, a.Labels, a.State)
		}
		last[a.Fingerprint] = a.State
	}
}

// BenchmarkManagerUpdate is one evaluation of a rule holding 6 000 conditions, all already firing (the
// steady state of a département-wide rule), one simulated minute apart.
func BenchmarkManagerUpdate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every time.Duration
	}{
		{"evidence-every-eval", -1},
		{"evidence-every-5m", 0},              // the default: one evaluation in five writes 6 000 evidence rows
		{"no-evidence-write", 24 * time.Hour}, // the in-memory lifecycle alone
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(b, Options{EvidenceEvery: bc.every, SilenceRules: []string{"silence"}}, nil)
			h.rec = nil
			conds := make([]Condition, 6000)
			for i := range conds {
				conds[i] = cond(1, "device", fmt.Sprintf("m%05d", i), "site", fmt.Sprintf("s%04d", i/3),
					"commune", "02408", "epci", "200043495", "fluid", "water")
			}
			spec := RuleSpec{Name: "leak", Severity: hv.SeverityCritical}
			h.update(at(0), spec, conds...)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				for j := range conds {
					conds[j].Value = float64(i)
					conds[j].Evidence.Value = float64(i)
				}
				if err := h.m.Update(ctx, at(i), spec, conds); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
