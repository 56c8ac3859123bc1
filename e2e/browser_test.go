package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/useda02/hyperviseur/internal/testenv"
)

// Browser tests: e2e/browser/dashboard.mjs drives headless Debian Chromium through playwright-core (npm ci
// --prefix e2e/browser) against the demo service.
const (
	browserDir   = "browser"
	pilotEPCI    = "200070985" // CC de l'Est de la Somme: one Aisne commune, a handful of sites
	browserSite  = "mairie-02408"
	browserMeter = "elec-mairie-02408"
)

// chromiumPath is $HV_CHROMIUM, else Debian's /usr/bin/chromium.
func chromiumPath() string {
	if p := os.Getenv("HV_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browserPrereqs skips (or fails under CI=true) when Chromium, Node or the test's node_modules are missing.
func browserPrereqs(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath()); err != nil {
		testenv.Missing(t, "chromium ("+chromiumPath()+"; apt-get install chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node (apt-get install nodejs)")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		testenv.Missing(t, "e2e/browser/node_modules (npm ci --prefix e2e/browser)")
	}
	return node
}

// TestDashboardBrowserIntegration: the web UI in a real browser against the demo fleet of two EPCI with an
// injected meter replacement. Login (and its refusal), the map's 797 communes and markers, a reading
// published on the broker shown on the site page within 2 s, the fault's alert listed and acknowledged, the
// cabinet and comparison pages, a pilote of the other EPCI seeing none of the first one's sites (UI and
// direct API calls from the page), and the websocket refusing another origin. Screenshots go to
// e2e/browser/artifacts/.
func TestDashboardBrowserIntegration(t *testing.T) {
	testenv.Slow(t, "starts the demo and a browser")
	node := browserPrereqs(t)
	from := time.Now().Add(-12 * time.Hour).UTC().Format(time.RFC3339)
	tiles := newTileServer(t)
	t.Setenv("HV_HTTP_MAP_TILES", tiles.URL+"/{z}/{x}/{y}.png")
	t.Setenv("HV_HTTP_MAP_ATTRIBUTION", tileAttribution)
	svc := startService(t, serviceOptions{Extra: "rules:\n  interval: 2s\n", Demo: []string{
		"--epci", "200043495", "--epci", pilotEPCI, "--speed", "3600", "--history-months", "2",
		"--fault", "index_reset:" + browserMeter + ":from=" + from}})

	adminPass, err := os.ReadFile(filepath.Join(svc.dir, "data", "admin.password"))
	if err != nil {
		t.Fatalf("bootstrap admin password: %v", err)
	}
	pilotPass := "pilote-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	svc.createUser(t, map[string]any{"name": "pilote-est-somme", "role": "pilote", "epcis": []string{pilotEPCI}, "password": pilotPass})

	checkWebsocketOrigin(t, svc, "admin", strings.TrimSpace(string(adminPass)))

	artifacts, _ := filepath.Abs(filepath.Join(browserDir, "artifacts"))
	cmd := exec.Command(node, "dashboard.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(),
		"HV_BASE_URL="+svc.HTTP,
		"HV_ADMIN_USER=admin", "HV_ADMIN_PASSWORD="+strings.TrimSpace(string(adminPass)),
		"HV_PILOT_USER=pilote-est-somme", "HV_PILOT_PASSWORD="+pilotPass, "HV_PILOT_EPCI="+pilotEPCI,
		"HV_SITE="+browserSite, "HV_SITE_DEVICE="+browserMeter,
		"HV_ALERT_RULE=index-anomalie", "HV_ALERT_DEVICE="+browserMeter,
		"HV_TILE_BASE="+tiles.URL, "HV_TILE_ATTRIBUTION="+tileAttribution,
		"HV_CHROMIUM="+chromiumPath(), "HV_ARTIFACTS="+artifacts)
	pub := newPublisher(t, svc.Broker, "hv-browser-test")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "figure ") {
				fmt.Println("browser:", line) // figures for the record, also without -v
			}
			t.Log(line)
			if rest, ok := strings.CutPrefix(line, "HV:PUBLISH "); ok {
				f := strings.Fields(rest)
				if err := settle(svc, pub, f[0]); err != nil {
					t.Errorf("before the timed reading: %v", err)
				}
				payload := fmt.Sprintf(`{"ts":%d,"power_w":%s}`, time.Now().UnixMilli(), f[1])
				if err := pub.publish("hv/"+f[0]+"/up", []byte(payload)); err != nil {
					t.Errorf("publish: %v", err)
				}
				_, _ = io.WriteString(stdin, "HV:PUBLISHED\n")
			}
		}
	}()
	timeout := time.AfterFunc(8*time.Minute, func() { _ = cmd.Process.Kill() })
	err = cmd.Wait()
	timeout.Stop()
	<-done
	if err != nil {
		t.Fatalf("browser test failed (%v); screenshots in %s", err, artifacts)
	}
	if n, bad := tiles.served.Load(), tiles.outside.Load(); n == 0 || bad != 0 {
		t.Errorf("tile server: %d tiles of the Aisne served, %d requests elsewhere", n, bad)
	}
}

// settle waits, before the timed reading, for the demo to have caught up with real time and for the service
// to have stored what the fleet sent meanwhile (a probe reading of the device, published behind it, is
// stored): a reading published behind the replay of a whole day — long under the race detector — would time
// the backlog, not the way from the broker to the page. It runs beside the test's goroutine: no t.Fatal.
func settle(svc *service, pub *publisher, device string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		log, _ := os.ReadFile(svc.logFile.Name())
		if bytes.Contains(log, []byte("simulated fleet caught up")) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo did not catch up with real time within 3 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	const probe = 1.25
	if err := pub.publish("hv/"+device+"/up", fmt.Appendf(nil, `{"ts":%d,"power_w":%v}`, time.Now().Add(-time.Second).UnixMilli(), probe)); err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", svc.HTTP+"/api/v1/devices/"+device+"/latest", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var v struct {
				Readings []struct {
					Metric string  `json:"metric"`
					Value  float64 `json:"value"`
				} `json:"readings"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			for _, r := range v.Readings {
				if err == nil && r.Metric == "power_w" && r.Value == probe {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the probe reading of %s was not stored within 3 minutes", device)
}

const tileAttribution = "Fond de carte d'essai"

// tileServer is a raster tile server on loopback for the map's background: one grey PNG for every tile of the
// Aisne, counting what the browser asks for.
type tileServer struct {
	*httptest.Server
	served, outside atomic.Int64
}

func newTileServer(t *testing.T) *tileServer {
	img := image.NewGray(image.Rect(0, 0, 256, 256))
	for i := range img.Pix {
		img.Pix[i] = 0xd8
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	ts := &tileServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var z, x, y int
		if n, _ := fmt.Sscanf(r.URL.Path, "/%d/%d/%d.png", &z, &x, &y); n != 3 || !aisneTile(z, x, y) {
			ts.outside.Add(1)
			http.NotFound(w, r)
			return
		}
		ts.served.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(buf.Bytes())
	}))
	t.Cleanup(ts.Close)
	return ts
}

// aisneTile reports whether tile z/x/y overlaps the Aisne's bounding box (2.9–4.3° E, 48.8–50.1° N), with a
// tile's margin: the map asks only for tiles under its view.
func aisneTile(z, x, y int) bool {
	n := math.Exp2(float64(z))
	lon := func(x int) float64 { return float64(x)/n*360 - 180 }
	lat := func(y int) float64 { return math.Atan(math.Sinh(math.Pi*(1-2*float64(y)/n))) * 180 / math.Pi }
	return z >= 5 && z <= 18 && lon(x+1) > 2.9-8 && lon(x) < 4.3+8 && lat(y+1) < 50.1+5 && lat(y) > 48.8-5
}

// createUser adds a user through the admin API with the test's admin token.
func (s *service) createUser(t *testing.T, u map[string]any) {
	t.Helper()
	body, _ := json.Marshal(u)
	req, _ := http.NewRequest("POST", s.HTTP+"/api/v1/users", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create user %v: HTTP %d %s", u["name"], resp.StatusCode, b)
	}
}

// checkWebsocketOrigin: with a valid session cookie, the live feed opens from the dashboard's own origin and
// is refused (403) from another one, so a foreign page cannot ride the user's session.
func checkWebsocketOrigin(t *testing.T, svc *service, user, password string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := http.Post(svc.HTTP+"/api/v1/session", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "hv_session" {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil {
		t.Fatalf("login as %s: HTTP %d, cookie %v", user, resp.StatusCode, cookie)
	}
	for _, path := range []string{"/api/v1/ws", "/ws"} { // the events feed and the map's board
		url := strings.Replace(svc.HTTP, "http", "ws", 1) + path
		for _, tt := range []struct {
			name, origin string
			want         int
		}{
			{"same origin", svc.HTTP, http.StatusSwitchingProtocols},
			{"other origin", "http://evil.example", http.StatusForbidden},
		} {
			h := http.Header{"Origin": {tt.origin}, "Cookie": {cookie.Name + "=" + cookie.Value}}
			d := websocket.Dialer{Subprotocols: []string{"hyperviseur.v1"}, HandshakeTimeout: 5 * time.Second}
			conn, resp, err := d.Dial(url, h)
			got := 0
			if resp != nil {
				got = resp.StatusCode
			}
			if conn != nil {
				conn.Close()
			}
			if got != tt.want {
				t.Errorf("websocket %s from %s: HTTP %d (%v), want %d", path, tt.name, got, err, tt.want)
			}
		}
	}
}

// BenchmarkMapFirstPaint: the map of the whole simulated Aisne (3 474 sites, 6 075 devices; no history, the
// map needs none) in headless Chromium, logged in as the admin: e2e/browser/paint.mjs loads #/carte b.N
// times and prints, for each load, the first paint of the 797 communes (performance mark "carte-peinte"),
// when every site is placed as a marker or in a cluster, and when the choropleth has the live power of the
// /ws board. Run: go test -run '^$' -bench MapFirstPaint -benchtime 5x ./e2e/
func BenchmarkMapFirstPaint(b *testing.B) {
	node := browserPrereqs(b)
	svc := startService(b, serviceOptions{Demo: []string{"--history-months", "0"}})
	pass, err := os.ReadFile(filepath.Join(svc.dir, "data", "admin.password"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(node, "paint.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "HV_BASE_URL="+svc.HTTP, "HV_ADMIN_USER=admin",
		"HV_ADMIN_PASSWORD="+strings.TrimSpace(string(pass)), "HV_CHROMIUM="+chromiumPath(), "HV_LOADS="+strconv.Itoa(b.N))
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	out, err := cmd.Output()
	b.StopTimer()
	if err != nil {
		b.Fatalf("paint.mjs: %v\n%s", err, out)
	}
	var paints []float64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		b.Log(line)
		var run, paint, sites, markers, colour float64
		if n, _ := fmt.Sscanf(line, "load %g: first paint %g ms, %g sites placed at %g ms, choropleth at %g ms", &run, &paint, &sites, &markers, &colour); n == 5 {
			paints = append(paints, paint)
		}
	}
	if len(paints) != b.N {
		b.Fatalf("%d loads measured, want %d", len(paints), b.N)
	}
	var sum float64
	for _, p := range paints {
		sum += p
	}
	b.ReportMetric(sum/float64(len(paints)), "ms-first-paint")
}
