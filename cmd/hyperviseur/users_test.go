package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/useda02/hyperviseur/dashboard"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// runCLI runs the hyperviseur command with args and stdin, and returns its output.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// apiFor serves the API over the accounts of cfg's state database, as serve does.
func apiFor(t *testing.T, cfg *Config) http.Handler {
	t.Helper()
	reg, err := loadRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tsdb.Open(t.TempDir(), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	acc, err := startAccounts(t.Context(), cfg, reg, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acc.Close)
	tokens, err := dashboard.NewTokenAuth(nil)
	if err != nil {
		t.Fatal(err)
	}
	return dashboard.New(dashboard.Deps{Store: store, Registry: reg, Live: live.New(),
		Auth:     dashboard.Chain(acc.accounts.Sessions(), acc.accounts.Tokens(), tokens),
		Accounts: acc.accounts, Audit: acc.audit}, nil).Handler()
}

func login(t *testing.T, h http.Handler, user, password string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req := httptest.NewRequest("POST", "/api/v1/session", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Code, body
}

// TestUsersCLI: users created, changed and given a token on the command line log in through the API.
func TestUsersCLI(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HV_STORAGE_PATH", dir)
	out, err := runCLI(t, "", "users", "add", "p.laon", "--role", "pilote", "--epci", "200043495")
	if err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no generated password in %q", out)
	}
	generated := m[1]
	if out, err := runCLI(t, "un mot de passe choisi\n", "users", "add", "chef", "--role", "admin", "--password-stdin"); err != nil ||
		strings.Contains(out, "password:") {
		t.Fatalf("users add --password-stdin: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "add", "p2", "--role", "pilote"}, "a pilote needs at least one EPCI"},
		{[]string{"users", "add", "p3", "--role", "pilote", "--epci", "123456789"}, "not an EPCI of the territory"},
		{[]string{"users", "add", "p.laon", "--role", "lecteur"}, "already exists"},
		{[]string{"users", "add", "p4"}, `required flag(s) "role" not set`},
		{[]string{"users", "passwd", "personne"}, "not found"},
	} {
		if _, err := runCLI(t, "", c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := runCLI(t, "court\n", "users", "add", "p5", "--role", "lecteur", "--password-stdin"); err == nil ||
		!strings.Contains(err.Error(), "at least 12") {
		t.Errorf("short password from stdin: %v", err)
	}
	out, err = runCLI(t, "", "users", "token", "p.laon", "--label", "supervision")
	tm := regexp.MustCompile(`(?m)^token: (hvt_\S+)$`).FindStringSubmatch(out)
	if err != nil || tm == nil {
		t.Fatalf("users token: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "users", "list")
	if err != nil || !regexp.MustCompile(`p\.laon\s+pilote\s+200043495\s+active\s+supervision`).MatchString(out) {
		t.Fatalf("users list: %v\n%s", err, out)
	}
	if strings.Contains(out, generated) || strings.Contains(out, tm[1]) {
		t.Fatal("users list shows a secret")
	}

	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	h := apiFor(t, cfg)
	code, body := login(t, h, "p.laon", generated)
	if code != 200 || body["role"] != "pilote" || body["csrf_token"] == nil {
		t.Fatalf("login with the generated password: %d %v", code, body)
	}
	if code, _ := login(t, h, "chef", "un mot de passe choisi"); code != 200 {
		t.Errorf("login with the password from stdin: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.password")); err == nil {
		t.Error("a bootstrap admin was created although users exist")
	}
	req := httptest.NewRequest("GET", "/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tm[1])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"p.laon"`) {
		t.Errorf("the CLI's token: %d %s", rec.Code, rec.Body)
	}

	if out, err := runCLI(t, "un nouveau mot de passe\n", "users", "passwd", "p.laon", "--password-stdin"); err != nil {
		t.Fatalf("users passwd: %v\n%s", err, out)
	}
	if code, _ := login(t, h, "p.laon", generated); code != 401 {
		t.Errorf("old password after passwd: %d", code)
	}
	if code, _ := login(t, h, "p.laon", "un nouveau mot de passe"); code != 200 {
		t.Errorf("new password: %d", code)
	}
	if out, err := runCLI(t, "", "users", "disable", "p.laon"); err != nil {
		t.Fatalf("users disable: %v\n%s", err, out)
	}
	if code, _ := login(t, h, "p.laon", "un nouveau mot de passe"); code != 401 {
		t.Errorf("disabled user logs in: %d", code)
	}
	// Every change is in the audit log, by the command line; no secret in it.
	db, err := lighting.OpenDB(statePath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	entries, err := db.AuditLog(t.Context(), lighting.AuditFilter{Actor: cliActor})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+" "+e.Target)
		if strings.Contains(e.Detail, generated) || strings.Contains(e.Detail, tm[1]) || strings.Contains(e.Detail, "mot de passe") {
			t.Errorf("secret in the audit log: %+v", e)
		}
	}
	if got := strings.Join(actions, ", "); got != "user.update p.laon, user.password p.laon, token.create p.laon, user.create chef, user.create p.laon" {
		t.Errorf("audit log of the CLI (newest first): %s", got)
	}
}

// TestBootstrapAdmin: with no user, serve creates admin with a generated password in admin.password (0600),
// or with auth.admin_password; never twice.
func TestBootstrapAdmin(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HV_STORAGE_PATH", dir)
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	h := apiFor(t, cfg)
	path := filepath.Join(dir, "admin.password")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.password: %v, mode %v", err, st)
	}
	b, _ := os.ReadFile(path)
	password := strings.TrimSpace(string(b))
	if code, body := login(t, h, "admin", password); code != 200 || body["role"] != "admin" {
		t.Fatalf("bootstrap admin login: %d %v", code, body)
	}
	apiFor(t, cfg) // a restart: nothing changes
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Error("admin.password rewritten at restart")
	}

	dir2 := t.TempDir()
	t.Setenv("HV_STORAGE_PATH", dir2)
	t.Setenv("HV_AUTH_ADMIN_PASSWORD", "le mot de passe de l'admin")
	cfg, err = LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	h = apiFor(t, cfg)
	if code, _ := login(t, h, "admin", "le mot de passe de l'admin"); code != 200 {
		t.Errorf("admin with HV_AUTH_ADMIN_PASSWORD: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir2, "admin.password")); err == nil {
		t.Error("admin.password written although the password is configured")
	}
}

// TestTLSConfig: a certificate and key that exist validate and load; a bad pair fails at start naming the keys.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	t.Setenv("HV_HTTP_TLS_CERT", certFile)
	t.Setenv("HV_HTTP_TLS_KEY", keyFile)
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if tc, err := loadTLS(cfg); err != nil || len(tc.Certificates) != 1 {
		t.Fatalf("loadTLS: %v", err)
	}
	cfg.HTTP.TLSKey = certFile // not a key
	if _, err := loadTLS(cfg); err == nil || !strings.Contains(err.Error(), "http.tls_cert, http.tls_key") {
		t.Errorf("bad pair: %v", err)
	}
}
