package reporting

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/statedb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// schemaComponent is this package's key in the state database's schema_version table.
const schemaComponent = "reporting"

// MonthRow is one device's consumption of one delta metric over one civil month of Europe/Paris: the sum of
// its hourly sums, in the metric's unit (kWh, m³), and the number of hours with a value.
type MonthRow struct {
	Device string
	Metric hv.Metric
	Month  YearMonth
	Value  float64
	Hours  int
}

// MonthlyArchive keeps each device's monthly consumption in the service's state database (SQLite), so the
// months the décret BACS keeps five years outlive the store's raw readings. BACS.Sync fills it from the store;
// a month re-read replaces its rows, so the archive follows late data as the rollups do.
type MonthlyArchive struct {
	db *sql.DB
}

// OpenMonthlyArchive opens the state database at path and applies the reporting migrations.
func OpenMonthlyArchive(path string) (*MonthlyArchive, error) {
	db, err := statedb.Open(path, schemaComponent, migrations)
	if err != nil {
		return nil, fmt.Errorf("open monthly archive: %w", err)
	}
	return &MonthlyArchive{db: db}, nil
}

// Close closes the database.
func (a *MonthlyArchive) Close() error { return a.db.Close() }

// ReplaceMonth makes rows the whole of metric m over month: rows of other devices are deleted. Every row must
// be of m and month.
func (a *MonthlyArchive) ReplaceMonth(ctx context.Context, m hv.Metric, month YearMonth, rows []MonthRow, now time.Time) error {
	for _, r := range rows {
		if r.Metric != m || r.Month != month || r.Device == "" || !finiteNonNegative(r.Value) || r.Hours < 0 {
			return fmt.Errorf("replace month %s of %s: %w: row %+v", month, m, hv.ErrInvalid, r)
		}
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("replace month %s of %s: %w", month, m, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM reporting_monthly WHERE metric = ? AND month = ?`,
		string(m), month.String()); err != nil {
		return fmt.Errorf("replace month %s of %s: %w", month, m, err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO reporting_monthly (device, metric, month, value, hours, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("replace month %s of %s: %w", month, m, err)
	}
	defer ins.Close()
	for _, r := range rows {
		if _, err := ins.ExecContext(ctx, r.Device, string(m), month.String(), r.Value, r.Hours, now.UnixMilli()); err != nil {
			return fmt.Errorf("replace month %s of %s: device %s: %w", month, m, r.Device, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("replace month %s of %s: %w", month, m, err)
	}
	return nil
}

// Rows returns the rows of months from to to (both included) of devices (nil: every device), sorted by
// device, metric and month.
func (a *MonthlyArchive) Rows(ctx context.Context, devices []string, from, to YearMonth) ([]MonthRow, error) {
	if devices != nil && len(devices) == 0 {
		return nil, nil
	}
	q := `SELECT device, metric, month, value, hours FROM reporting_monthly WHERE month >= ? AND month <= ?`
	args := []any{from.String(), to.String()}
	if devices != nil {
		q += ` AND device IN (?` + strings.Repeat(`, ?`, len(devices)-1) + `)`
		for _, d := range devices {
			args = append(args, d)
		}
	}
	rows, err := a.db.QueryContext(ctx, q+` ORDER BY device, metric, month`, args...)
	if err != nil {
		return nil, fmt.Errorf("read monthly archive: %w", err)
	}
	defer rows.Close()
	var out []MonthRow
	for rows.Next() {
		var (
			r     MonthRow
			month string
		)
		if err := rows.Scan(&r.Device, &r.Metric, &month, &r.Value, &r.Hours); err != nil {
			return nil, fmt.Errorf("read monthly archive: %w", err)
		}
		if err := r.Month.UnmarshalText([]byte(month)); err != nil {
			return nil, fmt.Errorf("read monthly archive: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read monthly archive: %w", err)
	}
	return out, nil
}

// Prune deletes the months before before; it returns the rows deleted.
func (a *MonthlyArchive) Prune(ctx context.Context, before YearMonth) (int64, error) {
	res, err := a.db.ExecContext(ctx, `DELETE FROM reporting_monthly WHERE month < ?`, before.String())
	if err != nil {
		return 0, fmt.Errorf("prune monthly archive: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune monthly archive: %w", err)
	}
	return n, nil
}

// monthSums returns the rollups' total of metric m over month per device (devices with a series only), and
// whether the rollups cover the whole month (they begin at their first day kept).
func (r *Rollups) monthSums(m hv.Metric, month YearMonth) (map[string]float64, bool) {
	d0 := dayOfTime(month.Start(r.loc))
	d1 := dayOfTime(month.Next().Start(r.loc))
	if d0 < r.since {
		return nil, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]float64, len(r.series[m]))
	for dev, s := range r.series[m] {
		out[dev] = s.sum(d0, d1)
	}
	return out, true
}
