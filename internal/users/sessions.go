package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// touchEvery is how stale a token's last use or a session's last activity may be before it is written
// again: it saves a database write per request, at the cost of an idle timeout up to this much late.
const touchEvery = time.Minute

// Token is an API token of a user, for a machine. The token acts with its user's current role and EPCIs, so
// demoting or disabling the user takes effect on its tokens at once.
type Token struct {
	ID       int64     `json:"id"`
	User     string    `json:"user"`
	Label    string    `json:"label"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$`)

// CreateToken creates a token for user labelled label and returns it in plain: it is shown once and only
// its SHA-256 is kept.
func (s *Store) CreateToken(ctx context.Context, user, label string) (string, Token, error) {
	if !labelRE.MatchString(label) {
		return "", Token{}, fmt.Errorf("create token: label %q: want 1 to 64 letters, digits, spaces and . _ -: %w", label, errInvalidLabel)
	}
	raw, err := randomID(32)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	// The prefix makes a leaked token recognisable by secret scanners, as the configured tokens.
	plain := "hvt_" + raw
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	defer tx.Rollback()
	if _, _, err := s.get(ctx, tx, user); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_tokens WHERE user = ? AND label = ?`, user, label).Scan(&n); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	if n > 0 {
		return "", Token{}, fmt.Errorf("create token: %s of %s: %w", label, user, ErrExists)
	}
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	res, err := tx.ExecContext(ctx, `INSERT INTO user_tokens (user, label, sha256, created_ms) VALUES (?, ?, ?, ?)`,
		user, label, sha256Hex(plain), now.UnixMilli())
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := tx.Commit(); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	return plain, Token{ID: id, User: user, Label: label, Created: now}, nil
}

var errInvalidLabel = fmt.Errorf("invalid label: %w", hv.ErrInvalid)

// Tokens lists the tokens of user, or of everyone when user is empty.
func (s *Store) Tokens(ctx context.Context, user string) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, user, label, created_ms, last_used_ms FROM user_tokens
		WHERE ? = '' OR user = ? ORDER BY user, label`, user, user)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		var t Token
		var created, used int64
		if err := rows.Scan(&t.ID, &t.User, &t.Label, &created, &used); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Created = time.UnixMilli(created).UTC()
		if used > 0 {
			t.LastUsed = time.UnixMilli(used).UTC()
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// DeleteToken revokes a user's token.
func (s *Store) DeleteToken(ctx context.Context, user, label string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM user_tokens WHERE user = ? AND label = ?`, user, label)
	if err != nil {
		return fmt.Errorf("delete token %s of %s: %w", label, user, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete token %s of %s: %w", label, user, ErrNotFound)
	}
	return nil
}

// AuthenticateToken finds the user of a plain token: ErrNotFound when no stored token matches (it may be a
// configured one), ErrDisabled when its user is disabled.
func (s *Store) AuthenticateToken(ctx context.Context, plain string) (User, Token, error) {
	row := s.db.QueryRowContext(ctx, `SELECT t.id, t.label, t.created_ms, t.last_used_ms, `+prefixed("u.", userCols)+`
		FROM user_tokens t JOIN users u ON u.name = t.user WHERE t.sha256 = ?`, sha256Hex(plain))
	var t Token
	var created, used int64
	var u User
	var epcis, hash string
	var uc, uu int64
	err := row.Scan(&t.ID, &t.Label, &created, &used, &u.Name, &u.Role, &epcis, &hash, &u.Disabled, &uc, &uu)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, Token{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return User{}, Token{}, fmt.Errorf("token: %w", err)
	}
	u.EPCIs = splitEPCIs(epcis)
	u.Created, u.Updated = time.UnixMilli(uc).UTC(), time.UnixMilli(uu).UTC()
	t.User, t.Created = u.Name, time.UnixMilli(created).UTC()
	if used > 0 {
		t.LastUsed = time.UnixMilli(used).UTC()
	}
	if u.Disabled {
		return u, t, ErrDisabled
	}
	now := s.opts.Now()
	if now.Sub(t.LastUsed) >= touchEvery {
		if _, err := s.db.ExecContext(ctx, `UPDATE user_tokens SET last_used_ms = ? WHERE id = ?`, now.UnixMilli(), t.ID); err != nil {
			return User{}, Token{}, fmt.Errorf("token: record use: %w", err)
		}
		t.LastUsed = now.UTC()
	}
	return u, t, nil
}

// prefixed qualifies each of a comma-separated column list with p, for a join.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// Session is a browser session of a user.
type Session struct {
	User     User
	Created  time.Time
	LastSeen time.Time
}

// Lifetime bounds a session: Idle since its last request, Max since the login.
type Lifetime struct {
	Idle, Max time.Duration
}

// CreateSession opens a session for user at now and returns its id: 256 random bits, given to the browser
// only; the database keeps its SHA-256. Expired sessions of everyone are pruned on the way.
func (s *Store) CreateSession(ctx context.Context, user string, now time.Time, l Lifetime) (string, error) {
	id, err := randomID(32)
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	if _, err := s.PruneSessions(ctx, now, l); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO user_sessions (id_sha256, user, created_ms, last_seen_ms) VALUES (?, ?, ?, ?)`,
		sha256Hex(id), user, now.UnixMilli(), now.UnixMilli()); err != nil {
		return "", fmt.Errorf("create session for %s: %w", user, err)
	}
	return id, nil
}

// Session returns the session of id at now and records the activity: ErrNotFound for an unknown id,
// ErrExpired (and the session is deleted) past its lifetime, ErrDisabled for a disabled user.
func (s *Store) Session(ctx context.Context, id string, now time.Time, l Lifetime) (Session, error) {
	key := sha256Hex(id)
	row := s.db.QueryRowContext(ctx, `SELECT s.created_ms, s.last_seen_ms, `+prefixed("u.", userCols)+`
		FROM user_sessions s JOIN users u ON u.name = s.user WHERE s.id_sha256 = ?`, key)
	var created, seen int64
	var u User
	var epcis, hash string
	var uc, uu int64
	err := row.Scan(&created, &seen, &u.Name, &u.Role, &epcis, &hash, &u.Disabled, &uc, &uu)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	u.EPCIs = splitEPCIs(epcis)
	u.Created, u.Updated = time.UnixMilli(uc).UTC(), time.UnixMilli(uu).UTC()
	ss := Session{User: u, Created: time.UnixMilli(created).UTC(), LastSeen: time.UnixMilli(seen).UTC()}
	if now.Sub(ss.LastSeen) >= l.Idle || now.Sub(ss.Created) >= l.Max {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM user_sessions WHERE id_sha256 = ?`, key); err != nil {
			return Session{}, fmt.Errorf("session: delete expired: %w", err)
		}
		return Session{}, ErrExpired
	}
	if u.Disabled {
		return Session{}, ErrDisabled
	}
	if now.Sub(ss.LastSeen) >= touchEvery {
		if _, err := s.db.ExecContext(ctx, `UPDATE user_sessions SET last_seen_ms = ? WHERE id_sha256 = ?`, now.UnixMilli(), key); err != nil {
			return Session{}, fmt.Errorf("session: record activity: %w", err)
		}
		ss.LastSeen = now.UTC()
	}
	return ss, nil
}

// DeleteSession ends a session (logout); an unknown id is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM user_sessions WHERE id_sha256 = ?`, sha256Hex(id)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PruneSessions deletes the sessions expired at now and returns how many.
func (s *Store) PruneSessions(ctx context.Context, now time.Time, l Lifetime) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM user_sessions WHERE last_seen_ms <= ? OR created_ms <= ?`,
		now.Add(-l.Idle).UnixMilli(), now.Add(-l.Max).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
