package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/live"
)

// The dashboard's websocket, GET /ws: the client subscribes to scopes and the server sends a snapshot of
// them, then coalesced deltas at most every boardTick — never one message per reading, so a browser showing
// 100 000 devices is not flooded: at the département's or an EPCI's zoom the client receives one aggregate
// per commune, devices only for the commune or site it opens.
//
// Client → server, JSON text messages:
//
//	{"type":"subscribe","scopes":["departement","epci:<SIREN>","commune:<INSEE>","site:<id>","alerts"]}
//
// replaces the subscription (at most boardMaxScopes scopes). departement and epci:<SIREN> carry communes;
// commune:<INSEE> its commune and its devices; site:<id> the site's devices; alerts the open alerts. Every
// scope is within the caller's: a pilote's "departement" is its EPCIs' communes; a scope outside is refused
// with an error message and the subscription left as it was.
//
// Server → client:
//
//	{"type":"snapshot","seq":N,"scopes":[…],"communes":[…],"devices":[…],"alerts":[…]}   after each subscribe
//	{"type":"delta","seq":N,"communes":[…],"devices":[…],"alerts":[…]}                    what changed
//	{"type":"error","error":"…"}
//
// communes are live.CommuneState (power_w by fluid, devices, stale, alerts by severity), devices
// live.DeviceState (newest value of each metric), alerts hv.Alert (a resolved one leaves the open set). A
// delta's entries replace the client's; seq grows by one per tick, so a gap means nothing: entries are whole
// states, not differences.
//
// A client that does not read is dropped (close code 1013, "try again later") when boardQueue messages wait
// for it: the fan-out never blocks on a client. Pings every wsPingInterval, a client silent for
// wsPongTimeout is closed, every write has wsWriteTimeout.
const (
	boardTick      = 250 * time.Millisecond
	boardQueue     = 16
	boardMaxScopes = 32
	boardMaxMsg    = 16 << 10
	boardBuffer    = 1 << 14 // the board's own subscription to the hub, in events
)

// boardFeed is the board and the clients of /ws.
type boardFeed struct {
	board  *live.Board
	start  sync.Once
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	clients map[*boardClient]struct{}

	sent, dropped atomic.Uint64
}

// boardClient is one /ws connection.
type boardClient struct {
	p     Principal
	conn  *websocket.Conn
	out   chan []byte
	gone  chan struct{}
	close sync.Once

	mu       sync.Mutex
	scopes   []boardScope
	key      string // the scopes, canonical: clients with the same key share the tick's message
	snapshot bool   // a subscribe is waiting for its snapshot
}

// boardScope is one parsed scope.
type boardScope struct {
	kind, id string
}

func (c *boardClient) enqueue(msg []byte) bool {
	select {
	case c.out <- msg:
		return true
	default:
		return false
	}
}

func (c *boardClient) drop() { c.close.Do(func() { close(c.gone) }) }

// run starts the board and its fan-out the first time a client comes, the board seeded with the newest
// values the service holds (seed), then fed by the hub.
func (f *boardFeed) run(hub *live.Hub, seed func() []hv.Reading) {
	f.start.Do(func() {
		f.board.Seed(seed())
		go f.board.Follow(f.ctx, hub, boardBuffer)
		go f.fanOut(f.ctx, boardTick)
	})
}

// fanOut sends each tick's changes to the clients whose scopes they touch, and the snapshots asked for.
func (f *boardFeed) fanOut(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.tick()
		}
	}
}

func (f *boardFeed) tick() {
	ch := f.board.Flush()
	f.mu.Lock()
	clients := make([]*boardClient, 0, len(f.clients))
	for c := range f.clients {
		clients = append(clients, c)
	}
	f.mu.Unlock()
	shared := map[string][]byte{} // per scope key and principal scope: the same message
	for _, c := range clients {
		select {
		case <-c.gone: // dropped or leaving: its handler removes it
			continue
		default:
		}
		c.mu.Lock()
		scopes, key, snap := c.scopes, c.key, c.snapshot
		c.snapshot = false
		c.mu.Unlock()
		var msg []byte
		if snap {
			msg = f.snapshot(ch.Seq, c.p, scopes)
		} else {
			if ch.Empty() || len(scopes) == 0 {
				continue
			}
			k := principalKey(c.p) + "|" + key
			var ok bool
			if msg, ok = shared[k]; !ok {
				msg = f.delta(ch, c.p, scopes)
				shared[k] = msg
			}
		}
		if msg == nil {
			continue
		}
		if !c.enqueue(msg) {
			f.dropped.Add(1)
			c.drop()
			continue
		}
		f.sent.Add(1)
	}
}

// boardMessage is a snapshot or a delta.
type boardMessage struct {
	Type     string              `json:"type"`
	Seq      uint64              `json:"seq"`
	Scopes   []string            `json:"scopes,omitempty"`
	Communes []live.CommuneState `json:"communes"`
	Devices  []live.DeviceState  `json:"devices"`
	Alerts   []hv.Alert          `json:"alerts"`
}

// matcher says what of the board a client's scopes select.
type matcher struct {
	sc     scope
	scopes []boardScope
}

func (m matcher) commune(c live.CommuneState) bool {
	if !m.sc.has(c.EPCI) {
		return false
	}
	for _, s := range m.scopes {
		switch {
		case s.kind == "departement",
			s.kind == "epci" && s.id == c.EPCI,
			s.kind == "commune" && s.id == c.Commune:
			return true
		}
	}
	return false
}

func (m matcher) device(d *live.DeviceState) bool {
	if !m.sc.has(d.EPCI) {
		return false
	}
	for _, s := range m.scopes {
		switch {
		case s.kind == "commune" && s.id == d.Commune, s.kind == "site" && s.id == d.Site:
			return true
		}
	}
	return false
}

func (m matcher) alert(a *hv.Alert) bool {
	return m.sc.has(a.Labels["epci"]) && slices.ContainsFunc(m.scopes, func(s boardScope) bool { return s.kind == "alerts" })
}

func (f *boardFeed) snapshot(seq uint64, p Principal, scopes []boardScope) []byte {
	m := matcher{scopeOf(p), scopes}
	msg := boardMessage{Type: "snapshot", Seq: seq,
		Communes: f.board.Communes(func(c, epci string) bool { return m.commune(live.CommuneState{Commune: c, EPCI: epci}) }),
		Devices:  f.board.Devices(m.device),
		Alerts:   f.board.Alerts(m.alert)}
	for _, s := range scopes {
		msg.Scopes = append(msg.Scopes, s.String())
	}
	return marshalBoard(msg)
}

func (f *boardFeed) delta(ch live.Changes, p Principal, scopes []boardScope) []byte {
	m := matcher{scopeOf(p), scopes}
	msg := boardMessage{Type: "delta", Seq: ch.Seq}
	for _, c := range ch.Communes {
		if m.commune(c) {
			msg.Communes = append(msg.Communes, c)
		}
	}
	for i := range ch.Devices {
		if m.device(&ch.Devices[i]) {
			msg.Devices = append(msg.Devices, ch.Devices[i])
		}
	}
	for i := range ch.Alerts {
		if m.alert(&ch.Alerts[i]) {
			msg.Alerts = append(msg.Alerts, ch.Alerts[i])
		}
	}
	if len(msg.Communes) == 0 && len(msg.Devices) == 0 && len(msg.Alerts) == 0 {
		return nil
	}
	return marshalBoard(msg)
}

func marshalBoard(msg boardMessage) []byte {
	if msg.Communes == nil {
		msg.Communes = []live.CommuneState{}
	}
	if msg.Devices == nil {
		msg.Devices = []live.DeviceState{}
	}
	if msg.Alerts == nil {
		msg.Alerts = []hv.Alert{}
	}
	b, err := json.Marshal(msg)
	if err != nil { // the board's types always marshal; a NaN value would not
		b, _ = json.Marshal(map[string]string{"type": "error", "error": "unencodable update: " + err.Error()})
	}
	return b
}

func (s boardScope) String() string {
	if s.id == "" {
		return s.kind
	}
	return s.kind + ":" + s.id
}

// parseBoardScopes checks a subscribe message's scopes against the caller's.
func (s *Server) parseBoardScopes(p Principal, raw []string) ([]boardScope, error) {
	if len(raw) > boardMaxScopes {
		return nil, badRequest("scopes: at most %d", boardMaxScopes)
	}
	var out []boardScope
	for _, r := range raw {
		kind, id, _ := strings.Cut(r, ":")
		switch kind {
		case "departement", "alerts":
			if id != "" {
				return nil, badRequest("scope %q: %s takes no code", r, kind)
			}
		case "epci", "commune", "site":
			ok, err := s.scopeAllowed(p, r)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, &httpError{http.StatusForbidden, "scope " + r + ": outside your EPCIs"}
			}
		default:
			return nil, badRequest("scope %q: want departement, epci:<SIREN>, commune:<INSEE>, site:<id> or alerts", r)
		}
		if bs := (boardScope{kind, id}); !slices.Contains(out, bs) {
			out = append(out, bs)
		}
	}
	slices.SortFunc(out, func(a, b boardScope) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// wsBoard upgrades GET /ws.
func (s *Server) wsBoard(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Hub == nil {
		writeError(w, http.StatusNotFound, "live feed not enabled")
		return
	}
	conn, err := s.upgrader(4096, 32<<10).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f := s.boardFeed()
	f.run(s.deps.Hub, s.boardSeed)
	c := &boardClient{p: p, conn: conn, out: make(chan []byte, boardQueue), gone: make(chan struct{})}
	f.mu.Lock()
	f.clients[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.clients, c)
		f.mu.Unlock()
	}()
	go s.boardRead(c)
	s.boardWrite(c)
}

// boardRead handles subscribe messages and control frames until the client leaves.
func (s *Server) boardRead(c *boardClient) {
	defer c.drop()
	c.conn.SetReadLimit(boardMaxMsg)
	_ = c.conn.SetReadDeadline(time.Now().Add(wsPongTimeout))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wsPongTimeout)) })
	for {
		var msg struct {
			Type   string   `json:"type"`
			Scopes []string `json:"scopes"`
		}
		if err := c.conn.ReadJSON(&msg); err != nil {
			var syn *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if errors.As(err, &syn) || errors.As(err, &typ) {
				if !c.enqueue(errorMessage("malformed message: " + err.Error())) {
					return
				}
				continue
			}
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(wsPongTimeout))
		if msg.Type != "subscribe" {
			if !c.enqueue(errorMessage("unknown message type " + msg.Type + ": want subscribe")) {
				return
			}
			continue
		}
		scopes, err := s.parseBoardScopes(c.p, msg.Scopes)
		if err != nil {
			text := err.Error()
			var he *httpError
			if errors.As(err, &he) {
				text = he.msg
			}
			if !c.enqueue(errorMessage(text)) {
				return
			}
			continue
		}
		keys := make([]string, len(scopes))
		for i, sc := range scopes {
			keys[i] = sc.String()
		}
		c.mu.Lock()
		c.scopes, c.key, c.snapshot = scopes, strings.Join(keys, ","), true
		c.mu.Unlock()
	}
}

func errorMessage(text string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "error", "error": text})
	return b
}

// boardWrite sends the client's queue and pings until it leaves or is dropped.
func (s *Server) boardWrite(c *boardClient) {
	ping := time.NewTicker(wsPingInterval)
	defer func() {
		ping.Stop()
		c.drop()
		c.conn.Close()
	}()
	for {
		select {
		case msg := <-c.out:
			_ = c.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ping.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.gone:
			_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.conn.WriteMessage(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow or gone: reconnect and subscribe again"))
			return
		}
	}
}

// boardFeed returns the server's feed, made on first use.
func (s *Server) boardFeed() *boardFeed {
	s.boardOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.board = &boardFeed{board: live.NewBoard(0, func() time.Time { return s.now() }), clients: map[*boardClient]struct{}{}, ctx: ctx, cancel: cancel}
	})
	return s.board
}

// boardSeed is the newest value of each metric of every registered device, labelled from the registry.
func (s *Server) boardSeed() []hv.Reading {
	reg := s.reg()
	var out []hv.Reading
	for _, d := range reg.Devices() {
		latest, ok := s.deps.Live.Latest(d.ID)
		if !ok {
			continue
		}
		site, _ := reg.Site(d.Site)
		for _, r := range latest {
			r.Site, r.Commune, r.EPCI, r.Fluid = site.ID, site.Commune, site.EPCI, d.Fluid
			out = append(out, r)
		}
	}
	return out
}

// Close stops the websocket board's goroutines, if they were started.
func (s *Server) Close() { s.boardFeed().cancel() }

// principalKey names what a principal may see: principals with the same key get the same delta.
func principalKey(p Principal) string {
	sc := scopeOf(p)
	if sc.all {
		return "*"
	}
	return strings.Join(sc.epcis, ",")
}
