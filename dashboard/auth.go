package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Role is what a user may do. Technicians of the syndicate and admins see the whole département; pilots see
// only their EPCI.
type Role string

// Roles of DESIGN.md.
const (
	RoleAdmin      Role = "admin"
	RoleTechnicien Role = "technicien"
	RolePilote     Role = "pilote"
	RoleLecteur    Role = "lecteur"
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleAdmin, RoleTechnicien, RolePilote, RoleLecteur}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// staff reports whether the role works for the syndicate: it sees the whole département, including devices
// heard on the broker but not registered.
func (r Role) staff() bool { return r == RoleAdmin || r == RoleTechnicien }

// Principal is who is calling. A principal with EPCIs is scoped to them: it sees only their sites, devices
// and series (a pilote always is).
type Principal struct {
	Name  string   `json:"name"`
	Role  Role     `json:"role"`
	EPCIs []string `json:"epcis,omitempty"`

	// session is set when the principal came with a browser session cookie: its state-changing requests
	// must then carry the session's CSRF token (csrf.go).
	session *sessionRef
}

// Authenticator finds the principal of a request. It returns an error wrapping ErrNoCredentials when the
// request carries none of its credentials, ErrUnauthenticated when they are wrong, and any other error when
// it cannot decide (its backing store is down).
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Authentication errors.
var (
	ErrUnauthenticated = errors.New("authentication required")
	// ErrNoCredentials lets Chain try the next authenticator; it matches ErrUnauthenticated.
	ErrNoCredentials = fmt.Errorf("no credentials: %w", ErrUnauthenticated)
)

// Chain tries authenticators in order: the first that finds credentials decides. The service chains the
// browser session cookie, the API tokens stored with the users, then the configured tokens:
// Chain(accounts.Sessions(), accounts.Tokens(), configured).
func Chain(auths ...Authenticator) Authenticator { return chain(auths) }

type chain []Authenticator

func (c chain) Authenticate(r *http.Request) (Principal, error) {
	for _, a := range c {
		p, err := a.Authenticate(r)
		if !errors.Is(err, ErrNoCredentials) {
			return p, err
		}
	}
	return Principal{}, ErrNoCredentials
}

type ctxKey struct{}

// PrincipalFrom returns the principal the auth middleware stored in a request's context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// TokenConfig is one static API token as configured: the SHA-256 of the token, never the token itself, so a
// leaked config file grants nothing.
type TokenConfig struct {
	Name   string   `mapstructure:"name" yaml:"name" json:"name"`
	Role   Role     `mapstructure:"role" yaml:"role" json:"role"`
	EPCIs  []string `mapstructure:"epcis" yaml:"epcis,omitempty" json:"epcis,omitempty"`
	SHA256 string   `mapstructure:"sha256" yaml:"sha256" json:"sha256"`
}

// TokenAuth authenticates `Authorization: Bearer <token>` against static tokens.
type TokenAuth struct {
	tokens []token
}

type token struct {
	hash [sha256.Size]byte
	p    Principal
}

var _ Authenticator = (*TokenAuth)(nil)

// maxTokenLen bounds what is hashed per request: a real token is 47 bytes.
const maxTokenLen = 512

// NewTokenAuth validates the configured tokens; errors name the entry and the key.
func NewTokenAuth(tokens []TokenConfig) (*TokenAuth, error) {
	a := &TokenAuth{}
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	for i, tc := range tokens {
		where := fmt.Sprintf("tokens[%d]", i)
		if tc.Name != "" {
			where += fmt.Sprintf(" (name %q)", tc.Name)
		}
		switch {
		case tc.Name == "":
			return nil, fmt.Errorf("%s: name is required", where)
		case names[tc.Name]:
			return nil, fmt.Errorf("%s: duplicate name", where)
		case !tc.Role.Valid():
			return nil, fmt.Errorf("%s: role %q is not one of admin, technicien, pilote, lecteur", where, tc.Role)
		case tc.Role == RolePilote && len(tc.EPCIs) == 0:
			return nil, fmt.Errorf("%s: epcis is required for a pilote", where)
		case tc.Role.staff() && len(tc.EPCIs) > 0:
			return nil, fmt.Errorf("%s: epcis only applies to pilote and lecteur: %s sees the whole département", where, tc.Role)
		}
		for _, e := range tc.EPCIs {
			if !isSIREN(e) {
				return nil, fmt.Errorf("%s: epcis: %q is not an EPCI SIREN code (9 digits)", where, e)
			}
		}
		raw, err := hex.DecodeString(strings.ToLower(tc.SHA256))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%s: sha256 must be 64 hex characters: the SHA-256 of the token, not the token", where)
		}
		var h [sha256.Size]byte
		copy(h[:], raw)
		if other, dup := hashes[h]; dup {
			return nil, fmt.Errorf("%s: same token as %q", where, other)
		}
		names[tc.Name], hashes[h] = true, tc.Name
		a.tokens = append(a.tokens, token{hash: h, p: Principal{Name: tc.Name, Role: tc.Role, EPCIs: slices.Clone(tc.EPCIs)}})
	}
	return a, nil
}

// Authenticate implements Authenticator. Every configured hash is compared in constant time, without early
// exit, so response time says nothing about which token came close.
func (a *TokenAuth) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, ErrNoCredentials
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > maxTokenLen {
		return Principal{}, fmt.Errorf("%w: malformed bearer token", ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(tok))
	match := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Principal{}, fmt.Errorf("%w: unknown bearer token", ErrUnauthenticated)
	}
	p := a.tokens[match].p
	p.EPCIs = slices.Clone(p.EPCIs)
	return p, nil
}

// GenerateToken returns a new random API token and the SHA-256 hex to put in the configuration. The plain
// token is shown once to whoever needs it (e.g. written to a 0600 file); it must never be logged.
func GenerateToken() (plain, sha256hex string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	// The prefix makes a leaked token recognisable by secret scanners and by humans.
	plain = "hvt_" + base64.RawURLEncoding.EncodeToString(b)
	return plain, HashToken(plain), nil
}

// HashToken returns the SHA-256 hex of a token, as TokenConfig.SHA256 expects it.
func HashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

func isSIREN(s string) bool {
	if len(s) != 9 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
