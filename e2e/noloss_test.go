package e2e

import (
	"context"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/useda02/hyperviseur/internal/testenv"
)

const (
	lossDevices  = 100
	lossReadings = 50_000 // per scenario, one QoS 1 message each
)

// lossMessages makes lossReadings flat-JSON messages: device k of lossDevices reports an energy index that
// rises by exactly 1 kWh per reading, one reading a second, so every count and sum is known in advance.
func lossMessages(start time.Time) []message {
	per := lossReadings / lossDevices
	msgs := make([]message, 0, lossReadings)
	for i := range per {
		for d := range lossDevices {
			ts := start.Add(time.Duration(i) * time.Second).UnixMilli()
			msgs = append(msgs, message{
				topic:   fmt.Sprintf("hv/perte-%03d/up", d),
				payload: fmt.Appendf(nil, `{"ts":%d,"energy_kwh":%d}`, ts, 1000+i),
			})
		}
	}
	return msgs
}

// TestNoLossIntegration publishes 50 000 QoS 1 readings through Mosquitto into InfluxDB 1.8.10 while one
// component fails, and checks every reading is stored exactly once and the interval deltas add up exactly.
func TestNoLossIntegration(t *testing.T) {
	testenv.Slow(t, "long: 3 × 50 000 readings (never skipped with CI=true)")
	db := testenv.StartInfluxDB(t)
	scenarios := []struct {
		name    string
		disrupt func(t *testing.T, mq *testenv.Mosquitto, svc *service)
	}{
		{"influxdb-stopped-20s", func(t *testing.T, _ *testenv.Mosquitto, svc *service) {
			db.Stop()
			time.Sleep(20 * time.Second)
			if spooled := svc.metricValue("hyperviseur_readings_spooled_total"); spooled == 0 {
				t.Error("InfluxDB was down for 20 s yet nothing was spooled")
			}
			db.Start()
		}},
		{"broker-restarted", func(t *testing.T, mq *testenv.Mosquitto, _ *service) {
			mq.Restart()
		}},
		{"service-sigkilled", func(t *testing.T, _ *testenv.Mosquitto, svc *service) {
			if code := svc.stop(syscall.SIGKILL); code == raceExitCode {
				t.Fatal("the service had exited with a data race before it was killed")
			}
			time.Sleep(time.Second)
			svc.start()
		}},
	}
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			mq := testenv.StartMosquitto(t)
			dbName := fmt.Sprintf("noloss%d", i)
			db.CreateDB(t, dbName)
			svc := startService(t, serviceOptions{Broker: mq.URL, InfluxDB: db.URL, Bucket: dbName + "/autogen"})

			start := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
			msgs := lossMessages(start)
			pub := newPublisher(t, mq.URL, "e2e-noloss")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			published := make(chan error, 1)
			go func() { published <- pub.publishAll(ctx, msgs, 8) }()

			// Disrupt once a good part of the stream is through the service.
			eventually(t, 60*time.Second, "a third of the readings ingested", func() (bool, string) {
				n := svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "ok")
				return n >= lossReadings/3, fmt.Sprintf("%g ok", n)
			})
			sc.disrupt(t, mq, svc)
			if err := <-published; err != nil {
				t.Fatalf("publishing: %v", err)
			}

			end := start.Add(time.Duration(lossReadings/lossDevices) * time.Second)
			eventually(t, 3*time.Minute, "every reading stored", func() (bool, string) {
				n := svc.count("energy_kwh", start, end)
				return n >= lossReadings, fmt.Sprintf("%d stored", n)
			})
			if n := svc.count("energy_kwh", start, end); n != lossReadings {
				t.Fatalf("stored %d readings, want exactly %d", n, lossReadings)
			}
			// Deltas: whatever was redelivered or reordered, each device's deltas sum to its index rise.
			want := float64(lossDevices * (lossReadings/lossDevices - 1))
			eventually(t, time.Minute, "deltas add up", func() (bool, string) {
				got := svc.sum("energy_kwh_delta", start, end)
				return got == want, fmt.Sprintf("sum of deltas %g, want %g", got, want)
			})
		})
	}
}

// sum returns the sum of metric over [from, to) across devices.
func (s *service) sum(metric string, from, to time.Time) float64 {
	s.t.Helper()
	var r seriesResponse
	q := url.Values{"metric": {metric}, "from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)},
		"every": {to.Sub(from).Round(time.Second).String()}, "agg": {"sum"}}
	if code := s.get("/api/v1/series", q, &r); code != 200 {
		s.t.Fatalf("series sum: HTTP %d", code)
	}
	total := 0.0
	for _, se := range r.Series {
		for _, p := range se.Points {
			total += p.V
		}
	}
	return total
}
