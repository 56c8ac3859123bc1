package rules

import (
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// lastSeenAt fakes live.State.LastSeen: how long ago each device was last heard at ruleNow (0: never).
func lastSeenAt(ago map[string]time.Duration) func(string) int64 {
	return func(device string) int64 {
		d, ok := ago[device]
		if !ok {
			return 0
		}
		return ruleNow.Add(-d).UnixMilli()
	}
}

func newTestSilence(t testing.TB, ago map[string]time.Duration, scope Scope) *SilenceRule {
	t.Helper()
	r, err := NewSilence(RuleConfig{Name: "muet", Scope: scope}, DefaultSilenceConfig(), testRegistry(t), lastSeenAt(ago))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// healthy is every device of the test registry heard a minute ago.
func allHeard() map[string]time.Duration {
	return map[string]time.Duration{"elec-mairie": time.Minute, "gaz-mairie": time.Minute, "eau-mairie": time.Minute,
		"elec-ecole": time.Minute, "eau-ecole": time.Minute, "ctrl-laon": time.Minute, "meteo-laon": time.Minute,
		"elec-gymnase": time.Minute}
}

func TestSilenceRule(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		ago := allHeard()
		ago["gaz-mairie"] = 2*time.Hour + 59*time.Minute // 3 × 1h not yet
		ago["elec-ecole"] = 29 * time.Minute             // 3 × 10 min, but min_silence is 30 min
		if cs := evalRule(t, newTestSilence(t, ago, Scope{}), ruleNow, nil); len(cs) != 0 {
			t.Fatalf("got %v", cs)
		}
	})
	t.Run("one device", func(t *testing.T) {
		ago := allHeard()
		ago["elec-ecole"] = 45 * time.Minute
		cs := evalRule(t, newTestSilence(t, ago, Scope{}), ruleNow, nil)
		if len(cs) != 1 {
			t.Fatalf("got %d conditions, want 1", len(cs))
		}
		wantLabels(t, cs[0], laonLabels("elec-ecole", "ecole-laon", hv.Electricity))
		want := Evidence{Device: "elec-ecole", From: ruleNow.Add(-45 * time.Minute).UTC(), To: ruleNow.UTC(), Value: 2700, Threshold: 1800}
		if cs[0].Evidence != want || cs[0].Value != 2700 {
			t.Errorf("evidence: got %+v, want %+v", cs[0].Evidence, want)
		}
		if w := "Appareil muet depuis 45 min (attendu toutes les 10 min, dernier message le 15/01 à 11:15)"; cs[0].Summary != w {
			t.Errorf("summary: got %q", cs[0].Summary)
		}
	})
	t.Run("whole site collapses", func(t *testing.T) {
		ago := allHeard()
		ago["elec-mairie"], ago["gaz-mairie"], ago["eau-mairie"] = 5*time.Hour, 4*time.Hour, 6*time.Hour
		ago["elec-gymnase"] = time.Hour
		cs := evalRule(t, newTestSilence(t, ago, Scope{}), ruleNow, nil)
		if len(cs) != 2 {
			t.Fatalf("got %d conditions, want the site and the gymnasium's meter: %+v", len(cs), cs)
		}
		site := cs[0]
		wantLabels(t, site, map[string]string{"site": "mairie-laon", "commune": "02408", "epci": "200043495"})
		// The site is silent since its last device spoke: 4 hours.
		want := Evidence{From: ruleNow.Add(-4 * time.Hour).UTC(), To: ruleNow.UTC(), Value: 4 * 3600, Threshold: 1800}
		if site.Evidence != want {
			t.Errorf("evidence: got %+v, want %+v", site.Evidence, want)
		}
		if w := "Site muet : aucun des 3 appareils de « Mairie de Laon » n'a émis depuis 4 h (dernier message le 15/01 à 08:00)"; site.Summary != w {
			t.Errorf("summary: got %q", site.Summary)
		}
		wantLabels(t, cs[1], map[string]string{"device": "elec-gymnase", "site": "gymnase-soissons", "commune": "02722",
			"epci": cs[1].Labels["epci"], "fluid": "electricity"})
	})
	t.Run("part of a site", func(t *testing.T) {
		ago := allHeard()
		ago["elec-mairie"], ago["eau-mairie"] = 5*time.Hour, 6*time.Hour
		cs := evalRule(t, newTestSilence(t, ago, Scope{}), ruleNow, nil)
		if len(cs) != 2 || cs[0].Labels["device"] != "eau-mairie" || cs[1].Labels["device"] != "elec-mairie" {
			t.Fatalf("got %+v, want one condition per silent device", cs)
		}
	})
	t.Run("scope decides what a whole site is", func(t *testing.T) {
		ago := allHeard()
		ago["elec-mairie"] = 5 * time.Hour
		ago["eau-mairie"] = 5 * time.Hour
		// Without the gas meter in scope, the two silent meters are the whole site.
		cs := evalRule(t, newTestSilence(t, ago, Scope{Fluids: []hv.Fluid{hv.Electricity, hv.Water}}), ruleNow, nil)
		if len(cs) != 1 || cs[0].Labels["device"] != "" || cs[0].Labels["site"] != "mairie-laon" {
			t.Fatalf("got %+v", cs)
		}
	})
	t.Run("never seen", func(t *testing.T) {
		if cs := evalRule(t, newTestSilence(t, map[string]time.Duration{}, Scope{}), ruleNow, nil); len(cs) != 0 {
			t.Fatalf("never heard devices are not silent by default: got %d", len(cs))
		}
		c := DefaultSilenceConfig()
		c.NeverSeen = true
		r, err := NewSilence(RuleConfig{Name: "muet"}, c, testRegistry(t), lastSeenAt(nil))
		if err != nil {
			t.Fatal(err)
		}
		cs := evalRule(t, r, ruleNow, nil)
		// The town hall and the school collapse; the cabinet, the station and the gymnasium have one device each.
		if len(cs) != 5 {
			t.Fatalf("got %d conditions, want 5", len(cs))
		}
	})
	t.Run("no last-seen source", func(t *testing.T) {
		r, err := NewSilence(RuleConfig{Name: "muet"}, DefaultSilenceConfig(), testRegistry(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cs := evalRule(t, r, ruleNow, nil); cs != nil {
			t.Fatalf("got %v", cs)
		}
	})
}
