package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a real Mosquitto broker on a free loopback port, with persistence in a temporary folder so a
// restart keeps the persistent sessions and their queued messages, as in production.
type Mosquitto struct {
	t    testing.TB
	bin  string
	conf string
	dir  string
	Addr string // host:port
	URL  string // tcp://host:port
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMosquitto starts a broker for the test and stops it at cleanup. Without the binary it skips, or fails
// when CI=true.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin := findBinary("HV_MOSQUITTO", "mosquitto", "/usr/sbin/mosquitto")
	if bin == "" {
		Missing(t, "mosquitto (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	port := FreePort(t)
	m := &Mosquitto{t: t, bin: bin, dir: dir, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	m.URL = "tcp://" + m.Addr
	m.conf = filepath.Join(dir, "mosquitto.conf")
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 1
max_inflight_messages 2000
max_queued_messages 1000000
max_queued_bytes 0
log_dest file %s/mosquitto.log
`, port, dir, dir)
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto switches to user "mosquitto", which cannot write its persistence file
		// into this root-owned folder: a restart would then lose every queued and in-flight message.
		conf += "user root\n"
	}
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("mosquitto: write config: %v", err)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start (re)starts the broker on the same port and data.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mosquitto: start: %v", err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.done)
	WaitTCP(m.t, m.Addr, 10*time.Second)
}

// Stop stops the broker gracefully (it saves its persistence file) and waits for it.
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// Restart stops and starts the broker, failing the test if the broker did not save its sessions: a restart
// that silently drops them would make a no-loss test meaningless.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	if _, err := os.Stat(filepath.Join(m.dir, "mosquitto.db")); err != nil {
		log, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
		m.t.Fatalf("mosquitto saved no persistence file on stop (%v):\n%s", err, log)
	}
	m.Start()
}

// WaitTCP waits until addr accepts connections, failing the test after timeout.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not accept connections within %s", addr, timeout)
}

// Missing skips a test whose real component is absent, except in CI where that is a failure.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s is missing: .ci/run must install it", what)
	}
	t.Skipf("%s not installed; skipping (set CI=true to make this a failure)", what)
}

// Slow skips a long test under -short (make test-short), never with CI=true: CI runs every test.
func Slow(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip(why + " (-short; never skipped with CI=true)")
	}
}

// findBinary looks in $env, then PATH, then the fallbacks.
func findBinary(env, name string, fallbacks ...string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
