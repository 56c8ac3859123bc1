package users

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// fastParams keep tests quick; the parameter upgrade test uses two sets.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1}

func openTest(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Params == (Params{}) {
		o.Params = fastParams
	}
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=47104,t=1,p=1$") {
		t.Errorf("encoded hash %q does not carry its parameters", h)
	}
	h2, _ := HashPassword("correct horse battery", DefaultParams)
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, c := range []struct {
		password string
		want     bool
	}{{"correct horse battery", true}, {"correct horse batterY", false}, {"", false}} {
		if ok, err := CheckPassword(h, c.password); err != nil || ok != c.want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", c.password, ok, err, c.want)
		}
	}
	if NeedsRehash(h, DefaultParams) || !NeedsRehash(h, Params{Memory: 64 * 1024, Time: 2, Threads: 1}) {
		t.Error("NeedsRehash does not follow the parameters")
	}
	for _, bad := range []string{"", "$2a$10$abcdefghijklmnopqrstuv", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=18$m=64,t=1,p=1$c2FsdA$a2V5"} {
		if ok, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 24 || CheckPasswordPolicy(p) != nil || strings.ContainsAny(p, "l1IO0") || seen[p] {
			t.Fatalf("generated password %q", p)
		}
		seen[p] = true
	}
}

func TestAddAndValidate(t *testing.T) {
	st := openTest(t, Options{KnownEPCI: func(c string) bool { return c == "200043495" || c == "200071892" }})
	ctx := context.Background()
	const pw = "un mot de passe long"
	tests := []struct {
		name string
		u    User
		pw   string
		want string // "" = ok
	}{
		{"admin", User{Name: "admin", Role: RoleAdmin}, pw, ""},
		{"pilote", User{Name: "p.laon", Role: RolePilote, EPCIs: []string{"200043495"}}, pw, ""},
		{"scoped lecteur", User{Name: "lecteur-sq", Role: RoleLecteur, EPCIs: []string{"200071892"}}, pw, ""},
		{"duplicate", User{Name: "admin", Role: RoleLecteur}, pw, "already exists"},
		{"pilote without epci", User{Name: "p2", Role: RolePilote}, pw, "a pilote needs at least one EPCI"},
		{"unknown epci", User{Name: "p3", Role: RolePilote, EPCIs: []string{"123456789"}}, pw, "not an EPCI of the territory"},
		{"malformed epci", User{Name: "p4", Role: RolePilote, EPCIs: []string{"2000"}}, pw, "not an EPCI SIREN code"},
		{"technicien with epci", User{Name: "t", Role: RoleTechnicien, EPCIs: []string{"200043495"}}, pw, "only for pilote and lecteur"},
		{"bad role", User{Name: "x", Role: "root"}, pw, `role "root"`},
		{"bad name", User{Name: "Jean Dupont", Role: RoleLecteur}, pw, "name"},
		{"short password", User{Name: "y", Role: RoleLecteur}, "court", "at least 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := st.Add(ctx, tt.u, tt.pw)
			if tt.want == "" {
				if err != nil || u.Created.IsZero() || u.Name != tt.u.Name {
					t.Fatalf("Add = %+v, %v", u, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Add error %v, want %q", err, tt.want)
			}
			if !strings.Contains(tt.want, "exists") && !errors.Is(err, hv.ErrInvalid) {
				t.Errorf("error %v does not wrap hv.ErrInvalid", err)
			}
		})
	}
	if n, _ := st.Count(ctx); n != 3 {
		t.Errorf("%d users, want 3", n)
	}
}

func TestVerify(t *testing.T) {
	st := openTest(t, Options{})
	ctx := context.Background()
	if _, err := st.Add(ctx, User{Name: "admin", Role: RoleAdmin}, "le bon mot de passe"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add(ctx, User{Name: "ancien", Role: RoleLecteur}, "le bon mot de passe"); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := st.Update(ctx, "ancien", Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, user, pw string
		want           error
	}{
		{"ok", "admin", "le bon mot de passe", nil},
		{"wrong password", "admin", "le mauvais mot de passe", ErrWrongPassword},
		{"unknown user", "personne", "le bon mot de passe", ErrUnknownUser},
		{"disabled", "ancien", "le bon mot de passe", ErrDisabled},
		{"disabled, wrong password", "ancien", "le mauvais", ErrWrongPassword},
		{"overlong password", "admin", strings.Repeat("x", 10000), ErrWrongPassword},
	} {
		u, err := st.Verify(ctx, c.user, c.pw)
		if !errors.Is(err, c.want) || (c.want == nil && u.Name != c.user) {
			t.Errorf("%s: Verify = %+v, %v; want %v", c.name, u, err, c.want)
		}
		if c.want != nil && c.want != ErrDisabled && !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v does not wrap ErrBadCredentials", c.name, err)
		}
	}
}

// TestParamsUpgrade: a hash made with older parameters still verifies, and is rehashed with the current ones
// at that login.
func TestParamsUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	old, err := Open(path, Options{Params: Params{Memory: 32, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := old.Add(ctx, User{Name: "admin", Role: RoleAdmin}, "un mot de passe long"); err != nil {
		t.Fatal(err)
	}
	old.Close()

	next := Params{Memory: 128, Time: 2, Threads: 1}
	st, err := Open(path, Options{Params: next})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := func() string {
		var h string
		if err := st.db.QueryRow(`SELECT password_hash FROM users WHERE name = 'admin'`).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if !NeedsRehash(stored(), next) {
		t.Fatal("the old hash does not need a rehash")
	}
	if _, err := st.Verify(ctx, "admin", "pas le bon mot de passe"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if !NeedsRehash(stored(), next) {
		t.Fatal("a failed login rehashed the password")
	}
	if _, err := st.Verify(ctx, "admin", "un mot de passe long"); err != nil {
		t.Fatalf("old hash does not verify: %v", err)
	}
	h := stored()
	if NeedsRehash(h, next) || !strings.Contains(h, "m=128,t=2,p=1") {
		t.Fatalf("hash not upgraded: %s", h)
	}
	if _, err := st.Verify(ctx, "admin", "un mot de passe long"); err != nil {
		t.Fatalf("upgraded hash does not verify: %v", err)
	}
}

func TestUpdateDeleteLastAdmin(t *testing.T) {
	st := openTest(t, Options{})
	ctx := context.Background()
	const pw = "un mot de passe long"
	for _, u := range []User{{Name: "admin", Role: RoleAdmin}, {Name: "chef", Role: RoleAdmin}, {Name: "p", Role: RolePilote, EPCIs: []string{"200043495"}}} {
		if _, err := st.Add(ctx, u, pw); err != nil {
			t.Fatal(err)
		}
	}
	lecteur := RoleLecteur
	if u, err := st.Update(ctx, "chef", Change{Role: &lecteur}); err != nil || u.Role != RoleLecteur {
		t.Fatalf("demote chef: %+v %v", u, err)
	}
	if _, err := st.Update(ctx, "admin", Change{Role: &lecteur}); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("demote the last admin: %v", err)
	}
	yes := true
	if _, err := st.Update(ctx, "admin", Change{Disabled: &yes}); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("disable the last admin: %v", err)
	}
	if err := st.Delete(ctx, "admin"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("delete the last admin: %v", err)
	}
	tech := RoleTechnicien
	if u, err := st.Update(ctx, "p", Change{Role: &tech}); err != nil || len(u.EPCIs) != 0 {
		t.Fatalf("promote a pilote to technicien: %+v %v (its EPCIs should go)", u, err)
	}
	if err := st.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "p"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted user: %v", err)
	}
}

func TestTokens(t *testing.T) {
	clock := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
	st := openTest(t, Options{Now: func() time.Time { return clock }})
	ctx := context.Background()
	if _, err := st.Add(ctx, User{Name: "scada", Role: RoleLecteur, EPCIs: []string{"200043495"}}, "un mot de passe long"); err != nil {
		t.Fatal(err)
	}
	plain, tok, err := st.CreateToken(ctx, "scada", "supervision")
	if err != nil || !strings.HasPrefix(plain, "hvt_") || tok.ID == 0 {
		t.Fatalf("CreateToken = %q %+v %v", plain, tok, err)
	}
	if _, _, err := st.CreateToken(ctx, "scada", "supervision"); !errors.Is(err, ErrExists) {
		t.Errorf("same label twice: %v", err)
	}
	if _, _, err := st.CreateToken(ctx, "nobody", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("token of an unknown user: %v", err)
	}
	var stored string
	_ = st.db.QueryRow(`SELECT sha256 FROM user_tokens`).Scan(&stored)
	if stored == plain || len(stored) != 64 {
		t.Fatalf("token stored as %q", stored)
	}
	u, got, err := st.AuthenticateToken(ctx, plain)
	if err != nil || u.Name != "scada" || u.EPCIs[0] != "200043495" || !got.LastUsed.Equal(clock) {
		t.Fatalf("AuthenticateToken = %+v %+v %v", u, got, err)
	}
	if _, _, err := st.AuthenticateToken(ctx, "hvt_unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	yes := true
	_, _ = st.Update(ctx, "scada", Change{Disabled: &yes})
	if _, _, err := st.AuthenticateToken(ctx, plain); !errors.Is(err, ErrDisabled) {
		t.Errorf("token of a disabled user: %v", err)
	}
	if err := st.DeleteToken(ctx, "scada", "supervision"); err != nil {
		t.Fatal(err)
	}
	if list, _ := st.Tokens(ctx, ""); len(list) != 0 {
		t.Errorf("tokens after delete: %+v", list)
	}
}

func TestSessionLifetime(t *testing.T) {
	st := openTest(t, Options{})
	ctx := context.Background()
	if _, err := st.Add(ctx, User{Name: "admin", Role: RoleAdmin}, "un mot de passe long"); err != nil {
		t.Fatal(err)
	}
	l := Lifetime{Idle: time.Hour, Max: 3 * time.Hour}
	t0 := time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC)
	id, err := st.CreateSession(ctx, "admin", t0, l)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	_ = st.db.QueryRow(`SELECT id_sha256 FROM user_sessions`).Scan(&stored)
	if stored == id || len(stored) != 64 {
		t.Fatalf("session id stored as %q", stored)
	}
	// Used every 50 minutes it lives, until its absolute lifetime.
	for at := t0.Add(50 * time.Minute); at.Before(t0.Add(3 * time.Hour)); at = at.Add(50 * time.Minute) {
		if s, err := st.Session(ctx, id, at, l); err != nil || s.User.Name != "admin" {
			t.Fatalf("at %s: %+v %v", at.Sub(t0), s, err)
		}
	}
	if _, err := st.Session(ctx, id, t0.Add(3*time.Hour), l); !errors.Is(err, ErrExpired) {
		t.Fatalf("past its absolute lifetime: %v", err)
	}
	if _, err := st.Session(ctx, id, t0.Add(3*time.Hour), l); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an expired session is deleted: %v", err)
	}
	// Idle for an hour: gone.
	id, _ = st.CreateSession(ctx, "admin", t0, l)
	if _, err := st.Session(ctx, id, t0.Add(59*time.Minute), l); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Session(ctx, id, t0.Add(59*time.Minute+time.Hour), l); !errors.Is(err, ErrExpired) {
		t.Fatalf("idle: %v", err)
	}
	// A new password ends the sessions.
	id, _ = st.CreateSession(ctx, "admin", t0, l)
	if err := st.SetPassword(ctx, "admin", "un autre mot de passe"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Session(ctx, id, t0, l); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session after a password change: %v", err)
	}
}
