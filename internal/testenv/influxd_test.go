package testenv

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d is not free: %v", p, err)
	}
	l.Close()
}

// TestInfluxDBIntegration checks the harness itself: a database created, a point written and read back through
// the 1.x endpoints, and still there after Stop and Start on the same port.
func TestInfluxDBIntegration(t *testing.T) {
	db := StartInfluxDB(t)
	db.CreateDB(t, "h")
	write := func() int {
		resp, err := http.Post(db.URL+"/write?db=h&precision=ms", "text/plain",
			strings.NewReader("m,device=d value=1.5 1700000000000"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := write(); c != http.StatusNoContent {
		t.Fatalf("write: %d", c)
	}
	read := func() string {
		resp, err := http.Get(db.URL + "/query?db=h&q=" + "SELECT+count(value)+FROM+m")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := read(); !strings.Contains(got, `"count"`) || !strings.Contains(got, ",1]") {
		t.Fatalf("count before restart: %s", got)
	}
	start := time.Now()
	if err := db.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop took %s", time.Since(start))
	if _, err := http.Get(db.URL + "/ping"); err == nil {
		t.Fatal("ping answers after Stop")
	}
	if err := db.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	start = time.Now()
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("start took %s", time.Since(start))
	if got := read(); !strings.Contains(got, ",1]") {
		t.Fatalf("count after restart: %s", got)
	}
	if err := db.Start(); err == nil {
		t.Error("Start of a running server: nil error")
	}
	if err := db.Exec("CREATE DATABASE"); err == nil {
		t.Error("Exec of a bad statement: nil error")
	}
}
