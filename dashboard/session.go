package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/useda02/hyperviseur/internal/users"
	"github.com/useda02/hyperviseur/lighting"
)

// Browser sessions: POST /api/v1/session with {"username","password"} answers the principal and its CSRF
// token and sets the cookie hv_session (256 random bits; the database keeps their SHA-256). The cookie is
// HttpOnly and SameSite=Strict; every state-changing request it authenticates must also carry the header
// X-CSRF-Token (csrf.go). DELETE /api/v1/session logs out.

// SessionCookie is the name of the session cookie.
const SessionCookie = "hv_session"

// maxSessionID bounds the cookie value looked up: a real id is 43 characters.
const maxSessionID = 128

// AccountsOptions tune sessions and login rate limits; zero values take the defaults.
type AccountsOptions struct {
	Idle time.Duration // a session unused this long ends; default 8h
	Max  time.Duration // a session ends this long after the login, used or not; default 7 days
	// SecureCookies marks the cookie Secure even on plain HTTP (TLS terminated by a proxy); behind TLS it
	// always is.
	SecureCookies bool
	// UserFailures and IPFailures failed logins within FailureWindow lock the user name or the client
	// address until the oldest leaves the window; default 5 and 20 (an address may be a town hall's NAT),
	// 15 minutes.
	UserFailures, IPFailures int
	FailureWindow            time.Duration
	Now                      func() time.Time // default time.Now
}

// Accounts is the user store seen from HTTP: session and stored-token authenticators, login rate limits, and
// the store the admin API edits.
type Accounts struct {
	store        *users.Store
	opts         AccountsOptions
	log          *slog.Logger
	byUser, byIP *loginLimiter
	lockouts     atomic.Int64
	failures     atomic.Int64
}

// maxLimiterKeys bounds the memory of each login limiter.
const maxLimiterKeys = 10_000

// NewAccounts serves the users of store.
func NewAccounts(store *users.Store, opts AccountsOptions, logger *slog.Logger) *Accounts {
	if opts.Idle <= 0 {
		opts.Idle = 8 * time.Hour
	}
	if opts.Max <= 0 {
		opts.Max = 7 * 24 * time.Hour
	}
	if opts.UserFailures <= 0 {
		opts.UserFailures = 5
	}
	if opts.IPFailures <= 0 {
		opts.IPFailures = 20
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Accounts{store: store, opts: opts, log: logger,
		byUser: newLoginLimiter(opts.UserFailures, opts.FailureWindow, maxLimiterKeys),
		byIP:   newLoginLimiter(opts.IPFailures, opts.FailureWindow, maxLimiterKeys)}
}

// Store is the user store.
func (a *Accounts) Store() *users.Store { return a.store }

// Lockouts and Failures count login lockouts and failed logins since the start, for metrics.
func (a *Accounts) Lockouts() int64 { return a.lockouts.Load() }
func (a *Accounts) Failures() int64 { return a.failures.Load() }

func (a *Accounts) lifetime() users.Lifetime {
	return users.Lifetime{Idle: a.opts.Idle, Max: a.opts.Max}
}

// sessionRef is what a session principal carries besides its user.
type sessionRef struct {
	id   string // the cookie value, to log out
	csrf string
}

// csrfToken derives a session's CSRF token from its id: unguessable without the cookie, which a page of
// another site cannot read, and nothing more to store.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("hyperviseur csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func principalOf(u users.User) Principal {
	return Principal{Name: u.Name, Role: Role(u.Role), EPCIs: slices.Clone(u.EPCIs)}
}

// Sessions authenticates the session cookie. A request with an Authorization header is a machine's: its
// cookie, if any, is left to the token authenticators, and it is not subject to CSRF checks.
func (a *Accounts) Sessions() Authenticator { return sessionAuth{a} }

type sessionAuth struct{ a *Accounts }

func (sa sessionAuth) Authenticate(r *http.Request) (Principal, error) {
	if r.Header.Get("Authorization") != "" {
		return Principal{}, ErrNoCredentials
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Principal{}, ErrNoCredentials
	}
	if len(c.Value) > maxSessionID {
		return Principal{}, fmt.Errorf("%w: malformed session cookie", ErrUnauthenticated)
	}
	a := sa.a
	ss, err := a.store.Session(r.Context(), c.Value, a.opts.Now(), a.lifetime())
	switch {
	case errors.Is(err, users.ErrNotFound), errors.Is(err, users.ErrExpired), errors.Is(err, users.ErrDisabled):
		return Principal{}, fmt.Errorf("%w: session ended", ErrUnauthenticated)
	case err != nil:
		return Principal{}, fmt.Errorf("session: %w", err)
	}
	p := principalOf(ss.User)
	p.session = &sessionRef{id: c.Value, csrf: csrfToken(c.Value)}
	return p, nil
}

// Tokens authenticates the API tokens stored with the users. A bearer token it does not know is left to
// the next authenticator (the configured tokens).
func (a *Accounts) Tokens() Authenticator { return storedTokenAuth{a} }

type storedTokenAuth struct{ a *Accounts }

func (st storedTokenAuth) Authenticate(r *http.Request) (Principal, error) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > maxTokenLen {
		return Principal{}, ErrNoCredentials
	}
	u, _, err := st.a.store.AuthenticateToken(r.Context(), tok)
	switch {
	case errors.Is(err, users.ErrNotFound):
		return Principal{}, ErrNoCredentials
	case errors.Is(err, users.ErrDisabled):
		return Principal{}, fmt.Errorf("%w: token of a disabled user", ErrUnauthenticated)
	case err != nil:
		return Principal{}, err
	}
	return principalOf(u), nil
}

// meView is the answer of /api/v1/me and of a login: the principal, and for a session its CSRF token.
type meView struct {
	Name      string   `json:"name"`
	Role      Role     `json:"role"`
	EPCIs     []string `json:"epcis"`
	CSRFToken string   `json:"csrf_token,omitempty"`
}

func viewOf(p Principal) meView {
	v := meView{Name: p.Name, Role: p.Role, EPCIs: p.EPCIs}
	if v.EPCIs == nil {
		v.EPCIs = []string{}
	}
	if p.session != nil {
		v.CSRFToken = p.session.csrf
	}
	return v
}

// Login answers, in French like the dashboard: the same for an unknown user, a wrong password and a
// disabled account, so that the answer tells nothing about which accounts exist.
const (
	msgBadLogin     = "identifiants invalides"
	msgLoginLimited = "trop de tentatives : réessayez plus tard"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// login opens a session. It is public, so it defends itself: JSON only (a cross-site form cannot send it
// without a CORS preflight), same origin when the browser says, rate limited per user name and per client.
func (s *Server) login(w http.ResponseWriter, r *http.Request, _ Principal) {
	w.Header().Set("Cache-Control", "no-store")
	a := s.deps.Accounts
	if a == nil {
		writeError(w, http.StatusNotFound, "user accounts not enabled")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	if !s.sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	var req loginRequest
	if err := decodeBody(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Username == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, "username and password are required")
		return
	}
	name := users.NormalizeName(req.Username)
	if len(name) > 64 {
		name = name[:64] // no such user; keeps logs and limiter keys small
	}
	ip := clientIP(r)
	now := a.opts.Now()
	if wait := max(a.byUser.retryAfter(name, now), a.byIP.retryAfter(ip, now)); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeError(w, http.StatusTooManyRequests, msgLoginLimited)
		return
	}
	u, err := a.store.Verify(r.Context(), name, req.Password)
	if err != nil && !errors.Is(err, users.ErrBadCredentials) && !errors.Is(err, users.ErrDisabled) {
		s.log.Error("login", "user", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "authentication unavailable")
		return
	}
	if err != nil {
		a.failures.Add(1)
		reason := "wrong password"
		switch {
		case errors.Is(err, users.ErrUnknownUser):
			reason = "unknown user"
		case errors.Is(err, users.ErrDisabled):
			reason = "user disabled"
		}
		s.record(r, lighting.AuditEntry{At: now, Actor: name, Action: "session.login", Target: name,
			Detail: "from " + ip + ": " + reason, Outcome: "refusé"})
		userLocked, ipLocked := a.byUser.fail(name, now), a.byIP.fail(ip, now)
		if userLocked || ipLocked {
			a.lockouts.Add(1)
			what := "user"
			if !userLocked {
				what = "address"
			}
			s.log.Warn("login locked after repeated failures", "locked", what, "user", name, "ip", ip,
				"window", a.opts.FailureWindow)
			s.record(r, lighting.AuditEntry{At: now, Actor: "hyperviseur", Action: "session.lockout", Target: name,
				Detail: what + " locked: too many failed logins from " + ip, Outcome: "verrouillé"})
		}
		writeError(w, http.StatusUnauthorized, msgBadLogin)
		return
	}
	a.byUser.reset(name)
	id, err := a.store.CreateSession(r.Context(), u.Name, now, a.lifetime())
	if err != nil {
		s.log.Error("login: create session", "user", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "authentication unavailable")
		return
	}
	http.SetCookie(w, a.cookie(r, id))
	s.record(r, lighting.AuditEntry{At: now, Actor: u.Name, Action: "session.login", Target: u.Name,
		Detail: "from " + ip, Outcome: "ok"})
	p := principalOf(u)
	p.session = &sessionRef{id: id, csrf: csrfToken(id)}
	writeJSON(w, http.StatusOK, viewOf(p))
}

// cookie is the session cookie of id: Secure when the request came over TLS or the configuration says
// TLS ends in front of the service. No Expires: it ends with the browser, and the server ends it sooner.
func (a *Accounts) cookie(r *http.Request, id string) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || a.opts.SecureCookies}
}

// logout ends the caller's session and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, p Principal) {
	a := s.deps.Accounts
	if a == nil {
		writeError(w, http.StatusNotFound, "user accounts not enabled")
		return
	}
	if p.session == nil {
		writeError(w, http.StatusBadRequest, "not a session: an API token is revoked, not logged out")
		return
	}
	if err := a.store.DeleteSession(r.Context(), p.session.id); err != nil {
		s.log.Error("logout", "user", p.Name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "authentication unavailable")
		return
	}
	c := a.cookie(r, "")
	c.MaxAge = -1
	http.SetCookie(w, c)
	s.record(r, lighting.AuditEntry{At: a.opts.Now(), Actor: p.Name, Action: "session.logout", Target: p.Name,
		Detail: "from " + clientIP(r), Outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
}

// clientIP is the address the request came from. Forwarded headers are not trusted: any client can set
// them, and a reverse proxy would make every login share its address anyway.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
