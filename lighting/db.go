package lighting

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/useda02/hyperviseur/internal/statedb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// schemaComponent is this package's key in the state database's schema_version table.
const schemaComponent = "lighting"

// DB keeps lighting control state in the service's state database: programs pushed, overrides, commands,
// programs edited through the API, closed work items and the audit log. Every transition is written before
// it is acted on, so a restart resumes where the service stopped.
type DB struct {
	db *sql.DB
}

// OpenDB opens the state database at path and applies the lighting migrations.
func OpenDB(path string) (*DB, error) {
	db, err := statedb.Open(path, schemaComponent, migrations)
	if err != nil {
		return nil, fmt.Errorf("open lighting store: %w", err)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// ErrNotFound marks an unknown override, command, program or work item.
var ErrNotFound = errors.New("not found")

// Command states, in the order a command normally goes through them. A command is open until it is
// measured, rejected, expired or cancelled.
const (
	StateScheduled = "scheduled" // starts later
	StateQueued    = "queued"    // the controller is offline: sent when it is heard again
	StateSent      = "sent"      // published (the broker took it), no ack yet
	StateAcked     = "acked"     // the controller (or its LoRaWAN network server) acknowledged it
	StateMeasured  = "measured"  // the reported level agrees: done
	StateRejected  = "rejected"  // the controller refused it
	StateExpired   = "expired"   // its period ended before it was acknowledged or measured
	StateCancelled = "cancelled" // its override was cancelled
	// Program records only: desired (computed, not yet published).
	StateDesired = "desired"
)

// Command is one order to one controller, from an override.
type Command struct {
	ID         string    `json:"id"`
	Device     string    `json:"device"`
	OverrideID string    `json:"override_id,omitempty"`
	Level      float64   `json:"level"`
	From       time.Time `json:"from"`
	Until      time.Time `json:"until"`
	Actor      string    `json:"actor"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	Detail     string    `json:"detail,omitempty"`
	Created    time.Time `json:"created"`
	Sent       time.Time `json:"sent,omitzero"`
	Acked      time.Time `json:"acked,omitzero"`
	Measured   time.Time `json:"measured,omitzero"`
	Updated    time.Time `json:"updated"`
}

// open reports whether the command still waits for something.
func (c *Command) open() bool {
	switch c.State {
	case StateScheduled, StateQueued, StateSent, StateAcked:
		return true
	}
	return false
}

// Override is a level forced on a group or a device over a period, by someone, for a reason.
type Override struct {
	ID          string    `json:"id"`
	TargetKind  string    `json:"target_kind"` // "group" or "device"
	Target      string    `json:"target"`
	Level       float64   `json:"level"`
	From        time.Time `json:"from"`
	Until       time.Time `json:"until"`
	Actor       string    `json:"actor"`
	Reason      string    `json:"reason"`
	Created     time.Time `json:"created"`
	Cancelled   time.Time `json:"cancelled,omitzero"`
	CancelledBy string    `json:"cancelled_by,omitempty"`
}

// PushedProgram is the program version a controller was last given and how far it got.
type PushedProgram struct {
	Device     string    `json:"device"`
	Version    int64     `json:"version"`
	Hash       string    `json:"-"`
	DownlinkID string    `json:"-"`
	Program    Program   `json:"program"`
	State      string    `json:"state"`
	Detail     string    `json:"detail,omitempty"`
	Created    time.Time `json:"created"`
	Sent       time.Time `json:"sent,omitzero"`
	Acked      time.Time `json:"acked,omitzero"`
	Measured   time.Time `json:"measured,omitzero"`
	Attempts   int       `json:"attempts"`
	Last       time.Time `json:"last_sent,omitzero"`
}

// AuditEntry is one line of the audit log: who did what to what, when, and how it ended.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	Ref     string    `json:"ref,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
}

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

// Audit appends an entry.
func (d *DB) Audit(ctx context.Context, e AuditEntry) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO audit (at_ms, actor, action, target, ref, detail, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		ms(e.At), e.Actor, e.Action, e.Target, e.Ref, e.Detail, e.Outcome)
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Target, err)
	}
	return nil
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	Target, Ref, Actor, ActionPrefix string
	Since                            time.Time
	Limit                            int // default 500
}

// AuditLog returns matching entries, newest first.
func (d *DB) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := `SELECT id, at_ms, actor, action, target, ref, detail, outcome FROM audit WHERE 1=1`
	var args []any
	if f.Target != "" {
		q += ` AND target = ?`
		args = append(args, f.Target)
	}
	if f.Ref != "" {
		q += ` AND ref = ?`
		args = append(args, f.Ref)
	}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	if f.ActionPrefix != "" {
		q += ` AND substr(action, 1, ?) = ?`
		args = append(args, len(f.ActionPrefix), f.ActionPrefix)
	}
	if !f.Since.IsZero() {
		q += ` AND at_ms >= ?`
		args = append(args, ms(f.Since))
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 500
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Ref, &e.Detail, &e.Outcome); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

const commandCols = `id, device, override_id, level, from_ms, until_ms, actor, state, attempts, detail, created_ms, sent_ms, acked_ms, measured_ms, updated_ms`

func scanCommand(s interface{ Scan(...any) error }) (Command, error) {
	var c Command
	var from, until, created, sent, acked, measured, updated int64
	err := s.Scan(&c.ID, &c.Device, &c.OverrideID, &c.Level, &from, &until, &c.Actor, &c.State, &c.Attempts, &c.Detail,
		&created, &sent, &acked, &measured, &updated)
	c.From, c.Until, c.Created, c.Sent, c.Acked, c.Measured, c.Updated =
		fromMS(from), fromMS(until), fromMS(created), fromMS(sent), fromMS(acked), fromMS(measured), fromMS(updated)
	return c, err
}

// SaveCommand inserts or replaces a command.
func (d *DB) SaveCommand(ctx context.Context, c Command) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO lighting_commands (`+commandCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, detail = excluded.detail,
		sent_ms = excluded.sent_ms, acked_ms = excluded.acked_ms, measured_ms = excluded.measured_ms, updated_ms = excluded.updated_ms`,
		c.ID, c.Device, c.OverrideID, c.Level, ms(c.From), ms(c.Until), c.Actor, c.State, c.Attempts, c.Detail,
		ms(c.Created), ms(c.Sent), ms(c.Acked), ms(c.Measured), ms(c.Updated))
	if err != nil {
		return fmt.Errorf("save command %s: %w", c.ID, err)
	}
	return nil
}

// CommandFilter selects commands; empty fields match everything.
type CommandFilter struct {
	Device, OverrideID string
	States             []string
	Limit              int // default 500
}

// Commands returns matching commands, newest first.
func (d *DB) Commands(ctx context.Context, f CommandFilter) ([]Command, error) {
	q := `SELECT ` + commandCols + ` FROM lighting_commands WHERE 1=1`
	var args []any
	if f.Device != "" {
		q += ` AND device = ?`
		args = append(args, f.Device)
	}
	if f.OverrideID != "" {
		q += ` AND override_id = ?`
		args = append(args, f.OverrideID)
	}
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(`, ?`, len(f.States)-1) + `)`
		for _, s := range f.States {
			args = append(args, s)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 500
	}
	q += ` ORDER BY created_ms DESC, id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}
	defer rows.Close()
	var out []Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, fmt.Errorf("commands: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Command returns one command.
func (d *DB) Command(ctx context.Context, id string) (Command, error) {
	c, err := scanCommand(d.db.QueryRowContext(ctx, `SELECT `+commandCols+` FROM lighting_commands WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Command{}, fmt.Errorf("command %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Command{}, fmt.Errorf("command %s: %w", id, err)
	}
	return c, nil
}

// SaveOverride inserts or updates (cancellation) an override.
func (d *DB) SaveOverride(ctx context.Context, o Override) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO lighting_overrides (id, target_kind, target, level, from_ms, until_ms, actor, reason, created_ms, cancelled_ms, cancelled_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET cancelled_ms = excluded.cancelled_ms, cancelled_by = excluded.cancelled_by`,
		o.ID, o.TargetKind, o.Target, o.Level, ms(o.From), ms(o.Until), o.Actor, o.Reason, ms(o.Created), ms(o.Cancelled), o.CancelledBy)
	if err != nil {
		return fmt.Errorf("save override %s: %w", o.ID, err)
	}
	return nil
}

// Overrides returns the overrides that end after since, newest first.
func (d *DB) Overrides(ctx context.Context, since time.Time, limit int) ([]Override, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := d.db.QueryContext(ctx, `SELECT id, target_kind, target, level, from_ms, until_ms, actor, reason, created_ms, cancelled_ms, cancelled_by
		FROM lighting_overrides WHERE until_ms > ? ORDER BY created_ms DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("overrides: %w", err)
	}
	defer rows.Close()
	var out []Override
	for rows.Next() {
		var o Override
		var from, until, created, cancelled int64
		if err := rows.Scan(&o.ID, &o.TargetKind, &o.Target, &o.Level, &from, &until, &o.Actor, &o.Reason, &created, &cancelled, &o.CancelledBy); err != nil {
			return nil, fmt.Errorf("overrides: %w", err)
		}
		o.From, o.Until, o.Created, o.Cancelled = fromMS(from), fromMS(until), fromMS(created), fromMS(cancelled)
		out = append(out, o)
	}
	return out, rows.Err()
}

// SaveProgram records the program version pushed to a device (one row per device: the newest).
func (d *DB) SaveProgram(ctx context.Context, p PushedProgram) error {
	payload, err := json.Marshal(p.Program)
	if err != nil {
		return fmt.Errorf("save program %s v%d: %w", p.Device, p.Version, err)
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO lighting_programs (device, version, hash, downlink_id, payload, state, detail, created_ms, sent_ms, acked_ms, measured_ms, attempts, last_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET version = excluded.version, hash = excluded.hash, downlink_id = excluded.downlink_id,
		payload = excluded.payload, state = excluded.state, detail = excluded.detail, created_ms = excluded.created_ms,
		sent_ms = excluded.sent_ms, acked_ms = excluded.acked_ms, measured_ms = excluded.measured_ms,
		attempts = excluded.attempts, last_ms = excluded.last_ms`,
		p.Device, p.Version, p.Hash, p.DownlinkID, string(payload), p.State, p.Detail, ms(p.Created), ms(p.Sent), ms(p.Acked), ms(p.Measured),
		p.Attempts, ms(p.Last))
	if err != nil {
		return fmt.Errorf("save program %s v%d: %w", p.Device, p.Version, err)
	}
	return nil
}

// Programs returns the newest program of every device.
func (d *DB) Programs(ctx context.Context) ([]PushedProgram, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT device, version, hash, downlink_id, payload, state, detail, created_ms, sent_ms, acked_ms, measured_ms, attempts, last_ms FROM lighting_programs`)
	if err != nil {
		return nil, fmt.Errorf("programs: %w", err)
	}
	defer rows.Close()
	var out []PushedProgram
	for rows.Next() {
		var p PushedProgram
		var payload string
		var created, sent, acked, measured, last int64
		if err := rows.Scan(&p.Device, &p.Version, &p.Hash, &p.DownlinkID, &payload, &p.State, &p.Detail, &created, &sent, &acked, &measured, &p.Attempts, &last); err != nil {
			return nil, fmt.Errorf("programs: %w", err)
		}
		if err := json.Unmarshal([]byte(payload), &p.Program); err != nil {
			return nil, fmt.Errorf("programs: %s: %w", p.Device, err)
		}
		p.Created, p.Sent, p.Acked, p.Measured, p.Last = fromMS(created), fromMS(sent), fromMS(acked), fromMS(measured), fromMS(last)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ProgramEdit is a program definition changed through the API; a nil Def deletes the program.
type ProgramEdit struct {
	Name    string
	Def     *ProgramDef
	By      string
	Updated time.Time
}

// SaveProgramDef records an edit.
func (d *DB) SaveProgramDef(ctx context.Context, e ProgramEdit) error {
	def := ""
	if e.Def != nil {
		b, err := json.Marshal(e.Def)
		if err != nil {
			return fmt.Errorf("save program %s: %w", e.Name, err)
		}
		def = string(b)
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO lighting_program_defs (name, def, updated_by, updated_ms) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET def = excluded.def, updated_by = excluded.updated_by, updated_ms = excluded.updated_ms`,
		e.Name, def, e.By, ms(e.Updated))
	if err != nil {
		return fmt.Errorf("save program %s: %w", e.Name, err)
	}
	return nil
}

// ProgramDefs returns the edits, oldest first, to apply on top of the configured plan.
func (d *DB) ProgramDefs(ctx context.Context) ([]ProgramEdit, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, def, updated_by, updated_ms FROM lighting_program_defs ORDER BY updated_ms, name`)
	if err != nil {
		return nil, fmt.Errorf("program edits: %w", err)
	}
	defer rows.Close()
	var out []ProgramEdit
	for rows.Next() {
		var e ProgramEdit
		var def string
		var updated int64
		if err := rows.Scan(&e.Name, &def, &e.By, &updated); err != nil {
			return nil, fmt.Errorf("program edits: %w", err)
		}
		if def != "" {
			e.Def = new(ProgramDef)
			if err := json.Unmarshal([]byte(def), e.Def); err != nil {
				return nil, fmt.Errorf("program edits: %s: %w", e.Name, err)
			}
		}
		e.Updated = fromMS(updated)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CloseWork records a closed work item.
func (d *DB) CloseWork(ctx context.Context, item, by, comment string, at time.Time) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO lighting_work_closed (item, closed_ms, closed_by, comment) VALUES (?, ?, ?, ?)
		ON CONFLICT (item) DO UPDATE SET closed_ms = excluded.closed_ms, closed_by = excluded.closed_by, comment = excluded.comment`,
		item, ms(at), by, comment)
	if err != nil {
		return fmt.Errorf("close work item %s: %w", item, err)
	}
	return nil
}

// ClosedWork returns when each closed work item was closed.
func (d *DB) ClosedWork(ctx context.Context) (map[string]time.Time, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT item, closed_ms FROM lighting_work_closed`)
	if err != nil {
		return nil, fmt.Errorf("closed work items: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var item string
		var at int64
		if err := rows.Scan(&item, &at); err != nil {
			return nil, fmt.Errorf("closed work items: %w", err)
		}
		out[item] = fromMS(at)
	}
	return out, rows.Err()
}

// Prune deletes audit entries and finished commands and overrides older than before.
func (d *DB) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	for _, q := range []string{
		`DELETE FROM audit WHERE at_ms < ?`,
		`DELETE FROM lighting_commands WHERE updated_ms < ? AND state NOT IN ('scheduled', 'queued', 'sent', 'acked')`,
		`DELETE FROM lighting_overrides WHERE until_ms < ?`,
	} {
		res, err := d.db.ExecContext(ctx, q, ms(before))
		if err != nil {
			return n, fmt.Errorf("prune lighting state: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, nil
}
