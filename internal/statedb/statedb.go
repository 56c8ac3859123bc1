// Package statedb opens the service's state database: one SQLite file (WAL mode, pure Go driver) shared by
// the components that keep state (alerts, lighting commands and audit, …), each migrating its own tables
// under its own key of the schema_version table.
package statedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver (pure Go)

	hv "github.com/useda02/hyperviseur"
)

// Open opens (creating it and its directory if needed) the state database at path and applies the pending
// migrations of component: the files migrations/NNNN_name.sql of files.
func Open(path, component string, files fs.FS) (*sql.DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open state database %q: the path must be a plain file name (no ? or #): %w", path, hv.ErrInvalid)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open state database: %w", err)
		}
	}
	// busy_timeout first (the driver orders it so): another connection or process may hold the write lock.
	// BEGIN IMMEDIATE takes the write lock at once, so two writers wait instead of failing to upgrade.
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	ctx := context.Background()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("open state database %s: journal mode is %q, want wal", path, mode)
	}
	if err := migrate(ctx, db, component, files); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	return db, nil
}

// migrate applies, in order, the migrations/NNNN_name.sql files numbered above the component's version,
// each in its own transaction together with the version bump.
func migrate(ctx context.Context, db *sql.DB, component string, files fs.FS) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		component TEXT PRIMARY KEY,
		version   INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	type step struct {
		version int
		name    string
	}
	var steps []step
	for _, name := range names {
		base := filepath.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return fmt.Errorf("migrate %s: %s: name must start with a positive number and '_'", component, base)
		}
		steps = append(steps, step{v, name})
	}
	slices.SortFunc(steps, func(a, b step) int { return a.version - b.version })
	for i := 1; i < len(steps); i++ {
		if steps[i].version == steps[i-1].version {
			return fmt.Errorf("migrate %s: two migrations numbered %d", component, steps[i].version)
		}
	}
	for _, st := range steps {
		if err := migrateStep(ctx, db, component, files, st.version, st.name); err != nil {
			return err
		}
	}
	return nil
}

func migrateStep(ctx context.Context, db *sql.DB, component string, files fs.FS, version int, name string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	defer tx.Rollback()
	var current int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE component = ?`, component).Scan(&current)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if version <= current { // read inside the write transaction: another process may just have applied it
		return nil
	}
	script, err := fs.ReadFile(files, name)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if _, err := tx.ExecContext(ctx, string(script)); err != nil {
		return fmt.Errorf("migrate %s: %s: %w", component, filepath.Base(name), err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (component, version) VALUES (?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`, component, version); err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s: %s: %w", component, filepath.Base(name), err)
	}
	return nil
}
