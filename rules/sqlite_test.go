package rules

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

func openStore(t *testing.T, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "state.db") // the directory is created
	s := openStore(t, path)
	var mode string
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q (%v), want wal", mode, err)
	}
	var version int
	if err := s.db.QueryRow(`SELECT version FROM schema_version WHERE component = 'rules'`).Scan(&version); err != nil || version != 1 {
		t.Fatalf("schema version %d (%v), want 1", version, err)
	}
	if _, err := s.insertSilence(context.Background(), &Silence{Matchers: map[string]string{"site": "x"}, From: at(0), To: at(10), By: "paul"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopening applies nothing again and keeps the data.
	s = openStore(t, path)
	list, err := s.loadSilences(context.Background())
	if err != nil || len(list) != 1 || list[0].Matchers["site"] != "x" {
		t.Fatalf("after reopen: %+v %v", list, err)
	}

	for _, bad := range []string{"", "state.db?mode=ro", "a#b"} {
		if _, err := OpenSQLite(bad); err == nil {
			t.Errorf("OpenSQLite(%q): no error", bad)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	firing := alertRow{
		Fingerprint: Fingerprint("leak", map[string]string{"device": "m1", "epci": "200043495"}),
		Rule:        "leak",
		Labels:      map[string]string{"device": "m1", "epci": "200043495"},
		Severity:    hv.SeverityCritical,
		State:       hv.AlertFiring,
		Summary:     "Fuite probable : débit nocturne 0,42 m³/h",
		Value:       math.NaN(),
		Evidence:    Evidence{Metric: hv.FlowM3h, Device: "m1", From: at(-60), To: at(0), Value: 0.42, Baseline: math.Inf(1), Threshold: 0.1},
		ActiveAt:    at(-10),
		FiredAt:     at(0),
		LastSeen:    at(5),
		ClearedAt:   at(6),
		Notified:    hv.AlertFiring,
		Flaps:       []time.Time{at(-30), at(-20), at(0)},
		Flapping:    true,
		Ack:         &Ack{By: "paul", Comment: "vu", At: at(2)},
	}
	pending := alertRow{
		Fingerprint: Fingerprint("peak", map[string]string{"site": "s1"}),
		Rule:        "peak",
		Labels:      map[string]string{"site": "s1"},
		Severity:    hv.SeverityInfo,
		State:       hv.AlertPending,
		Value:       3,
		ActiveAt:    at(4),
		Prev:        occurrence{at(-100), at(-90), at(-80)},
	}
	events := []eventRow{{fp: firing.Fingerprint, ev: Event{At: at(0), Kind: EventFiring, Value: math.NaN()}}}
	if err := s.save(ctx, []*alertRow{&firing, &pending}, nil, nil, events, events); err != nil {
		t.Fatal(err)
	}
	rows, err := s.loadAlerts(ctx, time.Hour)
	if err != nil || len(rows) != 2 {
		t.Fatalf("load: %d rows, %v", len(rows), err)
	}
	byFP := map[string]alertRow{rows[0].Fingerprint: rows[0], rows[1].Fingerprint: rows[1]}
	got := byFP[firing.Fingerprint]
	if !math.IsNaN(got.Value) {
		t.Errorf("NaN value stored as %g", got.Value)
	}
	want := firing
	want.Value, got.Value = 0, 0
	want.Evidence.Baseline = 0 // JSON has no infinity
	if !reflect.DeepEqual(got, want) {
		t.Errorf("firing round trip:\n got %+v\nwant %+v", got, want)
	}
	if got := byFP[pending.Fingerprint]; !reflect.DeepEqual(got, pending) {
		t.Errorf("pending round trip:\n got %+v\nwant %+v", got, pending)
	}
	hist, err := s.history(ctx, firing.Fingerprint)
	if err != nil || len(hist) != 1 || hist[0].Kind != EventFiring || hist[0].Value != 0 {
		t.Errorf("history %+v %v", hist, err)
	}

	// The evidence-only write touches nothing else.
	firing.Summary, firing.Value, firing.LastSeen, firing.State = "nouveau", 7, at(9), hv.AlertResolved
	if err := s.save(ctx, nil, []*alertRow{&firing}, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.alert(ctx, firing.Fingerprint)
	if err != nil || !ok || got.Summary != "nouveau" || got.Value != 7 || !got.LastSeen.Equal(at(9)) || got.State != hv.AlertFiring {
		t.Errorf("after an evidence write: %+v %v", got, err)
	}

	// Deletion, and loading skips alerts resolved long before the newest activity.
	old := pending
	old.Fingerprint, old.State, old.ResolvedAt = Fingerprint("old", nil), hv.AlertResolved, at(-200)
	if err := s.save(ctx, []*alertRow{&old}, nil, map[string]struct{}{pending.Fingerprint: {}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	rows, err = s.loadAlerts(ctx, time.Hour)
	if err != nil || len(rows) != 1 || rows[0].Fingerprint != firing.Fingerprint {
		t.Errorf("after delete: %d rows %v", len(rows), err)
	}
	if occ, ok, err := s.resolvedOccurrence(ctx, old.Fingerprint); err != nil || !ok || !occ.ResolvedAt.Equal(at(-200)) {
		t.Errorf("resolved occurrence %+v %v %v", occ, ok, err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Options{}, nil)
	spec := RuleSpec{Name: "leak"}
	h.update(at(0), spec, cond(1, "device", "m1"))
	h.update(at(1), spec)
	h.update(at(100), spec, cond(1, "device", "m2"))
	if _, err := h.m.AddSilence(ctx, Silence{Matchers: map[string]string{"device": "m1"}, To: at(10), By: "paul"}, at(0)); err != nil {
		t.Fatal(err)
	}
	n, err := h.store.Prune(ctx, at(50))
	if err != nil {
		t.Fatal(err)
	}
	// m1: its row and 3 events (pending, firing, resolved); the silence. m2 is untouched.
	if n != 5 {
		t.Errorf("pruned %d rows, want 5", n)
	}
	list, err := h.m.Alerts(ctx, Filter{State: hv.AlertResolved})
	if err != nil || len(list) != 0 {
		t.Errorf("resolved after prune: %v %v", list, err)
	}
	if a := h.alert(Fingerprint("leak", map[string]string{"device": "m2"})); len(a.History) != 2 {
		t.Errorf("m2 history %v", a.History)
	}
}

// Two stores on one file (two components, or a restart overlapping the old process) write concurrently:
// WAL and BEGIN IMMEDIATE make the second wait for the first rather than fail.
func TestSQLiteConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	stores := []*SQLite{openStore(t, path), openStore(t, path)}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for j := range 50 {
				row := alertRow{Fingerprint: Fingerprint("r", map[string]string{"i": string(rune('a' + i)), "j": string(rune('a' + j))}),
					Rule: "r", State: hv.AlertPending, Severity: hv.SeverityInfo, ActiveAt: at(j)}
				ev := []eventRow{{fp: row.Fingerprint, ev: Event{At: at(j), Kind: EventPending}}}
				if err := s.save(context.Background(), []*alertRow{&row}, nil, nil, ev, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var n int
	if err := stores[0].db.QueryRow(`SELECT count(*) FROM alerts`).Scan(&n); err != nil || n != 100 {
		t.Errorf("%d alerts (%v), want 100", n, err)
	}
}
