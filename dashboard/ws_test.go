package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/live"
)

// dialWS opens the live feed as who, the token in the header or (browser style) as a subprotocol.
func (f *fixture) dialWS(t *testing.T, srv *httptest.Server, query, who, origin string, subprotocol bool) (*websocket.Conn, int) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if tok := f.tokens[who]; tok != "" {
		if subprotocol {
			d.Subprotocols = []string{wsProtocol, wsBearerPrefix + tok}
		} else {
			h.Set("Authorization", "Bearer "+tok)
		}
	}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/ws"+query, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.Close() })
	return c, resp.StatusCode
}

func readEvent(t *testing.T, c *websocket.Conn) live.Event {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var e live.Event
	if err := c.ReadJSON(&e); err != nil {
		t.Fatalf("read event: %v", err)
	}
	return e
}

// waitSubscribers waits for the hub to have n subscribers: the handler subscribes after the handshake.
func waitSubscribers(t *testing.T, h *live.Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", h.Subscribers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLiveFeed(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()

	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			name, query, who, origin string
			want                     int
		}{
			{"anonymous", "", "", "", 401},
			{"cross-site origin", "", "admin", "https://evil.example.com", 403},
			{"pilote asking another EPCI", "?epci=" + epciSQ, "pilote", "", 403},
			{"unknown parameter", "?since=1", "admin", "", 400},
			{"unknown metric", "?metric=watts", "admin", "", 400},
		} {
			if _, code := f.dialWS(t, srv, c.query, c.who, c.origin, false); code != c.want {
				t.Errorf("%s: HTTP %d, want %d", c.name, code, c.want)
			}
		}
		if n := f.hub.Subscribers(); n != 0 {
			t.Fatalf("%d subscribers after refusals", n)
		}
	})

	// The pilote of Laon (browser style: token as subprotocol, same-origin page) and the admin watching
	// power only, from the configured dashboard origin.
	pilote, code := f.dialWS(t, srv, "", "pilote", srv.URL, true)
	if code != http.StatusSwitchingProtocols || pilote.Subprotocol() != wsProtocol {
		t.Fatalf("pilote: HTTP %d, subprotocol %q", code, pilote.Subprotocol())
	}
	admin, _ := f.dialWS(t, srv, "?metric=power_w", "admin", "https://hyperviseur.example.fr", false)
	waitSubscribers(t, f.hub, 2)

	at := now.UnixMilli()
	f.hub.PublishReadings([]hv.Reading{
		{Device: "elec-laon", Metric: hv.PowerW, Value: 1200, Time: at, EPCI: epciLaon, Site: "mairie-laon"},
		{Device: "elec-laon", Metric: hv.EnergyKWh, Value: 10, Time: at, EPCI: epciLaon, Site: "mairie-laon"},
		{Device: "elec-sq", Metric: hv.PowerW, Value: 800, Time: at, EPCI: epciSQ, Site: "ecole-sq"},
		{Device: "ghost", Metric: hv.PowerW, Value: 7, Time: at},
	})
	e := readEvent(t, pilote)
	if e.Type != live.EventReadings || len(e.Readings) != 2 || e.Readings[0].EPCI != epciLaon || e.Readings[1].EPCI != epciLaon {
		t.Fatalf("pilote got %+v, want the two readings of Laon", e)
	}
	e = readEvent(t, admin)
	if len(e.Readings) != 3 || e.Readings[2].Device != "ghost" {
		t.Fatalf("admin (power only) got %+v, want the three power readings", e)
	}
	alert := hv.Alert{Fingerprint: "f1", Rule: "leak", Severity: hv.SeverityWarning, State: hv.AlertFiring,
		Labels: map[string]string{"device": "elec-sq", "epci": epciSQ}}
	_ = f.hub.Notify(t.Context(), []hv.Alert{alert})
	if e = readEvent(t, admin); e.Type != live.EventAlert || e.Alert.Fingerprint != "f1" {
		t.Fatalf("admin got %+v, want the alert", e)
	}

	// The pilote receives nothing of Saint-Quentin: the next thing it gets is Laon's.
	alert.Fingerprint, alert.Labels = "f2", map[string]string{"device": "elec-laon", "epci": epciLaon}
	_ = f.hub.Notify(t.Context(), []hv.Alert{alert})
	if e = readEvent(t, pilote); e.Type != live.EventAlert || e.Alert.Fingerprint != "f2" {
		t.Fatalf("pilote got %+v, want the alert of Laon only", e)
	}

	// A client that leaves is unsubscribed.
	pilote.Close()
	waitSubscribers(t, f.hub, 1)
}
