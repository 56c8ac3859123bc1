package rules

import (
	"context"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

func TestCounter(t *testing.T) {
	reg := testRegistry(t)
	r, err := NewCounter(RuleConfig{Name: "index"}, DefaultCounterConfig(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(device string, at time.Time, f hv.CounterFlag) hv.Reading {
		return regReading(reg, device, hv.CounterEvent, at, float64(f))
	}
	// Clean: no event, or a FlagNone, or events of unknown devices.
	r.Observe([]hv.Reading{ev("elec-mairie", ruleNow, hv.FlagNone), {Device: "inconnu", Metric: hv.CounterEvent, Value: 1, Time: ruleNow.UnixMilli()}})
	if cs := evalRule(t, r, ruleNow, nil); len(cs) != 0 {
		t.Fatalf("clean: got %v", cs)
	}
	at := ruleNow.Add(-2 * time.Hour)
	r.Observe([]hv.Reading{ev("gaz-mairie", at, hv.FlagReset)})
	cs := evalRule(t, r, ruleNow, nil)
	if len(cs) != 1 {
		t.Fatalf("reset: got %d conditions", len(cs))
	}
	wantLabels(t, cs[0], laonLabels("gaz-mairie", "mairie-laon", hv.Gas))
	if want := (Evidence{Metric: hv.CounterEvent, Device: "gaz-mairie", From: at.UTC(), To: at.UTC(), Value: 1}); cs[0].Evidence != want {
		t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
	}
	if want := "Index remis à zéro le 15/01 à 10:00 (compteur remplacé ou réinitialisé)"; cs[0].Summary != want {
		t.Errorf("summary: got %q", cs[0].Summary)
	}
	// A jump an hour later, then the same event again (a redelivery): two events, the jump last.
	r.Observe([]hv.Reading{ev("gaz-mairie", at.Add(time.Hour), hv.FlagJump), ev("gaz-mairie", at.Add(time.Hour), hv.FlagJump)})
	cs = evalRule(t, r, ruleNow, nil)
	if len(cs) != 1 || cs[0].Value != float64(hv.FlagJump) || !strings.Contains(cs[0].Summary, "2 événements") {
		t.Fatalf("jump: got %+v", cs)
	}
	// The condition lasts Hold after the last event.
	if cs := evalRule(t, r, at.Add(time.Hour+24*time.Hour), nil); len(cs) != 1 {
		t.Errorf("at the end of hold: got %d conditions, want 1", len(cs))
	}
	if cs := evalRule(t, r, at.Add(time.Hour+24*time.Hour+time.Minute), nil); len(cs) != 0 {
		t.Errorf("after hold: got %v", cs)
	}
}

func TestCounterFlags(t *testing.T) {
	reg := testRegistry(t)
	r, err := NewCounter(RuleConfig{Name: "sauts"}, CounterConfig{Flags: []string{"jump"}, Hold: time.Hour}, reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Observe([]hv.Reading{regReading(reg, "elec-mairie", hv.CounterEvent, ruleNow, float64(hv.FlagRollover))})
	if cs := evalRule(t, r, ruleNow, nil); len(cs) != 0 {
		t.Fatalf("rollover not watched: got %v", cs)
	}
	r.Observe([]hv.Reading{regReading(reg, "elec-mairie", hv.CounterEvent, ruleNow, float64(hv.FlagJump))})
	if cs := evalRule(t, r, ruleNow, nil); len(cs) != 1 || !strings.HasPrefix(cs[0].Summary, "Saut d'index invraisemblable") {
		t.Fatalf("jump: got %v", cs)
	}
}

// TestCounterClockSkew: ingest's clock_skew events raise the counter rule like index anomalies, with their own
// summary.
func TestCounterClockSkew(t *testing.T) {
	r, err := NewCounter(RuleConfig{Name: "horloge", Scope: Scope{Devices: []string{"elec-mairie"}}},
		CounterConfig{Flags: []string{"clock_skew"}, Hold: time.Hour}, testReg)
	if err != nil {
		t.Fatal(err)
	}
	at := ruleNow.Add(-10 * time.Minute).UnixMilli()
	r.Observe([]hv.Reading{
		{Device: "elec-mairie", Metric: hv.CounterEvent, Value: float64(hv.FlagReset), Time: at}, // not watched here
		{Device: "elec-mairie", Metric: hv.CounterEvent, Value: float64(hv.FlagClockSkew), Time: at + 1},
	})
	conds, err := r.Eval(context.Background(), ruleNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(conds) != 1 || conds[0].Value != float64(hv.FlagClockSkew) || !strings.Contains(conds[0].Summary, "Horloge") {
		t.Fatalf("conditions %+v", conds)
	}
}
