package load

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	hv "github.com/useda02/hyperviseur"
)

// wsWatcher listens to the service's live websocket for the bench meters' power readings and keeps, for
// each, the time from its timestamp (the publish instant) to its arrival: publish→websocket latency, measured
// exactly on this side rather than from a histogram.
type wsWatcher struct {
	conn *websocket.Conn
	mu   sync.Mutex
	lat  []time.Duration
	done chan struct{}
}

// maxWSSamples bounds the latencies kept (8 MB); beyond, later readings are counted but not kept.
const maxWSSamples = 1 << 20

// watchWS connects to url (ws:// or http:// form of /api/v1/ws) with the API token.
func watchWS(ctx context.Context, url, token string) (*wsWatcher, error) {
	url = strings.Replace(strings.Replace(url, "https://", "wss://", 1), "http://", "ws://", 1)
	if !strings.Contains(url, "?") {
		url += "?metric=" + string(hv.PowerW)
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: HTTP %d: %w", url, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	w := &wsWatcher{conn: c, done: make(chan struct{})}
	go w.read()
	return w, nil
}

func (w *wsWatcher) read() {
	defer close(w.done)
	for {
		var e struct {
			Type     string       `json:"type"`
			Readings []hv.Reading `json:"readings"`
		}
		if err := w.conn.ReadJSON(&e); err != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		for _, r := range e.Readings {
			if r.Metric == hv.PowerW && strings.HasPrefix(r.Device, DevicePrefix) && len(w.lat) < maxWSSamples {
				w.lat = append(w.lat, now.Sub(time.UnixMilli(r.Time)))
			}
		}
		w.mu.Unlock()
	}
}

func (w *wsWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lat)
}

// wait returns once n readings arrived or timeout passes, then closes the connection.
func (w *wsWatcher) wait(n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for int64(w.count()) < min(n, maxWSSamples) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = w.conn.Close()
	<-w.done
}

// quantiles returns the p50 and p99 latencies (nearest rank) and the number of readings seen.
func (w *wsWatcher) quantiles() (p50, p99 time.Duration, n int) {
	w.mu.Lock()
	lat := slices.Clone(w.lat)
	w.mu.Unlock()
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	rank := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return rank(0.50), rank(0.99), len(lat)
}
