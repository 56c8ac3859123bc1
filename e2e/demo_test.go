package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestDemoIntegration: `hyperviseur demo` runs the simulated fleet of one EPCI against the embedded stack:
// 13 months of hourly history are there when it is ready, every decoder sees traffic, nothing is invalid,
// unmapped or unregistered, devices have live values continuing their history (no index reset); every
// lighting controller acknowledges its program and an override comes back acknowledged.
func TestDemoIntegration(t *testing.T) {
	svc := startService(t, serviceOptions{Demo: []string{"--epci", "200043495", "--speed", "3600"}})
	checkHistory(t, svc)
	eventually(t, 60*time.Second, "every decoder busy", func() (bool, string) {
		state := ""
		ok := true
		for _, src := range []string{"hv", "lp", "chirpstack", "tts"} {
			n := svc.metricValue("hyperviseur_ingest_messages_total", "source", src, "outcome", "ok")
			state += fmt.Sprintf("%s=%g ", src, n)
			ok = ok && n >= 20
		}
		return ok, state
	})
	for _, m := range []string{"hyperviseur_ingest_unmapped_total"} {
		if n := svc.metricValue(m); n != 0 {
			t.Errorf("%s = %g, want 0: the fleet sends keys the registry does not map", m, n)
		}
	}
	if n := svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "invalid"); n != 0 {
		t.Errorf("%g invalid messages from the simulated fleet", n)
	}
	// After a day replayed, every device has reported: each reports at least hourly.
	eventually(t, 90*time.Second, "every device heard", func() (bool, string) {
		var devices struct {
			Devices []struct {
				ID       string `json:"id"`
				LastSeen string `json:"last_seen"`
			} `json:"devices"`
			Unregistered []struct{ ID string } `json:"unregistered"`
		}
		if code := svc.get("/api/v1/devices", nil, &devices); code != 200 {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		heard := 0
		for _, d := range devices.Devices {
			if d.LastSeen != "" {
				heard++
			}
		}
		if len(devices.Unregistered) != 0 {
			t.Fatalf("%d unregistered devices: the fleet publishes ids the registry does not know", len(devices.Unregistered))
		}
		return len(devices.Devices) > 300 && heard == len(devices.Devices),
			fmt.Sprintf("%d of %d devices heard", heard, len(devices.Devices))
	})
	if n := svc.metricValue("hyperviseur_ingest_counter_events_total"); n != 0 {
		t.Errorf("%g index anomalies flagged: live readings do not carry on from the history", n)
	}
	checkLighting(t, svc)
}

// TestDemoFaultsIntegration: faults injected with --fault reach the service as their signatures: a
// controller sending garbage is dead-lettered as invalid, a replaced meter's index restart is flagged, and
// the rules engine raises its alert, visible in the API.
func TestDemoFaultsIntegration(t *testing.T) {
	from := time.Now().Add(-12 * time.Hour).UTC().Format(time.RFC3339)
	svc := startService(t, serviceOptions{Extra: "rules:\n  interval: 2s\n", Demo: []string{"--epci", "200043495", "--speed", "3600",
		"--fault", "malformed:ctrl-armoire-02408-002",
		"--fault", "index_reset:elec-mairie-02408:from=" + from}})
	eventually(t, 90*time.Second, "both faults seen", func() (bool, string) {
		invalid := svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "invalid")
		resets := svc.metricValue("hyperviseur_ingest_counter_events_total", "flag", "reset")
		return invalid >= 10 && resets == 1, fmt.Sprintf("%g invalid messages, %g index resets", invalid, resets)
	})
	eventually(t, 60*time.Second, "the index reset alert firing", func() (bool, string) {
		var got struct {
			Alerts []struct {
				Rule   string            `json:"rule"`
				State  string            `json:"state"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		q := url.Values{"rule": {"index-anomalie"}, "state": {"firing"}}
		if code := svc.get("/api/v1/alerts", q, &got); code != 200 {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		for _, a := range got.Alerts {
			if a.Labels["device"] == "elec-mairie-02408" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d index-anomalie alerts firing, none for elec-mairie-02408", len(got.Alerts))
	})
}

// checkHistory: every day of the last 12 months holds the hourly history of the Laon town hall's meters, and the
// Pays de Laon's electricity consumption is higher in January than in July (heating, lighting).
func checkHistory(t *testing.T, svc *service) {
	t.Helper()
	now := time.Now().UTC()
	from := time.Date(now.Year()-1, now.Month()-1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0) // 12 whole months back
	// Laon's town hall: electricity, district heating and water meters.
	for _, metric := range []string{"energy_kwh_delta", "heat_kwh_delta", "volume_m3_delta"} {
		var got struct {
			Series []struct {
				Points []struct {
					T int64   `json:"t"`
					V float64 `json:"v"`
				} `json:"points"`
			} `json:"series"`
		}
		q := url.Values{"metric": {metric}, "site": {"mairie-02408"}, "from": {from.Format(time.RFC3339)},
			"to": {now.Format(time.RFC3339)}, "every": {"24h"}, "agg": {"count"}}
		if code := svc.get("/api/v1/series", q, &got); code != 200 || len(got.Series) != 1 {
			t.Fatalf("%s history of mairie-02408: HTTP %d, %d series", metric, code, len(got.Series))
		}
		days := 0
		for _, p := range got.Series[0].Points {
			if p.V >= 23 { // 23 to 25 hourly deltas a day (DST days aside, all 24)
				days++
			}
		}
		if want := int(now.Sub(from).Hours()/24) - 1; days < want {
			t.Errorf("%s of mairie-02408: %d days with hourly history since %s, want %d", metric, days, from.Format(time.DateOnly), want)
		}
	}
	sum := func(month time.Time) float64 {
		var got struct {
			Series []struct {
				Points []struct{ V float64 } `json:"points"`
			} `json:"series"`
		}
		q := url.Values{"metric": {"energy_kwh_delta"}, "epci": {"200043495"}, "fluid": {"electricity"},
			"from": {month.Format(time.RFC3339)}, "to": {month.AddDate(0, 0, 28).Format(time.RFC3339)}, "every": {"672h"}, "agg": {"sum"}}
		if code := svc.get("/api/v1/series", q, &got); code != 200 {
			t.Fatalf("series: HTTP %d", code)
		}
		total := 0.0
		for _, s := range got.Series {
			for _, p := range s.Points {
				total += p.V
			}
		}
		return total
	}
	year := now.Year() - 1
	if now.Month() >= time.August {
		year = now.Year()
	}
	jan, jul := sum(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)), sum(time.Date(year, 7, 1, 0, 0, 0, 0, time.UTC))
	if jul <= 0 || jan < 1.2*jul {
		t.Errorf("Pays de Laon electricity: January %.0f kWh, July %.0f kWh: want a winter peak", jan, jul)
	}
	t.Logf("Pays de Laon electricity, history: January %d %.0f kWh, July %.0f kWh", year, jan, jul)
}
