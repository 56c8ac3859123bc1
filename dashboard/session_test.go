package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/useda02/hyperviseur/internal/users"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
)

// sessionMode makes every fixture also hold user accounts for its principals, logged in, and do and send
// use their session cookie (and CSRF token) instead of their bearer token: the role × route tables then run
// through sessions (TestAccessThroughSessions).
var sessionMode bool

type sessionCreds struct {
	cookie *http.Cookie
	csrf   string
}

// testParams make password hashing cheap in tests.
var testParams = users.Params{Memory: 64, Time: 1, Threads: 1}

const testPassword = "mot de passe de test"

// fixturePrincipals are the fixture's principals as users, with the fixture's token names.
var fixturePrincipals = []users.User{
	{Name: "admin", Role: users.RoleAdmin},
	{Name: "technicien", Role: users.RoleTechnicien},
	{Name: "pilote", Role: users.RolePilote, EPCIs: []string{epciLaon}},
	{Name: "lecteur", Role: users.RoleLecteur},
	{Name: "lecteur-sq", Role: users.RoleLecteur, EPCIs: []string{epciSQ}},
}

// newAccounts opens a user store in a temp dir holding fixturePrincipals and chains its authenticators in
// front of d.Auth; clock is the accounts' time.
func newAccounts(t *testing.T, d *Deps, clock *time.Time, opts AccountsOptions) *Accounts {
	t.Helper()
	territory := d.Registry.Territory()
	st, err := users.Open(filepath.Join(t.TempDir(), "state.db"), users.Options{Params: testParams,
		KnownEPCI: func(c string) bool { _, ok := territory.EPCI(c); return ok },
		Now:       func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range fixturePrincipals {
		if _, err := st.Add(t.Context(), u, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return *clock }
	}
	a := NewAccounts(st, opts, nil)
	d.Accounts = a
	d.Auth = Chain(a.Sessions(), a.Tokens(), d.Auth)
	return a
}

func (f *fixture) addAccounts(t *testing.T, d *Deps, opts AccountsOptions) {
	t.Helper()
	f.clock = now
	f.accounts = newAccounts(t, d, &f.clock, opts)
}

// loginAll logs every principal in and keeps its session for do and send.
func (f *fixture) loginAll(t *testing.T) {
	t.Helper()
	f.sessions = map[string]sessionCreds{}
	for _, u := range fixturePrincipals {
		rec, body := f.login(t, u.Name, testPassword, nil)
		if rec.Code != 200 {
			t.Fatalf("login %s: %d %v", u.Name, rec.Code, body)
		}
		f.sessions[u.Name] = sessionCreds{cookie: sessionCookie(t, rec.Result()), csrf: body["csrf_token"].(string)}
	}
}

// authorize makes req come from who: its session when logged in (with the CSRF token on a state-changing
// method), else the bearer token tok.
func (f *fixture) authorize(req *http.Request, who, tok string) {
	if c, ok := f.sessions[who]; ok {
		req.AddCookie(c.cookie)
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			req.Header.Set(CSRFHeader, c.csrf)
		}
		return
	}
	req.Header.Set("Authorization", "Bearer "+tok)
}

// login posts credentials as the dashboard does; edit may change the request first.
func (f *fixture) login(t *testing.T, user, password string, edit func(*http.Request)) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req := httptest.NewRequest("POST", "/api/v1/session", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec, body
}

// withSession sends a request with a session cookie and, when csrf is not empty, the CSRF header.
func (f *fixture) withSession(t *testing.T, method, target string, c *http.Cookie, csrf string, body any, edit func(*http.Request)) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, target, rd)
	if c != nil {
		req.AddCookie(c)
	}
	if csrf != "" {
		req.Header.Set(CSRFHeader, csrf)
	}
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", SessionCookie, resp.Header["Set-Cookie"])
	return nil
}

// newSessionFixture is the base fixture with user accounts and an audit log; clock drives the accounts.
func newSessionFixture(t *testing.T, opts AccountsOptions) (*fixture, *time.Time, *lighting.DB) {
	t.Helper()
	clock := new(time.Time)
	*clock = now
	var acc *Accounts
	var audit *lighting.DB
	f := newFixtureWith(t, "testdata/registry.yaml", func(_ *registry.Registry, _ *live.State, d *Deps) {
		acc = newAccounts(t, d, clock, opts)
		db, err := lighting.OpenDB(filepath.Join(t.TempDir(), "audit.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		d.Audit, audit = db, db
	})
	f.accounts = acc
	return f, clock, audit
}

// TestAccessThroughSessions runs the role × route tables again, every principal logged in with a session
// cookie: a pilote's session is scoped exactly like a pilote's token.
func TestAccessThroughSessions(t *testing.T) {
	sessionMode = true
	defer func() { sessionMode = false }()
	f := newFixture(t)
	if _, me, _ := f.do(t, "GET", "/api/v1/me", "pilote"); me["csrf_token"] == nil {
		t.Fatalf("the fixture does not go through sessions: %v", me)
	}
	t.Run("Access", TestAccess)
	t.Run("ScopedViews", TestScopedViews)
	t.Run("LightingAccess", TestLightingAccess)
	t.Run("LightingScope", TestLightingScope)
	t.Run("AlertsAPI", TestAlertsAPI)
}

func TestLogin(t *testing.T) {
	f, _, audit := newSessionFixture(t, AccountsOptions{})
	yes := true
	if _, err := f.accounts.store.Update(t.Context(), "lecteur", users.Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}

	rec, body := f.login(t, " Pilote ", testPassword, nil) // typed with a capital and spaces
	if rec.Code != 200 || body["name"] != "pilote" || body["role"] != "pilote" || len(body["csrf_token"].(string)) < 40 {
		t.Fatalf("login: %d %v", rec.Code, body)
	}
	if epcis := body["epcis"].([]any); len(epcis) != 1 || epcis[0] != epciLaon {
		t.Errorf("login epcis: %v", body["epcis"])
	}
	c := sessionCookie(t, rec.Result())
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) != 43 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure on plain HTTP, 256-bit id", c)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("login answer may be cached")
	}
	// /me gives the same CSRF token to the session, none to a bearer token.
	code, me := f.withSession(t, "GET", "/api/v1/me", c, "", nil, nil)
	if code != 200 || me["csrf_token"] != body["csrf_token"] || me["name"] != "pilote" {
		t.Errorf("me through the session: %d %v", code, me)
	}
	_, me, _ = f.do(t, "GET", "/api/v1/me", "pilote")
	if _, ok := me["csrf_token"]; ok || me["name"] != "pilote" {
		t.Errorf("me through a token: %v", me)
	}

	// Wrong password, unknown user and disabled account: one answer.
	var answers []string
	for _, c := range []struct{ user, password string }{
		{"pilote", "pas le bon mot de passe"}, {"personne", testPassword}, {"lecteur", testPassword},
	} {
		rec, _ := f.login(t, c.user, c.password, nil)
		if rec.Code != 401 || len(rec.Result().Cookies()) != 0 {
			t.Errorf("login %s: %d, cookies %v", c.user, rec.Code, rec.Result().Cookies())
		}
		answers = append(answers, rec.Body.String())
	}
	if answers[0] != answers[1] || answers[1] != answers[2] || !strings.Contains(answers[0], "identifiants invalides") {
		t.Errorf("refusals differ: %q", answers)
	}

	for _, c := range []struct {
		name string
		edit func(*http.Request)
		want int
	}{
		{"form post", func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, 415},
		{"no content type", func(r *http.Request) { r.Header.Del("Content-Type") }, 415},
		{"cross-site page", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example.com") }, 403},
		{"cross-site referer", func(r *http.Request) { r.Header.Set("Referer", "https://evil.example.com/x") }, 403},
		{"same origin", func(r *http.Request) { r.Header.Set("Origin", "http://"+r.Host) }, 200},
		{"configured origin", func(r *http.Request) { r.Header.Set("Origin", "https://hyperviseur.example.fr") }, 200},
	} {
		if rec, body := f.login(t, "admin", testPassword, c.edit); rec.Code != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, rec.Code, body, c.want)
		}
	}
	if rec, _ := f.login(t, "", "", nil); rec.Code != 400 {
		t.Errorf("empty credentials: %d", rec.Code)
	}

	// The audit log has the logins, with the client address, never a password.
	entries, err := audit.AuditLog(t.Context(), lighting.AuditFilter{ActionPrefix: "session."})
	if err != nil {
		t.Fatal(err)
	}
	var ok, refused int
	for _, e := range entries {
		if strings.Contains(e.Detail+e.Target+e.Outcome, "mot de passe") {
			t.Errorf("audit entry holds a password: %+v", e)
		}
		if !strings.Contains(e.Detail, "192.0.2.1") {
			t.Errorf("audit entry without the client address: %+v", e)
		}
		switch e.Outcome {
		case "ok":
			ok++
		case "refusé":
			refused++
		}
	}
	if ok != 3 || refused != 3 {
		t.Errorf("audit: %d logins ok, %d refused; want 3 and 3: %+v", ok, refused, entries)
	}
	// /api/v1/audit shows them to the staff.
	_, got, _ := f.do(t, "GET", "/api/v1/audit?action=session.", "admin")
	if n := len(got["entries"].([]any)); n != 6 {
		t.Errorf("/api/v1/audit: %d session entries, want 6", n)
	}
}

// TestSessionCookieSecure: over TLS the cookie is Secure; on plain HTTP only when configured so.
func TestSessionCookieSecure(t *testing.T) {
	f, _, _ := newSessionFixture(t, AccountsOptions{})
	srv := httptest.NewTLSServer(f.h)
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/api/v1/session", "application/json",
		strings.NewReader(`{"username":"admin","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := sessionCookie(t, resp); resp.StatusCode != 200 || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("over TLS: %d, cookie %+v", resp.StatusCode, c)
	}

	f, _, _ = newSessionFixture(t, AccountsOptions{SecureCookies: true})
	rec, _ := f.login(t, "admin", testPassword, nil)
	if c := sessionCookie(t, rec.Result()); !c.Secure {
		t.Errorf("secure_cookies on plain HTTP: cookie %+v", c)
	}
}

// TestCSRF: a cookie-authenticated state change needs the session's token and a same-origin page; a bearer
// token does not.
func TestCSRF(t *testing.T) {
	f, _, _ := newSessionFixture(t, AccountsOptions{})
	rec, login := f.login(t, "admin", testPassword, nil)
	c, csrf := sessionCookie(t, rec.Result()), login["csrf_token"].(string)
	newUser := func(name string) map[string]any {
		return map[string]any{"name": name, "role": "lecteur", "password": "un mot de passe long"}
	}
	for i, tc := range []struct {
		name string
		csrf string
		edit func(*http.Request)
		want int
	}{
		{"no token", "", nil, 403},
		{"wrong token", csrf[:len(csrf)-2] + "xx", nil, 403},
		{"token, cross-site origin", csrf, func(r *http.Request) { r.Header.Set("Origin", "https://evil.example.com") }, 403},
		{"token, cross-site referer", csrf, func(r *http.Request) { r.Header.Set("Referer", "https://evil.example.com/page") }, 403},
		{"token, null origin", csrf, func(r *http.Request) { r.Header.Set("Origin", "null") }, 403},
		{"token", csrf, nil, 201},
		{"token, same origin", csrf, func(r *http.Request) { r.Header.Set("Origin", "http://"+r.Host) }, 201},
	} {
		code, body := f.withSession(t, "POST", "/api/v1/users", c, tc.csrf, newUser(fmt.Sprintf("u%d", i)), tc.edit)
		if code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.want)
		}
	}
	// Bearer: no CSRF token needed.
	if code, body := f.send(t, "POST", "/api/v1/users", "admin", newUser("machine")); code != 201 {
		t.Errorf("bearer POST: %d %v", code, body)
	}
	// A GET through the session needs none either.
	if code, _ := f.withSession(t, "GET", "/api/v1/users", c, "", nil, nil); code != 200 {
		t.Errorf("session GET: %d", code)
	}
	// Logout is a state change too.
	if code, _ := f.withSession(t, "DELETE", "/api/v1/session", c, "", nil, nil); code != 403 {
		t.Errorf("logout without the token: %d", code)
	}
	req := httptest.NewRequest("DELETE", "/api/v1/session", nil)
	req.AddCookie(c)
	req.Header.Set(CSRFHeader, csrf)
	out := httptest.NewRecorder()
	f.h.ServeHTTP(out, req)
	if cleared := sessionCookie(t, out.Result()); out.Code != 204 || cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Fatalf("logout: %d, cookie %+v", out.Code, cleared)
	}
	if code, _ := f.withSession(t, "GET", "/api/v1/me", c, "", nil, nil); code != 401 {
		t.Errorf("after logout: %d", code)
	}
	if code, _ := f.send(t, "DELETE", "/api/v1/session", "admin", nil); code != 400 {
		t.Errorf("logout with a bearer token: %d", code)
	}
}

// TestSessionExpiry: a session ends after auth.session_idle without use, and after auth.session_max anyway.
func TestSessionExpiry(t *testing.T) {
	f, clock, _ := newSessionFixture(t, AccountsOptions{Idle: time.Hour, Max: 3 * time.Hour})
	login := func() *http.Cookie {
		rec, body := f.login(t, "technicien", testPassword, nil)
		if rec.Code != 200 {
			t.Fatalf("login: %d %v", rec.Code, body)
		}
		return sessionCookie(t, rec.Result())
	}
	me := func(c *http.Cookie) int {
		code, _ := f.withSession(t, "GET", "/api/v1/me", c, "", nil, nil)
		return code
	}
	start := *clock
	c := login()
	for i := 1; i <= 3; i++ { // used every 55 minutes: alive until the absolute lifetime
		*clock = start.Add(time.Duration(i) * 55 * time.Minute)
		if code := me(c); code != 200 {
			t.Fatalf("after %s of activity: %d", clock.Sub(start), code)
		}
	}
	*clock = start.Add(3 * time.Hour)
	if code := me(c); code != 401 {
		t.Fatalf("past session_max: %d", code)
	}

	start = *clock
	c = login()
	*clock = start.Add(59 * time.Minute)
	if code := me(c); code != 200 {
		t.Fatalf("idle 59m: %d", code)
	}
	*clock = clock.Add(time.Hour)
	if code := me(c); code != 401 {
		t.Fatalf("idle 1h: %d", code)
	}
}

// TestLoginRateLimit: five failures lock the user name for the window (429 with Retry-After, even with the
// right password), then it recovers; an address is locked after twenty, across user names.
func TestLoginRateLimit(t *testing.T) {
	f, clock, audit := newSessionFixture(t, AccountsOptions{})
	start := *clock
	for i := range 5 {
		*clock = start.Add(time.Duration(i) * time.Minute)
		if rec, _ := f.login(t, "pilote", "mauvais mot de passe", nil); rec.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	for _, pw := range []string{"mauvais mot de passe", testPassword} {
		rec, body := f.login(t, "pilote", pw, nil)
		if rec.Code != 429 || rec.Header().Get("Retry-After") != "660" || body["error"] == nil {
			t.Fatalf("locked: %d %v Retry-After %q", rec.Code, body, rec.Header().Get("Retry-After"))
		}
	}
	if f.accounts.Lockouts() != 1 {
		t.Errorf("%d lockouts counted, want 1", f.accounts.Lockouts())
	}
	// Another user from another address is not concerned.
	if rec, _ := f.login(t, "admin", testPassword, func(r *http.Request) { r.RemoteAddr = "198.51.100.7:4000" }); rec.Code != 200 {
		t.Errorf("other user: %d", rec.Code)
	}
	*clock = start.Add(15 * time.Minute) // the first failure leaves the window
	if rec, _ := f.login(t, "pilote", testPassword, nil); rec.Code != 200 {
		t.Fatalf("after the window: %d", rec.Code)
	}
	// The success reset the count: four more failures do not lock.
	for range 4 {
		f.login(t, "pilote", "mauvais mot de passe", nil)
	}
	if rec, _ := f.login(t, "pilote", testPassword, nil); rec.Code != 200 {
		t.Fatalf("after a reset: %d", rec.Code)
	}

	// One address trying many names.
	from := func(r *http.Request) { r.RemoteAddr = "203.0.113.9:5555" }
	for i := range 20 {
		if rec, _ := f.login(t, "inconnu"+string(rune('a'+i)), "x", from); rec.Code != 401 {
			t.Fatalf("address failure %d: %d", i+1, rec.Code)
		}
	}
	if rec, _ := f.login(t, "admin", testPassword, from); rec.Code != 429 {
		t.Fatalf("locked address: %d", rec.Code)
	}
	entries, _ := audit.AuditLog(t.Context(), lighting.AuditFilter{ActionPrefix: "session.lockout"})
	if len(entries) != 2 {
		t.Errorf("%d lockout entries, want one per lockout (2): %+v", len(entries), entries)
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	l := newLoginLimiter(2, time.Minute, 100)
	for i := range 1000 {
		l.fail(strings.Repeat("k", i%7)+string(rune(i)), now)
	}
	if n := l.len(); n != 100 {
		t.Fatalf("%d keys held, want at most 100", n)
	}
	if l.fail("x", now) {
		t.Error("one failure of two locks")
	}
	if !l.fail("x", now.Add(time.Second)) || l.fail("x", now.Add(2*time.Second)) {
		t.Error("a lockout is reported once")
	}
	if got := l.retryAfter("x", now.Add(2*time.Second)); got != 59*time.Second {
		t.Errorf("retry after %s", got)
	}
	if got := l.retryAfter("x", now.Add(2*time.Minute)); got != 0 {
		t.Errorf("after the window: retry after %s", got)
	}
}

// TestWebsocketSessionCookie: the live feed takes the session cookie, and refuses it from another site's page.
func TestWebsocketSessionCookie(t *testing.T) {
	f, _, _ := newSessionFixture(t, AccountsOptions{})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	rec, _ := f.login(t, "pilote", testPassword, nil)
	c := sessionCookie(t, rec.Result())
	dial := func(origin string, cookie *http.Cookie) int {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		if cookie != nil {
			h.Set("Cookie", cookie.String())
		}
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/ws", h)
		if err != nil && resp == nil {
			t.Fatalf("dial: %v", err)
		}
		if conn != nil {
			conn.Close()
		}
		return resp.StatusCode
	}
	if code := dial(srv.URL, c); code != http.StatusSwitchingProtocols {
		t.Errorf("same-origin page with the cookie: %d", code)
	}
	if code := dial("https://evil.example.com", c); code != http.StatusForbidden {
		t.Errorf("cross-site page with a valid cookie: %d, want 403", code)
	}
	if code := dial(srv.URL, nil); code != http.StatusUnauthorized {
		t.Errorf("no cookie: %d", code)
	}
}

// TestUsersAPI: the admin manages users; nobody else may; changes end sessions and are audited.
func TestUsersAPI(t *testing.T) {
	f, _, audit := newSessionFixture(t, AccountsOptions{})
	for _, who := range []string{"technicien", "pilote", "lecteur", ""} {
		if code, _, _ := f.do(t, "GET", "/api/v1/users", who); code != 403 && !(who == "" && code == 401) {
			t.Errorf("%s lists users: %d", who, code)
		}
		if code, _ := f.send(t, "DELETE", "/api/v1/users/admin", who, nil); code != 403 && !(who == "" && code == 401) {
			t.Errorf("%s deletes a user: %d", who, code)
		}
	}
	code, created := f.send(t, "POST", "/api/v1/users", "admin", map[string]any{"name": "p.sq", "role": "pilote", "epcis": []string{epciSQ}})
	password, _ := created["password"].(string)
	if code != 201 || len(password) != 24 || created["name"] != "p.sq" {
		t.Fatalf("create: %d %v", code, created)
	}
	for _, c := range []struct {
		body any
		want int
	}{
		{map[string]any{"name": "p.sq", "role": "lecteur"}, 409},
		{map[string]any{"name": "p2", "role": "pilote"}, 400},
		{map[string]any{"name": "p3", "role": "pilote", "epcis": []string{"123456789"}}, 400},
		{map[string]any{"name": "p4", "role": "lecteur", "password": "court"}, 400},
		{map[string]any{"name": "p5", "role": "lecteur", "admin": true}, 400},
	} {
		if code, body := f.send(t, "POST", "/api/v1/users", "admin", c.body); code != c.want {
			t.Errorf("create %v: %d %v, want %d", c.body, code, body, c.want)
		}
	}
	// The new pilote logs in with the generated password and sees Saint-Quentin only.
	rec, _ := f.login(t, "p.sq", password, nil)
	if rec.Code != 200 {
		t.Fatalf("login with the generated password: %d", rec.Code)
	}
	c := sessionCookie(t, rec.Result())
	_, body := f.withSession(t, "GET", "/api/v1/devices", c, "", nil, nil)
	for _, d := range body["devices"].([]any) {
		if d.(map[string]any)["epci"] != epciSQ {
			t.Errorf("pilote of Saint-Quentin sees %v", d)
		}
	}
	// Disabled: its session ends at once.
	if code, body := f.send(t, "PATCH", "/api/v1/users/p.sq", "admin", map[string]any{"disabled": true}); code != 200 || body["disabled"] != true {
		t.Fatalf("disable: %d %v", code, body)
	}
	if code, _ := f.withSession(t, "GET", "/api/v1/me", c, "", nil, nil); code != 401 {
		t.Errorf("session of a disabled user: %d", code)
	}
	if code, body := f.send(t, "PATCH", "/api/v1/users/p.sq", "admin", map[string]any{"disabled": false, "password": "un nouveau mot de passe"}); code != 200 {
		t.Fatalf("enable with a new password: %d %v", code, body)
	}
	if rec, _ := f.login(t, "p.sq", "un nouveau mot de passe", nil); rec.Code != 200 {
		t.Errorf("login with the new password: %d", rec.Code)
	}
	if code, _ := f.send(t, "PATCH", "/api/v1/users/admin", "admin", map[string]any{"role": "lecteur"}); code != 409 {
		t.Errorf("demote the last admin user: %d, want 409", code)
	}
	if code, _ := f.send(t, "PATCH", "/api/v1/users/nobody", "admin", map[string]any{"disabled": true}); code != 404 {
		t.Errorf("patch an unknown user: %d", code)
	}
	if code, _ := f.send(t, "DELETE", "/api/v1/users/p.sq", "admin", nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	_, body, _ = f.do(t, "GET", "/api/v1/users", "admin")
	if n := len(body["users"].([]any)); n != len(fixturePrincipals) {
		t.Errorf("%d users after delete, want %d", n, len(fixturePrincipals))
	}
	entries, _ := audit.AuditLog(t.Context(), lighting.AuditFilter{ActionPrefix: "user."})
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
		if e.Actor != "admin" {
			t.Errorf("audit actor %q", e.Actor)
		}
	}
	if got := strings.Join(actions, " "); got != "user.delete user.password user.update user.update user.create" {
		t.Errorf("audit of user changes (newest first): %s", got)
	}
}

// TestStoredTokens: a token created for a user acts with the user's current role and scope.
func TestStoredTokens(t *testing.T) {
	f, _, _ := newSessionFixture(t, AccountsOptions{})
	plain, _, err := f.accounts.store.CreateToken(t.Context(), "pilote", "scada")
	if err != nil {
		t.Fatal(err)
	}
	f.tokens["pilote-scada"] = plain
	code, me, _ := f.do(t, "GET", "/api/v1/me", "pilote-scada")
	if code != 200 || me["name"] != "pilote" || me["role"] != "pilote" {
		t.Fatalf("stored token: %d %v", code, me)
	}
	if code, _, _ := f.do(t, "GET", "/api/v1/series?metric=power_w&epci="+epciSQ, "pilote-scada"); code != 403 {
		t.Errorf("stored pilote token outside its EPCI: %d", code)
	}
	// A configured token still works next to it, and an unknown one is refused.
	if code, _, _ := f.do(t, "GET", "/api/v1/me", "admin"); code != 200 {
		t.Errorf("configured token: %d", code)
	}
	if code, _, _ := f.do(t, "GET", "/api/v1/me", "hvt_unknown"); code != 401 {
		t.Errorf("unknown token: %d", code)
	}
	yes := true
	_, _ = f.accounts.store.Update(t.Context(), "pilote", users.Change{Disabled: &yes})
	if code, _, _ := f.do(t, "GET", "/api/v1/me", "pilote-scada"); code != 401 {
		t.Errorf("token of a disabled user: %d", code)
	}
}
