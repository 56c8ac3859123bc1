package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/live"
)

// The live feed: GET /api/v1/ws upgrades to a websocket on which the server pushes live.Event JSON messages
// (readings as they are stored, alerts as they change) within the caller's scope, narrowed by the query
// parameters device, site, epci and metric.
//
// Browsers cannot set an Authorization header on a websocket: they pass the token as a subprotocol,
// "hyperviseur.bearer.<token>", next to "hyperviseur.v1", which the server selects (the Kubernetes API does
// the same). The dashboard's session cookie works too: browsers send it with the upgrade, and the Origin
// check below keeps another site's page from riding it.
const (
	wsProtocol      = "hyperviseur.v1"
	wsBearerPrefix  = "hyperviseur.bearer."
	wsBuffer        = 256 // events queued for one client before it is dropped as too slow
	wsWriteTimeout  = 10 * time.Second
	wsPingInterval  = 30 * time.Second
	wsPongTimeout   = 70 * time.Second // two pings missed
	wsMaxClientSize = 4096             // the client only sends control frames and small messages
)

var wsParams = []string{"device", "site", "epci", "metric"}

func (s *Server) ws(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Hub == nil {
		writeError(w, http.StatusNotFound, "live feed not enabled")
		return
	}
	f, err := s.wsFilter(r.URL.Query(), p)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			writeError(w, he.status, he.msg)
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	conn, err := s.upgrader(1024, 16<<10).Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	sub := s.deps.Hub.Subscribe(f, wsBuffer)
	s.log.Debug("live feed opened", "user", p.Name, "remote", r.RemoteAddr)
	go s.wsRead(conn, sub)
	s.wsWrite(conn, sub)
}

// upgrader upgrades the server's websockets: subprotocol hyperviseur.v1, the Origin checked, errors in JSON.
func (s *Server) upgrader(readBuf, writeBuf int) *websocket.Upgrader {
	return &websocket.Upgrader{
		Subprotocols:    []string{wsProtocol},
		CheckOrigin:     s.checkOrigin,
		ReadBufferSize:  readBuf,
		WriteBufferSize: writeBuf,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, reason.Error())
		},
	}
}

// wsFilter is the caller's scope narrowed by the query; asking for an EPCI outside the scope is refused.
func (s *Server) wsFilter(v url.Values, p Principal) (live.Filter, error) {
	for k := range v {
		if !slices.Contains(wsParams, k) {
			return live.Filter{}, badRequest("%s: unknown parameter (want %s)", k, strings.Join(wsParams, ", "))
		}
	}
	q, err := parseFilters(v, s.reg().Territory(), wsParams...)
	if err != nil {
		return live.Filter{}, err
	}
	sc := scopeOf(p)
	f := live.Filter{AllEPCIs: sc.all, EPCIs: sc.epcis, Devices: q["device"], Sites: q["site"]}
	for _, m := range q["metric"] {
		f.Metrics = append(f.Metrics, hv.Metric(m))
	}
	if epcis := q["epci"]; len(epcis) > 0 {
		for _, e := range epcis {
			if !sc.has(e) {
				return live.Filter{}, &httpError{http.StatusForbidden, "epci " + e + ": outside your scope"}
			}
		}
		f.AllEPCIs, f.EPCIs = false, epcis
	}
	return f, nil
}

// checkOrigin lets through non-browser clients (no Origin), the dashboard itself (same host) and the
// origins configured; anything else is a cross-site page trying to ride the user's credentials.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) || slices.Contains(s.deps.AllowedOrigins, origin) {
		return true
	}
	s.log.Warn("live feed refused: cross-origin request", "origin", origin, "host", r.Host)
	return false
}

// wsRead reads (and discards) what the client sends, to process control frames and notice it leaving.
func (s *Server) wsRead(conn *websocket.Conn, sub *live.Subscription) {
	defer s.deps.Hub.Unsubscribe(sub)
	conn.SetReadLimit(wsMaxClientSize)
	_ = conn.SetReadDeadline(time.Now().Add(wsPongTimeout))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wsPongTimeout)) })
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// wsWrite pushes the subscription's events and pings until the client leaves or is dropped for being slow.
func (s *Server) wsWrite(conn *websocket.Conn, sub *live.Subscription) {
	ping := time.NewTicker(wsPingInterval)
	defer func() {
		ping.Stop()
		s.deps.Hub.Unsubscribe(sub)
		conn.Close()
	}()
	for {
		select {
		case e, ok := <-sub.C():
			_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			if !ok {
				// Dropped by the hub (too slow) or the reader saw the client leave.
				_ = conn.WriteMessage(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow: reconnect and reload"))
				return
			}
			if err := conn.WriteJSON(e); err != nil {
				return
			}
		case <-ping.C:
			_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			if err := conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// wsBearer moves a token offered as a websocket subprotocol into the Authorization header, so the
// Authenticator sees it as any other bearer token.
func wsBearer(r *http.Request) *http.Request {
	if r.Header.Get("Authorization") != "" {
		return r
	}
	for _, p := range websocket.Subprotocols(r) {
		if tok, ok := strings.CutPrefix(p, wsBearerPrefix); ok && tok != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}
	}
	return r
}
