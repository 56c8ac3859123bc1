package dashboard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestNewTokenAuthErrors(t *testing.T) {
	good := HashToken("secret")
	tests := []struct {
		name   string
		tokens []TokenConfig
		err    string
	}{
		{"no name", []TokenConfig{{Role: RoleAdmin, SHA256: good}}, `tokens[0]: name is required`},
		{"bad role", []TokenConfig{{Name: "x", Role: "root", SHA256: good}}, `tokens[0] (name "x"): role "root" is not one of admin, technicien, pilote, lecteur`},
		{"pilote without epci", []TokenConfig{{Name: "p", Role: RolePilote, SHA256: good}}, `tokens[0] (name "p"): epcis is required for a pilote`},
		{"technicien with epci", []TokenConfig{{Name: "t", Role: RoleTechnicien, EPCIs: []string{"200043495"}, SHA256: good}},
			`tokens[0] (name "t"): epcis only applies to pilote and lecteur: technicien sees the whole département`},
		{"bad epci", []TokenConfig{{Name: "p", Role: RolePilote, EPCIs: []string{"Laon"}, SHA256: good}}, `tokens[0] (name "p"): epcis: "Laon" is not an EPCI SIREN code (9 digits)`},
		{"plain token instead of hash", []TokenConfig{{Name: "a", Role: RoleAdmin, SHA256: "secret"}},
			`tokens[0] (name "a"): sha256 must be 64 hex characters: the SHA-256 of the token, not the token`},
		{"duplicate name", []TokenConfig{{Name: "a", Role: RoleAdmin, SHA256: good}, {Name: "a", Role: RoleLecteur, SHA256: HashToken("other")}},
			`tokens[1] (name "a"): duplicate name`},
		{"duplicate token", []TokenConfig{{Name: "a", Role: RoleAdmin, SHA256: good}, {Name: "b", Role: RoleLecteur, SHA256: strings.ToUpper(good)}},
			`tokens[1] (name "b"): same token as "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTokenAuth(tt.tokens)
			if err == nil || err.Error() != tt.err {
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
}

func TestTokenAuth(t *testing.T) {
	plain, sum, err := GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^hvt_[A-Za-z0-9_-]{43}$`).MatchString(plain) || sum != HashToken(plain) || len(sum) != 64 {
		t.Fatalf("token %q hash %q", plain, sum)
	}
	other, _, _ := GenerateToken()
	if other == plain {
		t.Fatal("two tokens alike")
	}
	a, err := NewTokenAuth([]TokenConfig{{Name: "pilote-laon", Role: RolePilote, EPCIs: []string{"200043495"}, SHA256: sum}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, header string
		err          error // nil: authenticated
	}{
		{"valid", "Bearer " + plain, nil},
		{"scheme case", "bearer " + plain, nil},
		{"missing", "", ErrNoCredentials},
		{"basic", "Basic dXNlcjpwYXNz", ErrNoCredentials},
		{"unknown", "Bearer " + other, ErrUnauthenticated},
		{"empty", "Bearer ", ErrUnauthenticated},
		{"huge", "Bearer " + strings.Repeat("x", 10000), ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/me", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			p, err := a.Authenticate(r)
			switch {
			case tt.err == nil && (err != nil || p.Name != "pilote-laon" || p.Role != RolePilote || p.EPCIs[0] != "200043495"):
				t.Fatalf("got %+v, %v", p, err)
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("got %v, want %v", err, tt.err)
			case tt.err == ErrUnauthenticated && errors.Is(err, ErrNoCredentials):
				t.Fatalf("wrong credentials must stop a chain, got %v", err)
			}
		})
	}
}

type fixedAuth struct {
	p   Principal
	err error
}

func (f fixedAuth) Authenticate(*http.Request) (Principal, error) { return f.p, f.err }

func TestChain(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	none := fixedAuth{err: ErrNoCredentials}
	bad := fixedAuth{err: ErrUnauthenticated}
	ok := fixedAuth{p: Principal{Name: "x", Role: RoleLecteur}}
	if p, err := Chain(none, ok).Authenticate(r); err != nil || p.Name != "x" {
		t.Errorf("none then ok: %v %v", p, err)
	}
	if _, err := Chain(bad, ok).Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("bad credentials must not fall through: %v", err)
	}
	if _, err := Chain(none, none).Authenticate(r); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("nothing: %v", err)
	}
}
