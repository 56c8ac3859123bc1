package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestDemoIntegration: `hyperviseur demo` runs the simulated fleet of one EPCI against the embedded stack:
// every decoder sees traffic, nothing is invalid, unmapped or unregistered, and devices have live values.
func TestDemoIntegration(t *testing.T) {
	svc := startService(t, serviceOptions{Demo: []string{"--epci", "200043495", "--speed", "3600"}})
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
}

// TestDemoFaultsIntegration: faults injected with --fault reach the service as their signatures: a
// controller sending garbage is dead-lettered as invalid, a replaced meter's index restart is flagged.
func TestDemoFaultsIntegration(t *testing.T) {
	from := time.Now().Add(-12 * time.Hour).UTC().Format(time.RFC3339)
	svc := startService(t, serviceOptions{Demo: []string{"--epci", "200043495", "--speed", "3600",
		"--fault", "malformed:ctrl-armoire-02408-002",
		"--fault", "index_reset:elec-mairie-02408:from=" + from}})
	eventually(t, 90*time.Second, "both faults seen", func() (bool, string) {
		invalid := svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "invalid")
		resets := svc.metricValue("hyperviseur_ingest_counter_events_total", "flag", "reset")
		return invalid >= 10 && resets == 1, fmt.Sprintf("%g invalid messages, %g index resets", invalid, resets)
	})
}
