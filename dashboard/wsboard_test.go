package dashboard

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/live"
)

// boardMsg is a /ws message as a client decodes it.
type boardMsg struct {
	Type     string              `json:"type"`
	Seq      uint64              `json:"seq"`
	Scopes   []string            `json:"scopes"`
	Communes []live.CommuneState `json:"communes"`
	Devices  []live.DeviceState  `json:"devices"`
	Alerts   []hv.Alert          `json:"alerts"`
	Error    string              `json:"error"`
}

func dialBoard(t testing.TB, f *fixture, srv *httptest.Server, who, origin string) (*websocket.Conn, int) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	if tok := f.tokens[who]; tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.Close() })
	return c, resp.StatusCode
}

func subscribe(t testing.TB, c *websocket.Conn, scopes ...string) {
	t.Helper()
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "scopes": scopes}); err != nil {
		t.Fatal(err)
	}
}

func readBoard(t testing.TB, c *websocket.Conn) boardMsg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m boardMsg
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// TestBoardFeed: /ws sends a snapshot of the subscribed scopes, then coalesced deltas; a pilote's
// département is its EPCI's communes, a scope outside its EPCIs is refused, and nothing of another EPCI
// reaches it; anonymous and cross-site upgrades are refused.
func TestBoardFeed(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	defer f.srv.Close()

	if _, code := dialBoard(t, f, srv, "", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous: HTTP %d, want 401", code)
	}
	if _, code := dialBoard(t, f, srv, "admin", "https://evil.example.com"); code != http.StatusForbidden {
		t.Errorf("cross-site origin: HTTP %d, want 403", code)
	}

	admin, _ := dialBoard(t, f, srv, "admin", srv.URL)
	subscribe(t, admin, "departement", "alerts", "site:mairie-laon")
	snap := readBoard(t, admin)
	// The fixture's live state holds hourly power of every device, newest an hour before the server's clock.
	if snap.Type != "snapshot" || len(snap.Communes) != 2 || strings.Join(snap.Scopes, ",") != "alerts,departement,site:mairie-laon" {
		t.Fatalf("admin snapshot: %+v", snap)
	}
	if snap.Communes[0].Commune != "02408" || snap.Communes[0].PowerW[hv.Electricity] != 1 || len(snap.Devices) != 2 || snap.Devices[0].Device != "elec-laon" {
		t.Errorf("admin snapshot: Laon %+v, devices %+v; want elec-laon's 1 W and the town hall's two meters", snap.Communes[0], snap.Devices)
	}

	pilote, _ := dialBoard(t, f, srv, "pilote", "")
	subscribe(t, pilote, "epci:"+epciSQ)
	if m := readBoard(t, pilote); m.Type != "error" || !strings.Contains(m.Error, "outside your EPCIs") {
		t.Errorf("pilote asking Saint-Quentin: %+v", m)
	}
	subscribe(t, pilote, "departement", "alerts")
	snap = readBoard(t, pilote)
	if snap.Type != "snapshot" || len(snap.Communes) != 1 || snap.Communes[0].EPCI != epciLaon {
		t.Fatalf("pilote snapshot: %+v, want Laon's commune only", snap)
	}

	// Saint-Quentin changes, then Laon: the pilote's next message is Laon's alone.
	at := now.UnixMilli()
	f.hub.PublishReadings([]hv.Reading{
		{Device: "elec-sq", Metric: hv.PowerW, Value: 800, Time: at, EPCI: epciSQ, Site: "ecole-sq", Commune: "02691", Fluid: hv.Electricity},
	})
	_ = f.hub.Notify(t.Context(), []hv.Alert{{Fingerprint: "f1", Severity: hv.SeverityCritical, State: hv.AlertFiring,
		Labels: map[string]string{"device": "elec-sq", "epci": epciSQ, "commune": "02691"}}})
	m := readBoard(t, admin)
	if m.Type != "delta" || len(m.Communes) != 1 || m.Communes[0].PowerW[hv.Electricity] != 800 || m.Communes[0].Alerts[hv.SeverityCritical] != 1 {
		t.Fatalf("admin delta: %+v, want Saint-Quentin at 800 W with a critical alert", m)
	}
	if len(m.Alerts) != 1 || len(m.Devices) != 0 {
		t.Errorf("admin delta: alerts %+v, devices %+v (elec-sq is not in its scopes)", m.Alerts, m.Devices)
	}
	for v := 1000.0; v <= 1300; v += 100 { // four readings in a burst: one delta with the last
		f.hub.PublishReadings([]hv.Reading{
			{Device: "elec-laon", Metric: hv.PowerW, Value: v, Time: at, EPCI: epciLaon, Site: "mairie-laon", Commune: "02408", Fluid: hv.Electricity},
		})
		at++
	}
	m = readBoard(t, pilote)
	if m.Type != "delta" || len(m.Communes) != 1 || m.Communes[0].Commune != "02408" || len(m.Alerts) != 0 {
		t.Fatalf("pilote delta: %+v, want Laon only", m)
	}
	m = readBoard(t, admin)
	if len(m.Devices) != 1 || m.Devices[0].Values[hv.PowerW] != 1300 || m.Communes[0].PowerW[hv.Electricity] != 1300 {
		t.Errorf("admin delta: %+v, want elec-laon at its last 1 300 W", m)
	}
}

// TestBoardThousandClients: 1 000 clients subscribed to the département and one that never reads. A burst
// of updates fills the slow client's queue: it is dropped, and every other client receives every update's
// final state.
func TestBoardThousandClients(t *testing.T) {
	testenv.Slow(t, "1 001 websocket clients: a few seconds")
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	defer f.srv.Close()

	const n = 1000
	slow, _ := dialBoard(t, f, srv, "admin", "")
	subscribe(t, slow, "departement", "commune:02691") // Saint-Quentin's devices: large deltas
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		who := "admin"
		if i%2 == 1 {
			who = "pilote"
		}
		conns[i], _ = dialBoard(t, f, srv, who, "")
		subscribe(t, conns[i], "departement")
	}

	// Each client reads until it has seen Laon at the final power, counting its messages.
	const final = 99999.0
	var wg sync.WaitGroup
	var done, failed atomic.Int64
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				_ = c.SetReadDeadline(deadline)
				var m boardMsg
				if err := c.ReadJSON(&m); err != nil {
					failed.Add(1)
					return
				}
				for _, cs := range m.Communes {
					if cs.Commune == "02408" && cs.PowerW[hv.Electricity] == final {
						done.Add(1)
						return
					}
				}
			}
			failed.Add(1)
		}()
	}

	// Updates until the slow client is dropped: each tick changes Laon's power and 2 000 devices of
	// Saint-Quentin, whose states fill the slow client's socket, then its queue; the others see only the
	// two communes.
	fb := f.srv.boardFeed()
	at := now.UnixMilli()
	pad := make([]hv.Reading, 0, 2000)
	for i := range 2000 {
		pad = append(pad, hv.Reading{Device: "pad-" + string(rune('a'+i%26)) + strings.Repeat("x", i%40), Metric: hv.PowerW,
			Time: at, EPCI: epciLaon, Commune: "02408", Site: "mairie-laon", Fluid: hv.Electricity})
	}
	deadline := time.Now().Add(60 * time.Second)
	for v := 1.0; fb.dropped.Load() == 0 && time.Now().Before(deadline); v++ {
		f.hub.PublishReadings([]hv.Reading{{Device: "elec-laon", Metric: hv.PowerW, Value: v, Time: at, EPCI: epciLaon,
			Site: "mairie-laon", Commune: "02408", Fluid: hv.Electricity}})
		for i := range pad {
			pad[i].Value, pad[i].Time, pad[i].Commune, pad[i].EPCI = v, at, "02691", epciSQ
		}
		f.hub.PublishReadings(pad)
		at++
		time.Sleep(boardTick / 2)
	}
	if fb.dropped.Load() != 1 {
		t.Fatalf("%d clients dropped, want exactly the slow one", fb.dropped.Load())
	}
	f.hub.PublishReadings([]hv.Reading{{Device: "elec-laon", Metric: hv.PowerW, Value: final, Time: at + 1, EPCI: epciLaon,
		Site: "mairie-laon", Commune: "02408", Fluid: hv.Electricity}})
	wg.Wait()
	if done.Load() != n || failed.Load() != 0 {
		t.Fatalf("%d of %d clients saw the final state, %d failed", done.Load(), n, failed.Load())
	}
	if d := fb.dropped.Load(); d != 1 {
		t.Errorf("%d dropped after the burst, want 1", d)
	}
	// The slow client finds its connection closed once it reads what the kernel still held.
	var err error
	for end := time.Now().Add(20 * time.Second); err == nil && time.Now().Before(end); {
		_ = slow.SetReadDeadline(end)
		_, _, err = slow.ReadMessage()
	}
	if ne, ok := err.(interface{ Timeout() bool }); err == nil || ok && ne.Timeout() {
		t.Errorf("slow client: %v, want its connection closed", err)
	}
	t.Logf("%d messages sent, %d client dropped", fb.sent.Load(), fb.dropped.Load())
}

// BenchmarkBoardFanout: 100 websocket clients on loopback subscribed to the département; each iteration
// changes Laon's power on the board, ticks, and waits until every client has the delta that carries it. Reported: deltas/s to
// the 100 clients, messages/s, and the process's CPU time per delta (server and the 100 clients, which only
// read raw frames and look for the value).
func BenchmarkBoardFanout(b *testing.B) {
	f := newFixture(&testing.T{})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	defer f.srv.Close()
	const n = 100
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i], _ = dialBoard(b, f, srv, "admin", "")
		subscribe(b, conns[i], "departement")
		readBoard(b, conns[i]) // the snapshot
	}
	fb := f.srv.boardFeed()
	var usage0, usage1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage0)
	sent0 := fb.sent.Load()
	at := now.UnixMilli()
	v := 0
	for b.Loop() {
		v++
		want := []byte(fmt.Sprintf(`"electricity":%d`, v))
		// Straight into the board (the hub's hop is asynchronous), then a tick as the ticker would make it.
		fb.board.Observe([]hv.Reading{{Device: "elec-laon", Metric: hv.PowerW, Value: float64(v), Time: at + int64(v),
			EPCI: epciLaon, Site: "mairie-laon", Commune: "02408", Fluid: hv.Electricity}})
		fb.tick()
		for _, c := range conns {
			for {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, msg, err := c.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				if bytes.Contains(msg, want) {
					break
				}
			}
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage1)
	cpu := time.Duration(usage1.Utime.Nano() + usage1.Stime.Nano() - usage0.Utime.Nano() - usage0.Stime.Nano())
	b.ReportMetric(float64(fb.sent.Load()-sent0)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/delta")
}
