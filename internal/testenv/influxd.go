package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InfluxDB is a real influxd 1.8 on a free loopback port, with Flux enabled and its meta, data and WAL under
// one folder, so that Stop and Start keep the data as a restart in production does.
type InfluxDB struct {
	URL string // http://127.0.0.1:port, for the v2 client (bucket "db/rp")
	Dir string // meta, data, wal, config and influxd.log

	bin  string
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// InfluxDBStartTimeout bounds the wait for /ping after influxd starts.
const InfluxDBStartTimeout = 30 * time.Second

// FindInfluxd returns the influxd binary: $HV_INFLUXD, else $GOPATH/bin/influxd (where `go install
// github.com/influxdata/influxdb/cmd/influxd@v1.8.10` puts it), else influxd on PATH; "" when there is none.
func FindInfluxd() string {
	if p := os.Getenv("HV_INFLUXD"); p != "" {
		return p
	}
	for _, gopath := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gopath, "bin", "influxd")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("influxd"); err == nil {
		return p
	}
	return ""
}

// StartInfluxDB starts a server for the test and stops it at cleanup. Without the binary it skips, or fails
// when CI=true.
func StartInfluxDB(t testing.TB) *InfluxDB {
	t.Helper()
	if FindInfluxd() == "" {
		Missing(t, "influxd (go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)")
	}
	db, err := LaunchInfluxDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Stop(); err != nil {
			t.Errorf("influxd: %v", err)
		}
	})
	return db
}

// LaunchInfluxDB starts a server with its state under dir, for a TestMain that shares one server between
// the tests of a package; the caller stops it. It fails when the binary is absent (see FindInfluxd).
func LaunchInfluxDB(dir string) (*InfluxDB, error) {
	bin := FindInfluxd()
	if bin == "" {
		return nil, errors.New("influxd: binary not found (HV_INFLUXD, $GOPATH/bin, PATH)")
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("influxd: %w", err)
	}
	rpcPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("influxd: %w", err)
	}
	db := &InfluxDB{
		URL:  fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		Dir:  dir,
		bin:  bin,
		conf: filepath.Join(dir, "influxdb.conf"),
	}
	// Everything that listens is on loopback; what is not needed (monitor store, usage reporting,
	// subscriber, continuous queries, pprof) is off so the server stays quiet and light.
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"

[meta]
  dir = %q
  logging-enabled = false

[data]
  dir = %q
  wal-dir = %q
  wal-fsync-delay = "0s"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  flux-enabled = true
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  auth-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpPort)
	if err := os.WriteFile(db.conf, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("influxd: write config: %w", err)
	}
	if err := db.Start(); err != nil {
		return nil, err
	}
	return db, nil
}

// Start (re)starts the server on the same port and data, and waits until /ping answers. Starting a running
// server is an error.
func (db *InfluxDB) Start() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.cmd != nil {
		return errors.New("influxd: already running")
	}
	logf, err := os.OpenFile(filepath.Join(db.Dir, "influxd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("influxd: log file: %w", err)
	}
	cmd := exec.Command(db.bin, "-config", db.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// its own process group: a ^C in the terminal reaches the test, which then stops influxd itself
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("influxd: start %s: %w", db.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	db.cmd, db.done, db.log = cmd, done, logf

	deadline := time.Now().Add(InfluxDBStartTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-done:
			db.cmd = nil
			logf.Close()
			return fmt.Errorf("influxd exited during start: %s", db.logTail())
		default:
		}
		resp, err := client.Get(db.URL + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
		}
		if time.Now().After(deadline) {
			db.stopLocked()
			return fmt.Errorf("influxd: /ping did not answer 204 within %s: %s", InfluxDBStartTimeout, db.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within 10 s. Stopping a stopped server
// does nothing.
func (db *InfluxDB) Stop() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.stopLocked()
}

func (db *InfluxDB) stopLocked() error {
	if db.cmd == nil {
		return nil
	}
	defer func() {
		db.cmd = nil
		db.log.Close()
	}()
	_ = db.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-db.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = db.cmd.Process.Kill()
	<-db.done
	return errors.New("influxd: did not stop on SIGTERM within 10s; killed")
}

// Kill stops the server at once with SIGKILL, as a crash would.
func (db *InfluxDB) Kill() {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.cmd == nil {
		return
	}
	_ = db.cmd.Process.Kill()
	<-db.done
	db.cmd = nil
	db.log.Close()
}

// logTail is the end of influxd's log, for error messages.
func (db *InfluxDB) logTail() string {
	b, err := os.ReadFile(filepath.Join(db.Dir, "influxd.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// CreateDB creates a database (with its default retention policy "autogen"): InfluxDB 1.8 does not create
// one on write. The v2 client then writes to bucket name+"/autogen".
func (db *InfluxDB) CreateDB(t testing.TB, name string) {
	t.Helper()
	if err := db.Exec(fmt.Sprintf("CREATE DATABASE %q", name)); err != nil {
		t.Fatal(err)
	}
}

// Exec runs an InfluxQL statement through the 1.x /query endpoint and reports its error, if any.
func (db *InfluxDB) Exec(stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := strings.NewReader(url.Values{"q": {stmt}}.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, db.URL+"/query", body)
	if err != nil {
		return fmt.Errorf("influxd: %s: %w", stmt, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("influxd: %s: %w", stmt, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	// 1.x answers 200 with {"results":[{"statement_id":0,"error":"…"}]} for a failed statement
	if resp.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"error"`)) {
		return fmt.Errorf("influxd: %s: %s: %s", stmt, resp.Status, bytes.TrimSpace(out))
	}
	return nil
}
