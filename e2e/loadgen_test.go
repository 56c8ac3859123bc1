package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/load"
)

// TestLoadgenIntegration runs the load generator of `hyperviseur bench` against the service on real
// Mosquitto: every published message must be stored, as the service's metrics say and as the store itself
// counts, and the latency it reports must be a real distribution. No assertion depends on speed.
func TestLoadgenIntegration(t *testing.T) {
	const devices, messages = 2000, 20000
	mq := testenv.StartMosquitto(t)
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	var reg bytes.Buffer
	if err := load.WriteRegistry(&reg, territory, devices); err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(t.TempDir(), "bench.yaml")
	if err := os.WriteFile(regFile, reg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := startService(t, serviceOptions{Broker: mq.URL, Extra: fmt.Sprintf("registry:\n  files: [%q]\n", regFile)})

	from := time.Now().Add(-time.Minute)
	res, err := load.Bench(context.Background(), load.BenchConfig{
		Load:       load.Config{Broker: mq.URL, ClientID: "e2e-loadgen", Devices: devices, Messages: messages, Connections: 4},
		MetricsURL: svc.HTTP + "/metrics",
		PID:        svc.pid(),
		Wait:       3 * time.Minute,
		WSURL:      svc.HTTP + "/api/v1/ws",
		Token:      testToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	_ = res.WriteTable(&table)
	t.Logf("\n%s", table.String())

	if res.TimedOut || res.Published != messages || res.PublishFailed != 0 {
		t.Fatalf("published %d of %d (%d failed), timed out %v", res.Published, messages, res.PublishFailed, res.TimedOut)
	}
	if res.LostMessages != 0 || res.MessagesStored != res.Published || res.ReadingsStored != res.PublishedReadings {
		t.Errorf("loss %d: stored %d messages / %d readings of %d / %d published", res.LostMessages,
			res.MessagesStored, res.ReadingsStored, res.Published, res.PublishedReadings)
	}
	if res.Invalid != 0 {
		t.Errorf("%d bench messages were refused as invalid", res.Invalid)
	}
	// Written = raw readings + one energy delta per message except (at most) each device's first; a flagged
	// index (reset, jump) would add counter events on top.
	if deltas := res.ReadingsWritten - res.PublishedReadings; deltas < 0 || deltas > messages-devices {
		t.Errorf("%d readings written for %d raw: %d derived, want 0 to %d", res.ReadingsWritten, res.PublishedReadings, deltas, messages-devices)
	}
	if ev := svc.metricValue("hyperviseur_ingest_counter_events_total"); ev != 0 {
		t.Errorf("%g counter events: the generated indexes look like resets or jumps to ingest", ev)
	}
	if !(res.LagP50 > 0 && res.LagP50 <= res.LagP99) || res.LagAbove {
		t.Errorf("publish→store p50 %g s, p99 %g s (beyond the top bucket: %v): want 0 < p50 ≤ p99", res.LagP50, res.LagP99, res.LagAbove)
	}
	// Every stored power reading is pushed on the live feed, after it is stored.
	if res.WSReceived != messages || !(res.WSP50 > 0 && res.WSP50 <= res.WSP99) {
		t.Errorf("live feed: %d power readings received of %d, p50 %g s, p99 %g s", res.WSReceived, messages, res.WSP50, res.WSP99)
	}
	if res.CPUSeconds <= 0 || res.PeakRSS <= 0 || res.HeapInuse <= 0 || res.VmHWM <= 0 {
		t.Errorf("service figures missing: CPU %g s, peak RSS %d, heap %d, VmHWM %d, RSS %d", res.CPUSeconds, res.PeakRSS, res.HeapInuse, res.VmHWM, res.RSS)
	}
	// The store's own count, independent of the service's metrics: one power reading per message (each
	// device publishes once per 2 000 messages, so never twice in one millisecond).
	if n := svc.count("power_w", from, time.Now().Add(time.Minute)); n != messages {
		t.Errorf("the store holds %d power readings, %d published", n, messages)
	}

	// The command itself, on the same service: JSON out, exit status 0 when nothing is lost.
	out, err := exec.Command(binary, "bench", "--broker", mq.URL, "--metrics", svc.HTTP+"/metrics",
		"--devices", strconv.Itoa(devices), "--messages", "2000", "--rate", "4000", "--connections", "2",
		"--pid", strconv.Itoa(svc.pid()), "--json").Output()
	if err != nil {
		t.Fatalf("hyperviseur bench: %v\n%s", err, out)
	}
	var cli load.Result
	if err := json.Unmarshal(out, &cli); err != nil {
		t.Fatalf("hyperviseur bench --json: %v\n%s", err, out)
	}
	if cli.Published != 2000 || cli.MessagesStored != 2000 || cli.LostMessages != 0 || cli.TargetRate != 4000 || cli.LagP99 <= 0 {
		t.Errorf("hyperviseur bench --json: %s", out)
	}
}
