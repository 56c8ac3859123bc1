// Package dashboard serves the HTTP API of the hypervisor: health and metrics for operators, and under
// /api/v1 the territory, the registry, live values and series for technicians and EPCI pilots. Every /api/v1
// route goes through an Authenticator; a scoped principal (a pilote) only ever receives data of its EPCI.
package dashboard

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// Deps is what the API reads. Store, Registry, Live and Auth are required.
type Deps struct {
	Store        hv.Store
	Registry     *registry.Registry
	Unregistered *registry.Unregistered // nil: no unregistered devices reported
	Live         *live.State
	Auth         Authenticator
	// Ready says whether the service can do its job (broker connected, store writable); nil error = ready.
	Ready   func(ctx context.Context) error
	Metrics http.Handler // the Prometheus handler, built by the caller who owns the registry of collectors
	Formats []string     // registered payload decoders, for /api/v1/ingest/formats
	// Hub feeds the websocket /api/v1/ws; nil: no live feed. AllowedOrigins are the browser origins, besides
	// the server's own host, that may open it.
	Hub            *live.Hub
	AllowedOrigins []string
	// MapTiles is the raster background of the web UI's map; zero: none.
	MapTiles MapTiles
	// Alerts and Rules are the rules engine (*rules.Manager, *rules.Engine); nil: its routes answer 404.
	Alerts Alerts
	Rules  Rules
	// Lighting is street-lighting control; nil: its routes answer 404.
	Lighting *lighting.Service
	// Consumption is the consumption analytics (rollups); nil: its routes answer 404.
	Consumption *reporting.Analytics
	// BACS is the décret BACS report (monthly archive, losses of efficiency); nil: its routes answer 404.
	BACS *reporting.BACS
	// Accounts are the users (login sessions, stored API tokens, the user admin API); nil: those routes
	// answer 404. Its authenticators go into Auth: Chain(accounts.Sessions(), accounts.Tokens(), …).
	Accounts *Accounts
	// Audit is the audit log of logins and user changes, and the one /api/v1/audit reads; nil: the
	// lighting service's (the same table), else logins are only logged.
	Audit AuditLog
}

// Limits of the series API: beyond them a response is too large for a browser to draw anyway.
const (
	MaxPoints      = 100_000
	maxMetrics     = 10
	maxParamValues = 500
	queryTimeout   = 30 * time.Second
	readyTimeout   = 2 * time.Second
)

//go:embed openapi.json
var openAPI []byte

// Server is the HTTP API.
type Server struct {
	deps     Deps
	registry atomic.Pointer[registry.Registry]
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []route
	now      func() time.Time

	boardOnce sync.Once
	board     *boardFeed // the /ws feed (wsboard.go), made on first use
}

// route is one entry of the route table: the table is registered on the mux and walked by the test that
// checks the OpenAPI document covers every route.
type route struct {
	method, path string
	roles        []Role // nil: public, no authentication
	h            func(w http.ResponseWriter, r *http.Request, p Principal)
}

var (
	allRoles   = Roles
	staffRoles = []Role{RoleAdmin, RoleTechnicien} // the syndicate's people who act on alerts
	adminRoles = []Role{RoleAdmin}
)

// New builds the server. It panics when a required dependency is missing: that is a wiring bug.
func New(deps Deps, logger *slog.Logger) *Server {
	switch {
	case deps.Auth == nil:
		panic("dashboard: Deps.Auth is required")
	case deps.Store == nil, deps.Registry == nil, deps.Live == nil:
		panic("dashboard: Deps.Store, Deps.Registry and Deps.Live are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{deps: deps, log: logger, mux: http.NewServeMux(), now: time.Now}
	s.registry.Store(deps.Registry)
	s.routes = []route{
		{"GET", "/healthz", nil, s.healthz},
		{"GET", "/readyz", nil, s.readyz},
		{"GET", "/metrics", nil, s.metrics},
		{"GET", "/api/openapi.json", nil, s.openapi},
		{"GET", webIndexPath, nil, s.webIndex}, // the web UI (web.go): public files, data from the API
		{"GET", webStaticPath, nil, s.webStatic},
		{"GET", "/api/v1/me", allRoles, s.me},
		{"GET", "/api/v1/ui", allRoles, s.uiSettings},
		{"POST", "/api/v1/session", nil, s.login},
		{"DELETE", "/api/v1/session", allRoles, s.logout},
		{"GET", "/api/v1/users", adminRoles, s.listUsers},
		{"POST", "/api/v1/users", adminRoles, s.createUser},
		{"PATCH", "/api/v1/users/{name}", adminRoles, s.patchUser},
		{"DELETE", "/api/v1/users/{name}", adminRoles, s.deleteUser},
		{"GET", "/api/v1/territory", allRoles, s.territory},
		{"GET", "/api/v1/sites", allRoles, s.sites},
		{"GET", "/api/v1/devices", allRoles, s.devices},
		{"GET", "/api/v1/devices/unregistered", []Role{RoleAdmin, RoleTechnicien}, s.unregistered},
		{"GET", "/api/v1/devices/{id}/latest", allRoles, s.latest},
		{"GET", "/api/v1/series", allRoles, s.series},
		{"GET", "/api/v1/ingest/formats", allRoles, s.formats},
		{"GET", "/api/v1/lighting/sun", allRoles, s.sunTimes},
		{"GET", "/api/v1/lighting/groups", allRoles, s.lightingGroups},
		{"GET", "/api/v1/lighting/groups/{name}", allRoles, s.lightingGroup},
		{"GET", "/api/v1/lighting/devices/{id}", allRoles, s.lightingDevice},
		{"GET", "/api/v1/lighting/programs", allRoles, s.lightingPrograms},
		{"GET", "/api/v1/lighting/programs/{name}", allRoles, s.lightingProgram},
		{"PUT", "/api/v1/lighting/programs/{name}", staffRoles, s.putProgram},
		{"DELETE", "/api/v1/lighting/programs/{name}", staffRoles, s.deleteProgram},
		{"GET", "/api/v1/lighting/programs/{name}/preview", allRoles, s.previewProgram},
		{"GET", "/api/v1/lighting/overrides", allRoles, s.lightingOverrides},
		{"POST", "/api/v1/lighting/overrides", staffRoles, s.createOverride},
		{"DELETE", "/api/v1/lighting/overrides/{id}", staffRoles, s.cancelOverride},
		{"GET", "/api/v1/lighting/commands", allRoles, s.lightingCommands},
		{"GET", "/api/v1/lighting/commands/{id}", allRoles, s.lightingCommand},
		{"GET", "/api/v1/lighting/maintenance", allRoles, s.maintenance},
		{"POST", "/api/v1/lighting/maintenance/{id}/close", staffRoles, s.closeWork},
		{"GET", "/api/v1/lighting/savings", allRoles, s.lightingSavings},
		{"GET", "/api/v1/lighting/compliance", allRoles, s.lightingCompliance},
		{"GET", "/api/v1/lighting/life", allRoles, s.lightingLife},
		{"GET", "/api/v1/audit", staffRoles, s.audit},
		{"GET", "/api/v1/consumption", allRoles, s.consumption},
		{"GET", "/api/v1/consumption/ranking", allRoles, s.ranking},
		{"GET", "/api/v1/exports/operat", allRoles, s.exportOperat},
		{"GET", "/api/v1/exports/opendata", allRoles, s.exportOpenData},
		{"GET", "/api/v1/bacs", allRoles, s.bacs},
		{"GET", "/api/v1/exports/bacs", allRoles, s.exportBACS},
		{"GET", "/api/v1/tertiaire", allRoles, s.tertiaire},
		{"GET", "/api/v1/exports/tertiaire", allRoles, s.exportTertiaire},
		{"GET", "/api/v1/exports/csv", allRoles, s.exportCSV},
		{"GET", "/api/v1/exports/json", allRoles, s.exportJSON},
		{"GET", "/api/v1/power/sites/{id}", allRoles, s.siteLoad},
		{"GET", "/api/v1/power/sites/{id}/subscription", allRoles, s.siteSubscription},
		{"GET", "/api/v1/power/peaks", allRoles, s.coincidentPeak},
		{"GET", "/api/v1/ws", allRoles, s.ws},
		{"GET", "/ws", allRoles, s.wsBoard},
		{"GET", "/api/v1/alerts", allRoles, s.alerts},
		{"GET", "/api/v1/alerts/{id}", allRoles, s.alert},
		{"POST", "/api/v1/alerts/{id}/ack", staffRoles, s.ackAlert},
		{"GET", "/api/v1/silences", allRoles, s.silences},
		{"POST", "/api/v1/silences", staffRoles, s.addSilence},
		{"DELETE", "/api/v1/silences/{id}", staffRoles, s.expireSilence},
		{"GET", "/api/v1/rules", allRoles, s.rulesStatus},
		{"POST", "/api/v1/rules/reload", []Role{RoleAdmin}, s.reloadRules},
	}
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	return s
}

// SetRegistry swaps the registry, e.g. after an edit; requests in flight finish with the previous one.
func (s *Server) SetRegistry(r *registry.Registry) { s.registry.Store(r) }

func (s *Server) reg() *registry.Registry { return s.registry.Load() }

// Handler returns the HTTP handler: recovery, headers, then the routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("http handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"duration", s.now().Sub(start))
		}()
		h := sw.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		s.serve(sw, r)
	})
}

// serve answers unmatched requests in JSON like the rest: the mux's own 404 and 405 are plain text.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // not h: only the mux's ServeHTTP fills r.PathValue
		return
	}
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status != http.StatusNotFound && rec.status != http.StatusMethodNotAllowed {
		s.mux.ServeHTTP(w, r) // a redirect to the clean path
		return
	}
	// Below /api/v1 even a wrong path needs credentials: an anonymous caller learns nothing of the routes.
	if strings.HasPrefix(r.URL.Path, "/api/v1/") {
		if _, ok := s.authenticate(w, r); !ok {
			return
		}
	}
	if allow := rec.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	writeError(w, rec.status, strings.ToLower(http.StatusText(rec.status)))
}

func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.roles == nil {
			rt.h(w, r, Principal{})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if rt.path == "/api/v1/ws" || rt.path == "/ws" {
			r = wsBearer(r)
		}
		p, ok := s.authenticate(w, r)
		if !ok || !s.checkCSRF(w, r, p) {
			return
		}
		if !p.Role.Valid() || !slices.Contains(rt.roles, p.Role) {
			writeError(w, http.StatusForbidden, "forbidden: role "+string(p.Role)+" may not use this resource")
			return
		}
		rt.h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)), p)
	})
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	p, err := s.deps.Auth.Authenticate(r)
	switch {
	case err == nil:
		return p, true
	case errors.Is(err, ErrNoCredentials):
		w.Header().Set("WWW-Authenticate", `Bearer realm="hyperviseur"`)
		writeError(w, http.StatusUnauthorized, "authentication required")
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="hyperviseur", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid credentials")
	default:
		s.log.Error("authenticate", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "authentication unavailable")
	}
	return Principal{}, false
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ Principal) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ Principal) {
	if s.deps.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		// Not logged: probes run every few seconds and the cause is in the answer and in the metrics.
		if err := s.deps.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, _ Principal) {
	if s.deps.Metrics == nil {
		writeError(w, http.StatusNotFound, "metrics not enabled")
		return
	}
	s.deps.Metrics.ServeHTTP(w, r)
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ Principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPI)
}

// writeJSON encodes first so an encoding failure is a clean 500, not a truncated 200.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error: response encoding"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines of the real writer (streaming later).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recorder captures what the mux would answer to an unmatched request.
type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
