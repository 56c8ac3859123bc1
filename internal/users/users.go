// Package users keeps the people and machines allowed into the dashboard, in the service's state database
// (component "users"): users with a role, their EPCI scope and an argon2id password hash; API tokens owned by
// a user, stored as SHA-256; browser sessions, stored by the SHA-256 of their id. The HTTP side (login,
// cookies, CSRF, rate limits) is in package dashboard; this package only stores and checks.
package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/statedb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// schemaComponent is this package's key in the state database's schema_version table.
const schemaComponent = "users"

// Roles, most powerful first; the dashboard gives them their meaning.
const (
	RoleAdmin      = "admin"
	RoleTechnicien = "technicien"
	RolePilote     = "pilote"
	RoleLecteur    = "lecteur"
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleTechnicien, RolePilote, RoleLecteur}

// Errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrBadCredentials is a wrong user name or password; ErrUnknownUser and ErrWrongPassword say which, for
	// the audit log only: the caller answers both the same way.
	ErrBadCredentials = errors.New("invalid credentials")
	ErrUnknownUser    = fmt.Errorf("unknown user: %w", ErrBadCredentials)
	ErrWrongPassword  = fmt.Errorf("wrong password: %w", ErrBadCredentials)
	// ErrDisabled is a disabled user: its password, tokens and sessions no longer open anything.
	ErrDisabled = errors.New("user disabled")
	// ErrExpired is a session past its idle timeout or absolute lifetime.
	ErrExpired = errors.New("session expired")
	// ErrLastAdmin refuses to remove, disable or demote the last enabled admin: nobody could manage users.
	ErrLastAdmin = errors.New("the last enabled admin cannot be removed, disabled or demoted")
)

// User is one account. The password hash never leaves the package.
type User struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	EPCIs    []string  `json:"epcis"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// Options tune a Store.
type Options struct {
	// Params are the argon2id parameters of new hashes; zero: DefaultParams. Hashes made with other
	// parameters are upgraded at the next successful login.
	Params Params
	// KnownEPCI says whether an EPCI code exists in the territory; nil: any 9-digit code.
	KnownEPCI func(code string) bool
	// Now is the clock of created/updated stamps; nil: time.Now.
	Now func() time.Time
	// MaxHashing bounds the password hashes computed at once (each takes Params.Memory); 0: GOMAXPROCS.
	MaxHashing int
}

// Store is the user store.
type Store struct {
	db   *sql.DB
	opts Options
	sem  chan struct{}

	dummyOnce sync.Once
	dummy     string // a hash to check unknown users against, so they cost the same time as known ones
}

// Open opens the state database at path and applies the users migrations.
func Open(path string, opts Options) (*Store, error) {
	db, err := statedb.Open(path, schemaComponent, migrations)
	if err != nil {
		return nil, fmt.Errorf("open user store: %w", err)
	}
	if opts.Params == (Params{}) {
		opts.Params = DefaultParams
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxHashing <= 0 {
		opts.MaxHashing = runtime.GOMAXPROCS(0)
	}
	return &Store{db: db, opts: opts, sem: make(chan struct{}, opts.MaxHashing)}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// NormalizeName is how a typed user name is looked up: trimmed and lower-case.
func NormalizeName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), hv.ErrInvalid)
}

// check validates a user's name, role and EPCI scope, the same rules as the configured API tokens: a pilote
// needs EPCIs, admin and technicien see the whole département, a lecteur may be scoped.
func (s *Store) check(u User) error {
	if !nameRE.MatchString(u.Name) {
		return invalid("name %q: want 1 to 64 lower-case letters, digits and . _ @ -, starting with a letter or digit", u.Name)
	}
	if !slices.Contains(Roles, u.Role) {
		return invalid("role %q: want one of %s", u.Role, strings.Join(Roles, ", "))
	}
	switch {
	case u.Role == RolePilote && len(u.EPCIs) == 0:
		return invalid("epcis: a pilote needs at least one EPCI code")
	case (u.Role == RoleAdmin || u.Role == RoleTechnicien) && len(u.EPCIs) > 0:
		return invalid("epcis: only for pilote and lecteur: %s sees the whole département", u.Role)
	}
	seen := map[string]bool{}
	for _, e := range u.EPCIs {
		if !isSIREN(e) {
			return invalid("epcis: %q is not an EPCI SIREN code (9 digits)", e)
		}
		if s.opts.KnownEPCI != nil && !s.opts.KnownEPCI(e) {
			return invalid("epcis: %q is not an EPCI of the territory", e)
		}
		if seen[e] {
			return invalid("epcis: %q given twice", e)
		}
		seen[e] = true
	}
	return nil
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

// hash computes a password hash within the limit of concurrent hashes.
func (s *Store) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(password, s.opts.Params)
}

func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait to hash a password: %w", ctx.Err())
	}
}

func (s *Store) release() { <-s.sem }

// Count returns the number of users, disabled ones included.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// Add creates a user with password (checked against the policy).
func (s *Store) Add(ctx context.Context, u User, password string) (User, error) {
	u.EPCIs = normEPCIs(u.EPCIs)
	if err := s.check(u); err != nil {
		return User{}, fmt.Errorf("add user: %w", err)
	}
	if err := CheckPasswordPolicy(password); err != nil {
		return User{}, fmt.Errorf("add user %s: %w", u.Name, errors.Join(err, hv.ErrInvalid))
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", u.Name, err)
	}
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	u.Created, u.Updated, u.Disabled = now, now, false
	_, err = s.db.ExecContext(ctx, `INSERT INTO users (name, role, epcis, password_hash, disabled, created_ms, updated_ms)
		VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (name) DO NOTHING`, u.Name, u.Role, strings.Join(u.EPCIs, ","), h, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", u.Name, err)
	}
	// ON CONFLICT DO NOTHING then a read: the driver's constraint errors are not typed.
	got, hash, err := s.get(ctx, s.db, u.Name)
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if hash != h {
		return User{}, fmt.Errorf("add user %s: %w", u.Name, ErrExists)
	}
	return got, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const userCols = `name, role, epcis, password_hash, disabled, created_ms, updated_ms`

func scanUser(row interface{ Scan(...any) error }) (User, string, error) {
	var u User
	var epcis, hash string
	var created, updated int64
	if err := row.Scan(&u.Name, &u.Role, &epcis, &hash, &u.Disabled, &created, &updated); err != nil {
		return User{}, "", err
	}
	u.EPCIs = splitEPCIs(epcis)
	u.Created, u.Updated = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return u, hash, nil
}

func (s *Store) get(ctx context.Context, q querier, name string) (User, string, error) {
	u, hash, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, "", fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, "", fmt.Errorf("user %q: %w", name, err)
	}
	return u, hash, nil
}

// Get returns a user.
func (s *Store) Get(ctx context.Context, name string) (User, error) {
	u, _, err := s.get(ctx, s.db, name)
	return u, err
}

// List returns every user by name.
func (s *Store) List(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, _, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// Change is an edit of a user; nil fields are kept.
type Change struct {
	Role     *string
	EPCIs    *[]string
	Disabled *bool
}

// Update applies c to a user. Disabling a user ends its sessions; its tokens stop working as long as it is
// disabled. The last enabled admin cannot be disabled or demoted.
func (s *Store) Update(ctx context.Context, name string, c Change) (User, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("update user %s: %w", name, err)
	}
	defer tx.Rollback()
	u, _, err := s.get(ctx, tx, name)
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	before := u
	if c.Role != nil {
		u.Role = *c.Role
		if c.EPCIs == nil && (u.Role == RoleAdmin || u.Role == RoleTechnicien) {
			u.EPCIs = nil // promoted to the whole département
		}
	}
	if c.EPCIs != nil {
		u.EPCIs = normEPCIs(*c.EPCIs)
	}
	if c.Disabled != nil {
		u.Disabled = *c.Disabled
	}
	if err := s.check(u); err != nil {
		return User{}, fmt.Errorf("update user %s: %w", name, err)
	}
	if before.Role == RoleAdmin && !before.Disabled && (u.Role != RoleAdmin || u.Disabled) {
		if err := lastAdmin(ctx, tx, name); err != nil {
			return User{}, fmt.Errorf("update user %s: %w", name, err)
		}
	}
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	u.Updated = now
	if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, epcis = ?, disabled = ?, updated_ms = ? WHERE name = ?`,
		u.Role, strings.Join(u.EPCIs, ","), u.Disabled, now.UnixMilli(), name); err != nil {
		return User{}, fmt.Errorf("update user %s: %w", name, err)
	}
	if u.Disabled {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_sessions WHERE user = ?`, name); err != nil {
			return User{}, fmt.Errorf("update user %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("update user %s: %w", name, err)
	}
	return u, nil
}

// lastAdmin fails when no enabled admin other than name exists.
func lastAdmin(ctx context.Context, tx *sql.Tx, name string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE role = ? AND disabled = 0 AND name <> ?`,
		RoleAdmin, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrLastAdmin
	}
	return nil
}

// SetPassword replaces a user's password and ends its sessions.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	if err := CheckPasswordPolicy(password); err != nil {
		return fmt.Errorf("set password of %s: %w", name, errors.Join(err, hv.ErrInvalid))
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_ms = ? WHERE name = ?`, h, s.opts.Now().UnixMilli(), name)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set password: user %q: %w", name, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM user_sessions WHERE user = ?`, name); err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	return nil
}

// Delete removes a user with its tokens and sessions. The last enabled admin cannot be removed.
func (s *Store) Delete(ctx context.Context, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	defer tx.Rollback()
	u, _, err := s.get(ctx, tx, name)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if u.Role == RoleAdmin && !u.Disabled {
		if err := lastAdmin(ctx, tx, name); err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name); err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	return nil
}

// Verify checks a user name (as stored: see NormalizeName) and password. Unknown users are checked against
// a dummy hash so that they take as long as known ones. A disabled user with the right password gets
// ErrDisabled. A hash made with other parameters than the Store's is replaced by a new one.
func (s *Store) Verify(ctx context.Context, name, password string) (User, error) {
	if len(password) > MaxPasswordLen {
		password = password[:MaxPasswordLen] // never matches: no stored password is that long
	}
	u, hash, err := s.get(ctx, s.db, name)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("verify: %w", err)
	}
	if !known {
		hash = s.dummyHash()
	}
	if err := s.acquire(ctx); err != nil {
		return User{}, fmt.Errorf("verify: %w", err)
	}
	ok, err := CheckPassword(hash, password)
	s.release()
	switch {
	case !known:
		return User{}, ErrUnknownUser
	case err != nil:
		return User{}, fmt.Errorf("verify %s: stored hash: %w", name, err)
	case !ok:
		return User{}, ErrWrongPassword
	case u.Disabled:
		return u, ErrDisabled
	}
	if NeedsRehash(hash, s.opts.Params) {
		// Best effort: the login succeeds even when the upgrade cannot be written now.
		if h, err := s.hash(ctx, password); err == nil {
			_, _ = s.db.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?`, h, name, hash)
		}
	}
	return u, nil
}

func (s *Store) dummyHash() string {
	s.dummyOnce.Do(func() {
		p, _ := GeneratePassword()
		s.dummy, _ = HashPassword(p, s.opts.Params)
	})
	return s.dummy
}

func normEPCIs(e []string) []string {
	if len(e) == 0 {
		return nil
	}
	out := make([]string, 0, len(e))
	for _, x := range e {
		out = append(out, strings.TrimSpace(x))
	}
	slices.Sort(out)
	return out
}

func splitEPCIs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// randomID returns n random bytes, base64url-encoded.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sha256Hex is how tokens and session ids are stored.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
