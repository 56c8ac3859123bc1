package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/broker"
	"github.com/useda02/hyperviseur/internal/testenv"
)

func alert(fp string, sev hv.Severity, epci string) hv.Alert {
	return hv.Alert{Fingerprint: fp, Rule: "leak", Severity: sev, State: hv.AlertFiring,
		Labels: map[string]string{"device": "d-" + fp, "epci": epci}, Summary: "Fuite probable", Value: 0.42}
}

// receiver is a webhook endpoint that answers with the statuses given, in order (200 once they run out),
// checks signatures as a real receiver would, and keeps what it accepted.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	calls    int
	got      []Payload
	badSig   int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if err := Verify([]byte("s3cret"), req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		r.badSig++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if len(r.statuses) > 0 {
		st := r.statuses[0]
		r.statuses = r.statuses[1:]
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		if st != http.StatusOK {
			w.WriteHeader(st)
			return
		}
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.got = append(r.got, p)
}

func newWebhook(t *testing.T, url, secret string) (*Webhook, *[]time.Duration) {
	t.Helper()
	w, err := NewWebhook(WebhookConfig{URL: url, Secret: secret, Attempts: 4, Backoff: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	w.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return w, &waits
}

func TestWebhook(t *testing.T) {
	tests := []struct {
		name      string
		secret    string
		statuses  []int
		wantErr   bool
		wantCalls int
		wantWaits []time.Duration
	}{
		{"delivered and signed", "s3cret", nil, false, 1, nil},
		{"5xx retried with doubling backoff", "s3cret", []int{503, 500}, false, 3, []time.Duration{time.Second, 2 * time.Second}},
		{"429 waits Retry-After", "s3cret", []int{429}, false, 2, []time.Duration{7 * time.Second}},
		{"4xx not retried", "s3cret", []int{422}, true, 1, nil},
		{"attempts bounded", "s3cret", []int{502, 502, 502, 502, 502}, true, 4, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"wrong secret refused by the receiver", "other", nil, true, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := &receiver{statuses: slices.Clone(tt.statuses)}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			w, waits := newWebhook(t, srv.URL, tt.secret)
			err := w.Notify(context.Background(), []hv.Alert{alert("a1", hv.SeverityCritical, "200043495"), alert("a2", hv.SeverityWarning, "200043495")})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Notify: %v, want error %v", err, tt.wantErr)
			}
			if rcv.calls != tt.wantCalls || !slices.Equal(*waits, tt.wantWaits) {
				t.Fatalf("%d calls with waits %v, want %d with %v", rcv.calls, *waits, tt.wantCalls, tt.wantWaits)
			}
			if !tt.wantErr && (len(rcv.got) != 1 || len(rcv.got[0].Alerts) != 2 || rcv.got[0].Alerts[1].Fingerprint != "a2" ||
				rcv.got[0].Alerts[0].Labels["epci"] != "200043495") {
				t.Fatalf("received %+v", rcv.got)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	secret, body := []byte("k"), []byte(`{"alerts":[]}`)
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	sig := Sign(secret, ts, body)
	if err := Verify(secret, ts, sig, body, now, time.Minute); err != nil {
		t.Fatalf("genuine delivery refused: %v", err)
	}
	for name, check := range map[string]error{
		"tampered body":      Verify(secret, ts, sig, []byte(`{"alerts":[1]}`), now, time.Minute),
		"other timestamp":    Verify(secret, "1800000001", sig, body, now, time.Minute),
		"replayed too late":  Verify(secret, ts, sig, body, now.Add(2*time.Minute), time.Minute),
		"timestamp not int":  Verify(secret, "soon", sig, body, now, time.Minute),
		"other secret":       Verify([]byte("x"), ts, sig, body, now, time.Minute),
		"signature stripped": Verify(secret, ts, strings.TrimPrefix(sig, "sha256="), body, now, time.Minute),
	} {
		if check == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// recorder is the tests' sink: it keeps what it was given.
type recorder struct {
	mu    sync.Mutex
	got   [][]hv.Alert
	block chan struct{} // when set, Notify waits on it
	err   error
}

func (r *recorder) Notify(_ context.Context, as []hv.Alert) error {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, as)
	return r.err
}

func (r *recorder) fingerprints() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.got {
		for _, a := range b {
			out = append(out, a.Fingerprint)
		}
	}
	return out
}

func TestRouter(t *testing.T) {
	all, critical, laon := &recorder{}, &recorder{}, &recorder{err: errors.New("down")}
	r, err := NewRouter(
		Route{Name: "all", Notifier: all},
		Route{Name: "astreinte", Severities: []hv.Severity{hv.SeverityCritical}, Notifier: critical},
		Route{Name: "pilote-laon", Labels: map[string][]string{"epci": {"200043495"}}, Notifier: laon},
	)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Notify(context.Background(), []hv.Alert{
		alert("c-laon", hv.SeverityCritical, "200043495"),
		alert("w-laon", hv.SeverityWarning, "200043495"),
		alert("c-stq", hv.SeverityCritical, "200071892"),
		alert("i-stq", hv.SeverityInfo, "200071892"),
	})
	if err == nil || !strings.Contains(err.Error(), "pilote-laon") {
		t.Errorf("a failing route's error: %v", err)
	}
	for name, c := range map[string]struct {
		r    *recorder
		want []string
	}{
		"all":       {all, []string{"c-laon", "w-laon", "c-stq", "i-stq"}},
		"astreinte": {critical, []string{"c-laon", "c-stq"}},
		"laon":      {laon, []string{"c-laon", "w-laon"}},
	} {
		if got := c.r.fingerprints(); !slices.Equal(got, c.want) {
			t.Errorf("%s got %v, want %v", name, got, c.want)
		}
	}
	if _, err := NewRouter(Route{Name: "nowhere"}); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("route without notifier: %v", err)
	}
}

// TestQueue: batches are delivered in order; while the receiver is stuck the bounded queue fills and further
// batches are dropped and counted, never blocking the caller.
func TestQueue(t *testing.T) {
	rec := &recorder{block: make(chan struct{})}
	q := NewQueue(rec, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	// The first batch is taken by Run and blocks in the notifier; two more fill the queue; the fourth is dropped.
	if err := q.Notify(ctx, []hv.Alert{alert("1", hv.SeverityInfo, "")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(q.ch) != 0 && time.Now().Before(deadline) { // Run has taken it
		time.Sleep(time.Millisecond)
	}
	for i := 2; i <= 3; i++ {
		if err := q.Notify(ctx, []hv.Alert{alert(fmt.Sprint(i), hv.SeverityInfo, "")}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := q.Notify(ctx, []hv.Alert{alert("4", hv.SeverityInfo, ""), alert("5", hv.SeverityInfo, "")}); !errors.Is(err, hv.ErrUnavailable) {
		t.Fatalf("full queue: %v", err)
	}
	if q.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2", q.Dropped())
	}
	close(rec.block)
	for len(rec.fingerprints()) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := rec.fingerprints(); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("delivered %v", got)
	}
	cancel()
	<-done
}

// TestMQTTIntegration: alerts reach a subscriber of hv/alerts/# on their severity's topic, through the
// embedded broker.
func TestMQTTIntegration(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b, err := broker.Start(broker.Config{Listen: addr}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	connect := func(id string) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	got := make(chan paho.Message, 10)
	sub := connect("sub")
	if tok := sub.Subscribe("hv/alerts/#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	n := NewMQTT(connect("hyperviseur"), 10*time.Second)
	if err := n.Notify(context.Background(), []hv.Alert{alert("c", hv.SeverityCritical, "200043495"), alert("w", hv.SeverityWarning, "")}); err != nil {
		t.Fatal(err)
	}
	topics := map[string]string{}
	for range 2 {
		select {
		case m := <-got:
			var a hv.Alert
			if err := json.Unmarshal(m.Payload(), &a); err != nil {
				t.Fatal(err)
			}
			topics[a.Fingerprint] = m.Topic()
		case <-time.After(10 * time.Second):
			t.Fatalf("alerts received: %v", topics)
		}
	}
	if topics["c"] != "hv/alerts/critical" || topics["w"] != "hv/alerts/warning" {
		t.Fatalf("topics %v", topics)
	}
}
