package rules

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/useda02/hyperviseur/internal/statedb"

	hv "github.com/useda02/hyperviseur"
)

//go:embed migrations/*.sql
var migrations embed.FS

// schemaComponent is this package's key in the schema_version table. The state database is shared with
// other components (users, audit, lighting overrides), each migrating its own tables under its own key.
const schemaComponent = "rules"

// SQLite persists alerts, their history, acknowledgements and silences in one SQLite file (WAL mode).
type SQLite struct {
	db *sql.DB
}

// OpenSQLite opens (creating it and its directory if needed) the state database at path and applies the
// pending migrations of the alert tables.
func OpenSQLite(path string) (*SQLite, error) {
	db, err := statedb.Open(path, schemaComponent, migrations)
	if err != nil {
		return nil, fmt.Errorf("open alert store: %w", err)
	}
	return &SQLite{db: db}, nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// Prune deletes what ended before: history events, acknowledgements, silences, and resolved alerts. It
// returns the number of rows deleted.
func (s *SQLite) Prune(ctx context.Context, before time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune alerts: %w", err)
	}
	defer tx.Rollback()
	t := ms(before)
	var n int64
	for _, q := range []string{
		`DELETE FROM alert_history WHERE at < ?`,
		`DELETE FROM acks WHERE at < ?`,
		`DELETE FROM silences WHERE ends_at < ?`,
		`DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?`,
	} {
		res, err := tx.ExecContext(ctx, q, t)
		if err != nil {
			return 0, fmt.Errorf("prune alerts: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune alerts: %w", err)
	}
	return n, nil
}

const alertColumns = `fingerprint, rule, labels, severity, state, summary, value, evidence, active_at, fired_at,
	resolved_at, last_seen, cleared_at, prev_active_at, prev_fired_at, prev_resolved_at, notified, flaps, flapping,
	ack_by, ack_comment, ack_at`

// loadAlerts returns the pending and firing alerts, and the alerts resolved within retention of the
// newest stored activity (a restart knows no "now" until the first evaluation).
func (s *SQLite) loadAlerts(ctx context.Context, retention time.Duration) ([]alertRow, error) {
	var latest sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(MAX(last_seen, resolved_at)) FROM alerts`).Scan(&latest)
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE state != 'resolved' OR resolved_at >= ?`, latest.Int64-retention.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	out, err := scanAlerts(rows, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	return out, nil
}

// resolvedAlerts returns the resolved alerts matching f, newest first, skipping those skip reports.
func (s *SQLite) resolvedAlerts(ctx context.Context, f Filter, skip func(string) bool) ([]alertRow, error) {
	if f.EPCI != nil && len(f.EPCI) == 0 {
		return nil, nil
	}
	q := `SELECT ` + alertColumns + ` FROM alerts WHERE state = 'resolved'`
	var args []any
	if f.Severity != "" {
		q += ` AND severity = ?`
		args = append(args, string(f.Severity))
	}
	if f.Rule != "" {
		q += ` AND rule = ?`
		args = append(args, f.Rule)
	}
	if len(f.EPCI) > 0 {
		q += ` AND epci IN (?` + strings.Repeat(`, ?`, len(f.EPCI)-1) + `)`
		for _, c := range f.EPCI {
			args = append(args, c)
		}
	}
	q += ` ORDER BY resolved_at DESC, fingerprint`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query resolved alerts: %w", err)
	}
	keep := func(r *alertRow) bool { return !skip(r.Fingerprint) && f.match(r) }
	out, err := scanAlerts(rows, keep, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("query resolved alerts: %w", err)
	}
	return out, nil
}

// alert returns one stored alert.
func (s *SQLite) alert(ctx context.Context, fp string) (alertRow, bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE fingerprint = ?`, fp)
	if err != nil {
		return alertRow{}, false, fmt.Errorf("query alert: %w", err)
	}
	out, err := scanAlerts(rows, nil, 1)
	if err != nil || len(out) == 0 {
		return alertRow{}, false, err
	}
	return out[0], true, nil
}

// resolvedOccurrence returns the span of a stored resolved alert.
func (s *SQLite) resolvedOccurrence(ctx context.Context, fp string) (occurrence, bool, error) {
	var a, f, r int64
	err := s.db.QueryRowContext(ctx, `SELECT active_at, fired_at, resolved_at FROM alerts
		WHERE fingerprint = ? AND state = 'resolved'`, fp).Scan(&a, &f, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return occurrence{}, false, nil
	}
	if err != nil {
		return occurrence{}, false, fmt.Errorf("query resolved alert: %w", err)
	}
	return occurrence{fromMS(a), fromMS(f), fromMS(r)}, true, nil
}

// scanAlerts reads alert rows, keeping those keep accepts (all when nil), up to limit (all when 0).
func scanAlerts(rows *sql.Rows, keep func(*alertRow) bool, limit int) ([]alertRow, error) {
	defer rows.Close()
	var out []alertRow
	for rows.Next() {
		var (
			r                                       alertRow
			labels, evidence, flaps, ackBy, ackNote string
			severity, state, notified               string
			value                                   sql.NullFloat64
			active, fired, resolved, seen, cleared  int64
			pActive, pFired, pResolved, ackAt       int64
			flapping                                bool
		)
		if err := rows.Scan(&r.Fingerprint, &r.Rule, &labels, &severity, &state, &r.Summary, &value, &evidence,
			&active, &fired, &resolved, &seen, &cleared, &pActive, &pFired, &pResolved, &notified, &flaps,
			&flapping, &ackBy, &ackNote, &ackAt); err != nil {
			return nil, err
		}
		r.Severity, r.State, r.Notified = hv.Severity(severity), hv.AlertState(state), hv.AlertState(notified)
		r.Value = math.NaN()
		if value.Valid {
			r.Value = value.Float64
		}
		if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
			return nil, fmt.Errorf("alert %s: labels: %w", r.Fingerprint, err)
		}
		if err := json.Unmarshal([]byte(evidence), &r.Evidence); err != nil {
			return nil, fmt.Errorf("alert %s: evidence: %w", r.Fingerprint, err)
		}
		var flapMS []int64
		if err := json.Unmarshal([]byte(flaps), &flapMS); err != nil {
			return nil, fmt.Errorf("alert %s: flaps: %w", r.Fingerprint, err)
		}
		for _, t := range flapMS {
			r.Flaps = append(r.Flaps, fromMS(t))
		}
		r.Evidence.From, r.Evidence.To = r.Evidence.From.UTC(), r.Evidence.To.UTC()
		r.ActiveAt, r.FiredAt, r.ResolvedAt = fromMS(active), fromMS(fired), fromMS(resolved)
		r.LastSeen, r.ClearedAt = fromMS(seen), fromMS(cleared)
		r.Prev = occurrence{fromMS(pActive), fromMS(pFired), fromMS(pResolved)}
		r.Flapping = flapping
		if ackBy != "" {
			r.Ack = &Ack{By: ackBy, Comment: ackNote, At: fromMS(ackAt)}
		}
		if keep != nil && !keep(&r) {
			continue
		}
		out = append(out, r)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, rows.Err()
}

// save writes, in one transaction, alert rows, deletions, history events and acknowledgements;
// evidence are alerts whose state is already stored: only their evidence, value, summary and last
// evaluation are written.
func (s *SQLite) save(ctx context.Context, alerts, evidence []*alertRow, deleted map[string]struct{}, events, acks []eventRow) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer tx.Rollback()
	if len(alerts) > 0 {
		st, err := tx.PrepareContext(ctx, `INSERT INTO alerts (`+alertColumns+`, epci)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (fingerprint) DO UPDATE SET
				rule = excluded.rule, labels = excluded.labels, severity = excluded.severity,
				state = excluded.state, summary = excluded.summary, value = excluded.value,
				evidence = excluded.evidence, active_at = excluded.active_at, fired_at = excluded.fired_at,
				resolved_at = excluded.resolved_at, last_seen = excluded.last_seen,
				cleared_at = excluded.cleared_at, prev_active_at = excluded.prev_active_at,
				prev_fired_at = excluded.prev_fired_at, prev_resolved_at = excluded.prev_resolved_at,
				notified = excluded.notified, flaps = excluded.flaps, flapping = excluded.flapping,
				ack_by = excluded.ack_by, ack_comment = excluded.ack_comment, ack_at = excluded.ack_at,
				epci = excluded.epci`)
		if err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
		defer st.Close()
		for _, r := range alerts {
			labels, err := json.Marshal(r.Labels)
			if err != nil {
				return fmt.Errorf("save alert %s: labels: %w", r.Fingerprint, err)
			}
			if r.Labels == nil {
				labels = []byte("{}")
			}
			evidence, err := marshalEvidence(r.Evidence)
			if err != nil {
				return fmt.Errorf("save alert %s: evidence: %w", r.Fingerprint, err)
			}
			flapMS := make([]int64, len(r.Flaps))
			for i, t := range r.Flaps {
				flapMS[i] = ms(t)
			}
			flaps, _ := json.Marshal(flapMS)
			var ack Ack
			if r.Ack != nil {
				ack = *r.Ack
			}
			if _, err := st.ExecContext(ctx, r.Fingerprint, r.Rule, string(labels), string(r.Severity),
				string(r.State), r.Summary, nullable(r.Value), evidence, ms(r.ActiveAt), ms(r.FiredAt),
				ms(r.ResolvedAt), ms(r.LastSeen), ms(r.ClearedAt), ms(r.Prev.ActiveAt), ms(r.Prev.FiredAt),
				ms(r.Prev.ResolvedAt), string(r.Notified), string(flaps), r.Flapping, ack.By, ack.Comment,
				ms(ack.At), r.Labels["epci"]); err != nil {
				return fmt.Errorf("save alert %s: %w", r.Fingerprint, err)
			}
		}
	}
	if len(evidence) > 0 {
		st, err := tx.PrepareContext(ctx, `UPDATE alerts SET summary = ?, value = ?, evidence = ?, last_seen = ?
			WHERE fingerprint = ?`)
		if err != nil {
			return fmt.Errorf("save alert evidence: %w", err)
		}
		defer st.Close()
		for _, r := range evidence {
			ev, err := marshalEvidence(r.Evidence)
			if err != nil {
				return fmt.Errorf("save alert %s: evidence: %w", r.Fingerprint, err)
			}
			if _, err := st.ExecContext(ctx, r.Summary, nullable(r.Value), ev, ms(r.LastSeen), r.Fingerprint); err != nil {
				return fmt.Errorf("save alert %s: %w", r.Fingerprint, err)
			}
		}
	}
	for fp := range deleted {
		if _, err := tx.ExecContext(ctx, `DELETE FROM alerts WHERE fingerprint = ?`, fp); err != nil {
			return fmt.Errorf("delete alert %s: %w", fp, err)
		}
	}
	if len(events) > 0 {
		st, err := tx.PrepareContext(ctx, `INSERT INTO alert_history (fingerprint, at, kind, value, by_user, note)
			VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("save alert history: %w", err)
		}
		defer st.Close()
		for _, e := range events {
			if _, err := st.ExecContext(ctx, e.fp, ms(e.ev.At), string(e.ev.Kind), nullable(e.ev.Value), e.ev.By, e.ev.Note); err != nil {
				return fmt.Errorf("save alert history: %w", err)
			}
		}
	}
	for _, a := range acks {
		if _, err := tx.ExecContext(ctx, `INSERT INTO acks (fingerprint, by_user, comment, at) VALUES (?, ?, ?, ?)`,
			a.fp, a.ev.By, a.ev.Note, ms(a.ev.At)); err != nil {
			return fmt.Errorf("save acknowledgement: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	return nil
}

// history returns an alert's events, oldest first (the last 1 000).
func (s *SQLite) history(ctx context.Context, fp string) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, kind, value, by_user, note FROM (
		SELECT id, at, kind, value, by_user, note FROM alert_history WHERE fingerprint = ?
		ORDER BY at DESC, id DESC LIMIT 1000) ORDER BY at, id`, fp)
	if err != nil {
		return nil, fmt.Errorf("query alert history: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			ev    Event
			at    int64
			kind  string
			value sql.NullFloat64
		)
		if err := rows.Scan(&at, &kind, &value, &ev.By, &ev.Note); err != nil {
			return nil, fmt.Errorf("query alert history: %w", err)
		}
		ev.At, ev.Kind, ev.Value = fromMS(at), EventKind(kind), value.Float64 // NULL (not a number): 0, JSON-safe
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query alert history: %w", err)
	}
	return out, nil
}

// loadSilences returns every stored silence (Prune bounds them).
func (s *SQLite) loadSilences(ctx context.Context) ([]Silence, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, matchers, starts_at, ends_at, by_user, comment FROM silences ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load silences: %w", err)
	}
	out, err := scanSilences(rows)
	if err != nil {
		return nil, fmt.Errorf("load silences: %w", err)
	}
	return out, nil
}

// silence returns one stored silence.
func (s *SQLite) silence(ctx context.Context, id string) (Silence, bool, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return Silence{}, false, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, matchers, starts_at, ends_at, by_user, comment FROM silences WHERE id = ?`, n)
	if err != nil {
		return Silence{}, false, fmt.Errorf("query silence: %w", err)
	}
	out, err := scanSilences(rows)
	if err != nil || len(out) == 0 {
		return Silence{}, false, err
	}
	return out[0], true, nil
}

func scanSilences(rows *sql.Rows) ([]Silence, error) {
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		var (
			s            Silence
			id, from, to int64
			matchers     string
		)
		if err := rows.Scan(&id, &matchers, &from, &to, &s.By, &s.Comment); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(matchers), &s.Matchers); err != nil {
			return nil, fmt.Errorf("silence %d: matchers: %w", id, err)
		}
		s.ID, s.From, s.To = strconv.FormatInt(id, 10), fromMS(from), fromMS(to)
		out = append(out, s)
	}
	return out, rows.Err()
}

// insertSilence stores a new silence and returns its id.
func (s *SQLite) insertSilence(ctx context.Context, sil *Silence) (int64, error) {
	matchers, err := json.Marshal(sil.Matchers)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO silences (matchers, starts_at, ends_at, by_user, comment)
		VALUES (?, ?, ?, ?, ?)`, string(matchers), ms(sil.From), ms(sil.To), sil.By, sil.Comment)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// updateSilence stores a silence's new period.
func (s *SQLite) updateSilence(ctx context.Context, sil *Silence) error {
	id, err := strconv.ParseInt(sil.ID, 10, 64)
	if err != nil {
		return fmt.Errorf("silence id %q: %w", sil.ID, ErrNotFound)
	}
	_, err = s.db.ExecContext(ctx, `UPDATE silences SET starts_at = ?, ends_at = ? WHERE id = ?`,
		ms(sil.From), ms(sil.To), id)
	return err
}

// ms is a time as stored: Unix milliseconds, 0 for the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// nullable stores a non-finite value as NULL (SQLite has no NaN).
func nullable(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// marshalEvidence encodes evidence as stored; JSON has no NaN or infinity, they are stored as 0.
func marshalEvidence(ev Evidence) (string, error) {
	ev.Value, ev.Baseline, ev.Threshold = finite(ev.Value), finite(ev.Baseline), finite(ev.Threshold)
	b, err := json.Marshal(ev)
	return string(b), err
}

// finite replaces what JSON cannot carry by 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
