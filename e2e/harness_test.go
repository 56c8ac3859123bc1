// Package e2e runs the real hyperviseur binary against real components: Mosquitto, InfluxDB 1.8.10 through
// its v2 API, and the embedded broker and TSDB. The service runs as a child process so the tests can
// SIGKILL it and measure its CPU from /proc.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/useda02/hyperviseur/dashboard"
	"github.com/useda02/hyperviseur/internal/testenv"
)

var binary string // built once in TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hv-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hyperviseur")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/hyperviseur")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build hyperviseur:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testToken is the API token the tests use; its hash goes in the service's config.
const testToken = "e2e-test-token-not-a-secret"

// service is one hyperviseur process and how to reach it.
type service struct {
	t       testing.TB
	dir     string
	config  string
	demo    []string
	HTTP    string // http://127.0.0.1:port
	Broker  string // tcp://…
	cmd     *exec.Cmd
	done    chan struct{}
	logMu   sync.Mutex
	logFile *os.File
}

// serviceOptions choose the components.
type serviceOptions struct {
	Broker   string // empty: embedded broker on a free port
	InfluxDB string // empty: embedded TSDB; else the influx URL, with Bucket
	Bucket   string
	Extra    string   // more YAML appended to the config
	Demo     []string // run `hyperviseur demo` with these flags instead of `serve`
}

func startService(t testing.TB, o serviceOptions) *service {
	t.Helper()
	s := &service{t: t, dir: t.TempDir(), demo: o.Demo}
	httpPort := testenv.FreePort(t)
	s.HTTP = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	var b strings.Builder
	fmt.Fprintf(&b, "http:\n  listen: \"127.0.0.1:%d\"\n", httpPort)
	if o.Broker == "" {
		mqttPort := testenv.FreePort(t)
		fmt.Fprintf(&b, "mqtt:\n  client_id: hv-e2e\n  embedded:\n    listen: \"127.0.0.1:%d\"\n", mqttPort)
		s.Broker = fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort)
	} else {
		fmt.Fprintf(&b, "mqtt:\n  client_id: hv-e2e\n  broker: %q\n", o.Broker)
		s.Broker = o.Broker
	}
	fmt.Fprintf(&b, "storage:\n  path: %q\n", filepath.Join(s.dir, "data"))
	if o.InfluxDB != "" {
		fmt.Fprintf(&b, "  driver: influxdb\n  influxdb:\n    url: %q\n    bucket: %q\n    timeout: 3s\n", o.InfluxDB, o.Bucket)
	}
	fmt.Fprintf(&b, "auth:\n  tokens:\n    - {name: e2e, role: admin, sha256: %q}\n", dashboard.HashToken(testToken))
	b.WriteString(o.Extra)
	s.config = filepath.Join(s.dir, "hyperviseur.yaml")
	if err := os.WriteFile(s.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(s.dir, "service.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.logFile = lf
	s.start()
	t.Cleanup(func() {
		if code := s.stop(syscall.SIGTERM); code == raceExitCode {
			t.Errorf("the service exited with a data race")
		}
		if t.Failed() {
			b, _ := os.ReadFile(lf.Name())
			t.Logf("service log (last 4 KiB):\n%s", tail(b, 4096))
		}
		lf.Close()
	})
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (s *service) start() {
	s.t.Helper()
	args := []string{"serve", "--config", s.config}
	if s.demo != nil {
		args = append([]string{"demo", "--config", s.config}, s.demo...)
	}
	if p := os.Getenv("HV_E2E_CPUPROFILE"); p != "" {
		// Profiling a benchmark: the service writes its CPU profile there when it stops.
		args = append(args, "--cpuprofile", p)
	}
	s.cmd = exec.Command(binary, args...)
	// A data race in the service makes it exit with status 66, which the tests then see as a failure.
	s.cmd.Env = append(os.Environ(), fmt.Sprintf("GORACE=halt_on_error=1 exitcode=%d", raceExitCode))
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start hyperviseur: %v", err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, d chan struct{}) { _ = c.Wait(); close(d) }(s.cmd, s.done)
	ready := 30 * time.Second
	if s.demo != nil {
		ready = 5 * time.Minute // the demo writes its fleet's history first (slow under the race detector)
	}
	s.waitReady(ready)
}

// raceExitCode is the service's exit status when the race detector found a data race (GORACE above).
const raceExitCode = 66

// stop sends sig, waits for the process to end and returns its exit status.
func (s *service) stop(sig syscall.Signal) int {
	if s.cmd == nil {
		return 0
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	code := s.cmd.ProcessState.ExitCode()
	s.cmd = nil
	return code
}

func (s *service) pid() int { return s.cmd.Process.Pid }

func (s *service) waitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.logFile.Name())
			s.t.Fatalf("hyperviseur exited during start:\n%s", tail(b, 4096))
		default:
		}
		resp, err := http.Get(s.HTTP + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = string(body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("hyperviseur not ready within %s: %s", timeout, last)
}

// get calls the API with the test token and decodes the JSON answer into v.
func (s *service) get(path string, q url.Values, v any) int {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.HTTP+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			s.t.Fatalf("GET %s: decode %s: %v", path, body, err)
		}
	}
	return resp.StatusCode
}

type seriesResponse struct {
	Series []struct {
		Device string `json:"device"`
		Metric string `json:"metric"`
		Unit   string `json:"unit"`
		Site   string `json:"site"`
		EPCI   string `json:"epci"`
		Points []struct {
			T int64   `json:"t"`
			V float64 `json:"v"`
		} `json:"points"`
	} `json:"series"`
}

// count returns how many readings of metric the API reports in [from, to), summed over devices.
func (s *service) count(metric string, from, to time.Time) int {
	s.t.Helper()
	var r seriesResponse
	q := url.Values{"metric": {metric}, "from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)},
		"every": {to.Sub(from).Round(time.Second).String()}, "agg": {"count"}}
	if code := s.get("/api/v1/series", q, &r); code != 200 {
		s.t.Fatalf("series count: HTTP %d", code)
	}
	n := 0
	for _, se := range r.Series {
		for _, p := range se.Points {
			n += int(p.V)
		}
	}
	return n
}

// metricValue scrapes /metrics and sums the samples of name whose labels contain every given pair.
func (s *service) metricValue(name string, labels ...string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.HTTP + "/metrics")
	if err != nil {
		s.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, labels[i]+`="`+labels[i+1]+`"`)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// publisher is a QoS 1 MQTT client that retries a message until the broker acknowledges it, so every reading
// the test counts was accepted by the broker at least once.
type publisher struct {
	t      testing.TB
	client paho.Client
}

func newPublisher(t testing.TB, broker, id string) *publisher {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetWriteTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &publisher{t: t, client: c}
}

// publish sends one message and waits for the broker's PUBACK, retrying for up to two minutes.
func (p *publisher) publish(topic string, payload []byte) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		tok := p.client.Publish(topic, 1, false, payload)
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("publish %s: not acknowledged within 2 min: %v", topic, tok.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publishAll publishes msgs with a few concurrent in-flight publishes.
func (p *publisher) publishAll(ctx context.Context, msgs []message, workers int) error {
	ch := make(chan message)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for m := range ch {
				if err := p.publish(m.topic, m.payload); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	var err error
loop:
	for _, m := range msgs {
		select {
		case ch <- m:
		case err = <-errc:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(ch)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

type message struct {
	topic   string
	payload []byte
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s (last: %s)", what, timeout, last)
}
