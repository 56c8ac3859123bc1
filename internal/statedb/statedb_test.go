package statedb

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	version := func(component string) int {
		t.Helper()
		var v int
		if err := db.QueryRow(`SELECT version FROM schema_version WHERE component = ?`, component).Scan(&v); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		return v
	}
	// Numeric order: 2 before 10, though "10_" sorts first as text; 10 depends on 2.
	files := fstest.MapFS{
		"migrations/2_a.sql":  {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"migrations/10_b.sql": {Data: []byte(`ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z INTEGER);`)},
	}
	if err := migrate(ctx, db, "test", files); err != nil {
		t.Fatal(err)
	}
	if v := version("test"); v != 10 {
		t.Fatalf("version %d, want 10", v)
	}
	// A failing step rolls back whole, names its file, and leaves the version where it was.
	files["migrations/11_bad.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE c (x INTEGER); INSERT INTO nowhere VALUES (1);`)}
	err = migrate(ctx, db, "test", files)
	if err == nil || !strings.Contains(err.Error(), "11_bad.sql") {
		t.Fatalf("bad migration: %v, want an error naming 11_bad.sql", err)
	}
	if v := version("test"); v != 10 {
		t.Errorf("version %d after a failed step, want 10", v)
	}
	if err := db.QueryRow(`SELECT count(*) FROM c`).Scan(new(int)); err == nil {
		t.Error("table c of the failed step exists")
	}
	// Components are independent.
	if err := migrate(ctx, db, "other", fstest.MapFS{"migrations/1_o.sql": {Data: []byte(`CREATE TABLE o (x INTEGER);`)}}); err != nil {
		t.Fatal(err)
	}
	if version("other") != 1 || version("test") != 10 {
		t.Errorf("versions other=%d test=%d", version("other"), version("test"))
	}
	for name, fsys := range map[string]fstest.MapFS{
		"no number": {"migrations/init.sql": {Data: []byte(`SELECT 1;`)}},
		"duplicate": {"migrations/1_a.sql": {Data: []byte(`SELECT 1;`)}, "migrations/01_b.sql": {Data: []byte(`SELECT 1;`)}},
	} {
		if err := migrate(ctx, db, "x", fsys); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestOpenWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	files := fstest.MapFS{"migrations/1_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)}}
	db, err := Open(path, "a", files)
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q, %v; want wal", mode, err)
	}
	db.Close()
	// Reopening applies nothing twice; a second component shares the file.
	db, err = Open(path, "b", fstest.MapFS{"migrations/1_b.sql": {Data: []byte(`CREATE TABLE b (x INTEGER);`)}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path+"?mode=ro", "a", files); err == nil {
		t.Error("a path with a query string was accepted")
	}
}
