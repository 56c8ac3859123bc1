package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/useda02/hyperviseur/internal/testenv"
)

// benchMessages is the load: meters each sending a realistic message of five metrics (index, power,
// voltage, current, power factor), i.e. five raw readings; ingest adds the interval delta of the index.
const (
	benchDevices        = 1000
	benchMetricsPerMsg  = 5
	benchDefaultReading = 300_000
)

func benchPayloads(n int, start time.Time) []message {
	msgs := make([]message, n)
	for i := range msgs {
		d, k := i%benchDevices, i/benchDevices
		ts := start.Add(time.Duration(k) * time.Second).UnixMilli()
		msgs[i] = message{
			topic: fmt.Sprintf("hv/bench-%04d/up", d),
			payload: fmt.Appendf(nil, `{"ts":%d,"energy_kwh":%d.25,"power_w":%d,"voltage_v":231.4,"current_a":%d.5,"power_factor":0.93}`,
				ts, 10000+k, 1500+d, 6+d%10),
		}
	}
	return msgs
}

// BenchmarkIngest measures end-to-end ingest with the service in its own process: publish with QoS 1 as fast
// as the broker takes it, wait until /metrics reports everything stored, and read the service's CPU time from
// /proc. The figures are the custom metrics (readings/s, service CPU µs per reading); ns/op is not meaningful.
// HV_BENCH_READINGS sets the number of raw readings (default 300 000).
func BenchmarkIngest(b *testing.B) {
	readings := benchDefaultReading
	if v, err := strconv.Atoi(os.Getenv("HV_BENCH_READINGS")); err == nil && v > 0 {
		readings = v
	}
	b.Run("mosquitto-influxdb", func(b *testing.B) {
		mq := testenv.StartMosquitto(b)
		db := testenv.StartInfluxDB(b)
		db.CreateDB(b, "bench")
		svc := startService(b, serviceOptions{Broker: mq.URL, InfluxDB: db.URL, Bucket: "bench/autogen"})
		runIngestBench(b, svc, readings)
	})
	b.Run("embedded", func(b *testing.B) {
		svc := startService(b, serviceOptions{})
		runIngestBench(b, svc, readings)
	})
}

func runIngestBench(b *testing.B, svc *service, readings int) {
	msgs := benchPayloads(readings/benchMetricsPerMsg, time.Now().Add(-3*time.Hour).Truncate(time.Second))
	client := paho.NewClient(paho.NewClientOptions().AddBroker(svc.Broker).SetClientID("bench-pub").SetWriteTimeout(10 * time.Second))
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("connect: %v", tok.Error())
	}
	defer client.Disconnect(100)

	storedBefore := svc.metricValue("hyperviseur_readings_stored_total")
	cpuBefore := procCPU(b, svc.pid())
	rssBefore := procRSS(b, svc.pid())
	b.ResetTimer()
	start := time.Now()
	// A window of outstanding QoS 1 publishes keeps the pipe full without unbounded memory.
	window := make(chan paho.Token, 2000)
	for _, m := range msgs {
		if len(window) == cap(window) {
			if t := <-window; !t.WaitTimeout(30*time.Second) || t.Error() != nil {
				b.Fatalf("publish: %v", t.Error())
			}
		}
		window <- client.Publish(m.topic, 1, false, m.payload)
	}
	for len(window) > 0 {
		if t := <-window; !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			b.Fatalf("publish: %v", t.Error())
		}
	}
	published := time.Since(start)
	// Done when every message was handled and none waits for its store write.
	okBefore := 0.0 // the service is fresh for each sub-benchmark
	deadline := time.Now().Add(5 * time.Minute)
	for svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "ok")-okBefore < float64(len(msgs)) ||
		svc.metricValue("hyperviseur_ingest_pending_messages") > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("not everything stored after 5 min: %g ok, %g pending", svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "ok"),
				svc.metricValue("hyperviseur_ingest_pending_messages"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stored := svc.metricValue("hyperviseur_readings_stored_total") - storedBefore
	b.StopTimer()
	cpu := procCPU(b, svc.pid()) - cpuBefore
	raw := float64(len(msgs) * benchMetricsPerMsg)
	b.ReportMetric(raw/elapsed.Seconds(), "readings/s")
	b.ReportMetric(stored/elapsed.Seconds(), "stored/s")
	b.ReportMetric(float64(len(msgs))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(cpu.Seconds()*1e6/raw, "cpu-µs/reading")
	b.ReportMetric(float64(procRSS(b, svc.pid()))/(1<<20), "rss-MiB")
	b.Logf("%d messages, %g raw readings: published in %s, all stored after %s; service CPU %s; RSS %d→%d MiB",
		len(msgs), raw, published.Round(time.Millisecond), elapsed.Round(time.Millisecond), cpu, rssBefore>>20, procRSS(b, svc.pid())>>20)
}

// procCPU is the user+system CPU time a process has used, from /proc/<pid>/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("read /proc stat: %v", err)
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

// procRSS is the resident set size in bytes.
func procRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("read /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
