package reporting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
)

// ErrNoSite is returned for a site the registry does not have.
var ErrNoSite = errors.New("no such site")

// RuleBACSEfficiencyLoss names the alerts of the décret BACS loss-of-efficiency findings.
const RuleBACSEfficiencyLoss = "bacs_efficiency_loss"

// BACSRuleSpec is the lifecycle of those alerts: a warning, firing at once (a finding already spans months).
var BACSRuleSpec = rules.RuleSpec{Name: RuleBACSEfficiencyLoss, Severity: hv.SeverityWarning,
	Summary: "Perte d'efficacité présumée (décret BACS)"}

// BACS runs the décret BACS over the service: every energy meter (electricity, gas, heat) is a functional
// zone of its site (the registry has no sub-meter hierarchy: a site's meters are its zones), its monthly
// consumption is kept in the MonthlyArchive for Config.BACSMonthsKept months, and each month is compared with
// the same month of the previous year.
//
// Where a month comes from: the months the store still holds whole (those beginning after now − the store's
// retention) are read from the store, which is the truth; older ones from the archive. Sync writes into the
// archive every month the store holds whole whose rollup totals differ from the archived ones, and the current
// and previous months whatever they hold: a late reading in a closed month changes its rollups (the ingest
// hook marks its day, or the rollups' recheck rereads it), and the next Sync re-reads the month from the store
// and replaces its rows. A month the retention has begun to cut is never written again.
type BACS struct {
	store     hv.Store
	rollups   *Rollups
	archive   *MonthlyArchive
	reg       func() *registry.Registry
	cfg       Config
	loc       *time.Location
	retention time.Duration
	log       *slog.Logger

	syncMu sync.Mutex // one Sync at a time: each replaces whole months
}

// NewBACS returns the service over store, its rollups and the archive; retention is the store's (0:
// unlimited). cfg must be valid.
func NewBACS(store hv.Store, rollups *Rollups, archive *MonthlyArchive, reg func() *registry.Registry, cfg Config,
	retention time.Duration, log *slog.Logger) *BACS {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &BACS{store: store, rollups: rollups, archive: archive, reg: reg, cfg: cfg, loc: rollups.loc,
		retention: retention, log: log}
}

// options are the analysis options of the configuration.
func (b *BACS) options() BACSOptions {
	return BACSOptions{Location: b.loc, PreviousYear: true, ThresholdPct: b.cfg.BACSThresholdPct,
		Months: b.cfg.BACSLossMonths}
}

// horizon is the first month the store holds whole at now.
func (b *BACS) horizon(now time.Time) YearMonth {
	if b.retention <= 0 {
		return YearMonth{1, time.January}
	}
	oldest := now.Add(-b.retention)
	m := MonthOf(oldest, b.loc)
	if m.Start(b.loc).Before(oldest) {
		m = m.Next()
	}
	return m
}

// oldestKept is the first month kept at now: BACSMonthsKept complete months before the current one.
func (b *BACS) oldestKept(now time.Time) YearMonth {
	return MonthOf(now, b.loc).AddMonths(-b.cfg.BACSMonthsKept)
}

// SyncStats say what a Sync did.
type SyncStats struct {
	Checked  int   // (metric, month) pairs compared with the rollups
	Reread   int   // of them re-read from the store and replaced
	Rows     int   // rows written
	Pruned   int64 // rows older than the months kept, deleted
	Duration time.Duration
}

// Sync brings the archive up to date at now (see BACS) and prunes the months before the oldest kept. It
// refreshes the rollups first; it returns ErrNotReady while they are being built.
func (b *BACS) Sync(ctx context.Context, now time.Time) (SyncStats, error) {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	start := time.Now()
	var st SyncStats
	if !b.rollups.Ready() {
		return st, ErrNotReady
	}
	if err := b.rollups.Refresh(ctx); err != nil {
		return st, fmt.Errorf("bacs sync: %w", err)
	}
	cur := MonthOf(now, b.loc)
	first := b.horizon(now)
	if k := b.oldestKept(now); first.Before(k) {
		first = k
	}
	stored, err := b.archive.Rows(ctx, nil, first, cur)
	if err != nil {
		return st, fmt.Errorf("bacs sync: %w", err)
	}
	type key struct {
		metric hv.Metric
		month  YearMonth
	}
	archived := map[key]map[string]float64{}
	for _, r := range stored {
		k := key{r.Metric, r.Month}
		if archived[k] == nil {
			archived[k] = map[string]float64{}
		}
		archived[k][r.Device] = r.Value
	}
	for _, m := range RollupMetrics {
		for month := first; !cur.Before(month); month = month.Next() {
			sums, whole := b.rollups.monthSums(m, month)
			if !whole {
				continue // before the rollups' first day: nothing to compare with
			}
			st.Checked++
			if !month.Before(cur.AddMonths(-1)) || !sameTotals(sums, archived[key{m, month}]) {
				rows, err := b.readMonth(ctx, m, month)
				if err != nil {
					return st, fmt.Errorf("bacs sync: %w", err)
				}
				if err := b.archive.ReplaceMonth(ctx, m, month, rows, now); err != nil {
					return st, fmt.Errorf("bacs sync: %w", err)
				}
				st.Reread++
				st.Rows += len(rows)
			}
		}
	}
	if st.Pruned, err = b.archive.Prune(ctx, b.oldestKept(now)); err != nil {
		return st, fmt.Errorf("bacs sync: %w", err)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// sameTotals reports whether the rollups' month totals and the archived ones agree (a device missing on one
// side counts 0), to a relative 1e-9: the two sum the same hourly values in a different order.
func sameTotals(rollup, archived map[string]float64) bool {
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b))) }
	for d, v := range rollup {
		if !close(v, archived[d]) {
			return false
		}
	}
	for d, v := range archived {
		if _, ok := rollup[d]; !ok && !close(v, 0) {
			return false
		}
	}
	return true
}

// readMonth reads every device's hourly sums of metric m over month from the store, ChunkDays at a time.
func (b *BACS) readMonth(ctx context.Context, m hv.Metric, month YearMonth) ([]MonthRow, error) {
	acc, err := b.readHourly(ctx, m, nil, month.Start(b.loc), month.Next().Start(b.loc), nil)
	if err != nil {
		return nil, err
	}
	rows := make([]MonthRow, 0, len(acc))
	for dev, byMonth := range acc {
		a := byMonth[month]
		rows = append(rows, MonthRow{Device: dev, Metric: m, Month: month, Value: a.value, Hours: a.hours})
	}
	slices.SortFunc(rows, func(x, y MonthRow) int { return strings.Compare(x.Device, y.Device) })
	return rows, nil
}

// monthAcc is a month's sum and hours with a value.
type monthAcc struct {
	value float64
	hours int
}

// readHourly reads the hourly sums of metric m for devices (nil: all) over [from, to), ChunkDays at a time,
// and adds them up per device and month; each hourly point is also handed to hourly when not nil.
func (b *BACS) readHourly(ctx context.Context, m hv.Metric, devices []string, from, to time.Time,
	hourly func(dev string, p hv.Point)) (map[string]map[YearMonth]*monthAcc, error) {
	out := map[string]map[YearMonth]*monthAcc{}
	for c := from; c.Before(to); {
		e := c.AddDate(0, 0, max(b.cfg.ChunkDays, 1))
		if e.After(to) {
			e = to
		}
		ss, err := b.store.Query(ctx, hv.Query{Metric: m, From: c.UnixMilli(), To: e.UnixMilli(), Devices: devices,
			Every: hourMs, Agg: hv.AggSum})
		if err != nil {
			return nil, fmt.Errorf("read %s from %s to %s: %w", m, c.Format(time.DateOnly), e.Format(time.DateOnly), err)
		}
		for _, s := range ss {
			if s.Device == "" || len(s.Points) == 0 {
				continue
			}
			byMonth := out[s.Device]
			if byMonth == nil {
				byMonth = map[YearMonth]*monthAcc{}
				out[s.Device] = byMonth
			}
			for _, p := range s.Points {
				if !finiteNonNegative(p.Value) {
					continue // a delta is never negative; an engine's NaN is no consumption
				}
				mo := MonthOf(time.UnixMilli(p.Time), b.loc)
				a := byMonth[mo]
				if a == nil {
					a = &monthAcc{}
					byMonth[mo] = a
				}
				a.value += p.Value
				a.hours++
				if hourly != nil {
					hourly(s.Device, p)
				}
			}
		}
		c = e
	}
	return out, nil
}

// BACSZoneInfo is one functional zone of a site: one of its energy meters.
type BACSZoneInfo struct {
	ID     string    `json:"id"`
	Device string    `json:"device"`
	Fluid  hv.Fluid  `json:"fluid"`
	Metric hv.Metric `json:"metric"`
}

// SiteBACS is a site's décret BACS report: each zone's months against the same month of the previous year,
// and the losses of efficiency found.
type SiteBACS struct {
	Site string    `json:"site"`
	Name string    `json:"name"`
	From YearMonth `json:"from"`
	To   YearMonth `json:"to"`
	// Reference says what each month is compared with: "previous_year", the same month one year earlier.
	Reference    string         `json:"reference"`
	ThresholdPct float64        `json:"threshold_pct"`
	LossMonths   int            `json:"loss_months"`
	GasPCS       float64        `json:"gas_pcs_kwh_per_m3"`
	Zones        []BACSZoneInfo `json:"zones"`
	BACSReport
	Notes []string `json:"notes,omitempty"` // in French, for the user
}

// MaxBACSMonths bounds the months of one report.
const MaxBACSMonths = 241

// siteZones lists the energy meters of a site, by id.
func siteZones(reg *registry.Registry, site string) []hv.Device {
	var out []hv.Device
	for _, d := range reg.Devices() {
		if d.Site == site && d.Kind == hv.DeviceMeter && slices.Contains(energyFluids, d.Fluid) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b hv.Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// kwh converts a fluid's delta value into kWh (gas m³ at the configured PCS).
func (b *BACS) kwh(f hv.Fluid, v float64) float64 {
	if f == hv.Gas {
		return v * b.cfg.GasPCS
	}
	return v
}

// Site answers the report of a site over months from to to (both included; zero: the months kept up to the
// current one) at now. Each month's reference is read too, a year before from.
func (b *BACS) Site(ctx context.Context, siteID string, from, to YearMonth, now time.Time) (*SiteBACS, error) {
	reg := b.reg()
	site, ok := reg.Site(siteID)
	if !ok {
		return nil, fmt.Errorf("bacs report: site %q: %w", siteID, ErrNoSite)
	}
	cur := MonthOf(now, b.loc)
	if to == (YearMonth{}) {
		to = cur
	}
	if from == (YearMonth{}) {
		from = b.oldestKept(now)
	}
	if to.Before(from) {
		return nil, fmt.Errorf("bacs report: %w: from %s is after to %s", hv.ErrInvalid, from, to)
	}
	if n := to.Year*12 + int(to.Month) - from.Year*12 - int(from.Month) + 1; n > MaxBACSMonths {
		return nil, fmt.Errorf("bacs report: %w: %d months, at most %d", hv.ErrInvalid, n, MaxBACSMonths)
	}
	opts := b.options()
	out := &SiteBACS{Site: site.ID, Name: site.Name, From: from, To: to, Reference: "previous_year",
		ThresholdPct: opts.ThresholdPct, LossMonths: opts.Months, GasPCS: b.cfg.GasPCS, Zones: []BACSZoneInfo{}}
	devs := siteZones(reg, site.ID)
	if len(devs) == 0 {
		out.Months, out.Findings = []ZoneMonth{}, []BACSFinding{}
		out.Notes = append(out.Notes, "Aucun compteur d'énergie (électricité, gaz, chaleur) sur ce site.")
		return out, nil
	}
	lo := from.AddMonths(-12)
	for _, d := range devs {
		out.Zones = append(out.Zones, BACSZoneInfo{ID: d.ID, Device: d.ID, Fluid: d.Fluid, Metric: FluidMetric(d.Fluid)})
	}
	zones, err := b.zones(ctx, devs, lo, to, now)
	if err != nil {
		return nil, fmt.Errorf("bacs report of %s: %w", site.ID, err)
	}
	r, err := AnalyzeBACS(zones, opts)
	if err != nil {
		return nil, fmt.Errorf("bacs report of %s: %w", site.ID, err)
	}
	out.Months = slices.DeleteFunc(r.Months, func(m ZoneMonth) bool { return m.Month.Before(from) })
	out.Findings = slices.DeleteFunc(r.Findings, func(f BACSFinding) bool { return f.To.Before(from) })
	if out.Months == nil {
		out.Months = []ZoneMonth{}
	}
	if out.Findings == nil {
		out.Findings = []BACSFinding{}
	}
	if h := b.horizon(now); from.Before(h) {
		out.Notes = append(out.Notes, fmt.Sprintf("Mois antérieurs à %s : totaux mensuels conservés (les relevés "+
			"horaires ne sont plus en base).", h))
	}
	out.Notes = append(out.Notes, "Comparaison au même mois de l'année précédente, sans ajustement climatique.")
	return out, nil
}

// zones builds the BACS zones of devs over months lo to to: the months the store holds whole from the store
// (hourly), the others, and any month the store has nothing of, from the archive.
func (b *BACS) zones(ctx context.Context, devs []hv.Device, lo, to YearMonth, now time.Time) ([]BACSZone, error) {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	kept, err := b.archive.Rows(ctx, ids, lo, to)
	if err != nil {
		return nil, err
	}
	h := b.horizon(now)
	if h.Before(lo) {
		h = lo
	}
	hourly := map[string][]HourlyKWh{}
	live := map[string]map[YearMonth]bool{} // device-months with hourly data
	fluid := map[string]hv.Fluid{}
	byMetric := map[hv.Metric][]string{}
	for _, d := range devs {
		fluid[d.ID] = d.Fluid
		byMetric[FluidMetric(d.Fluid)] = append(byMetric[FluidMetric(d.Fluid)], d.ID)
	}
	if !to.Before(h) {
		for _, m := range RollupMetrics {
			if len(byMetric[m]) == 0 {
				continue
			}
			acc, err := b.readHourly(ctx, m, byMetric[m], h.Start(b.loc), to.Next().Start(b.loc), func(dev string, p hv.Point) {
				hourly[dev] = append(hourly[dev], HourlyKWh{Time: time.UnixMilli(p.Time), KWh: b.kwh(fluid[dev], p.Value)})
			})
			if err != nil {
				return nil, err
			}
			for dev, byMonth := range acc {
				live[dev] = map[YearMonth]bool{}
				for mo := range byMonth {
					live[dev][mo] = true
				}
			}
		}
	}
	months := map[string][]MonthKWh{}
	for _, r := range kept {
		if r.Metric != FluidMetric(fluid[r.Device]) || live[r.Device][r.Month] {
			continue // another metric of the device, or a month the store answers
		}
		months[r.Device] = append(months[r.Device], MonthKWh{Month: r.Month, KWh: b.kwh(fluid[r.Device], r.Value),
			Hours: min(r.Hours, r.Month.Hours(b.loc))})
	}
	zones := make([]BACSZone, 0, len(devs))
	for _, d := range devs {
		zones = append(zones, BACSZone{ID: d.ID, Site: d.Site, Fluid: d.Fluid, Hourly: hourly[d.ID], Months: months[d.ID]})
	}
	return zones, nil
}

// Losses syncs the archive at now and returns the losses of efficiency still running: the findings, over the
// months kept, whose last month is the last complete one.
func (b *BACS) Losses(ctx context.Context, now time.Time) ([]BACSFinding, error) {
	if _, err := b.Sync(ctx, now); err != nil {
		return nil, err
	}
	reg := b.reg()
	cur := MonthOf(now, b.loc)
	lo := b.oldestKept(now)
	rows, err := b.archive.Rows(ctx, nil, lo, cur)
	if err != nil {
		return nil, fmt.Errorf("bacs losses: %w", err)
	}
	byDev := map[string][]MonthRow{}
	for _, r := range rows {
		byDev[r.Device] = append(byDev[r.Device], r)
	}
	var zones []BACSZone
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceMeter || !slices.Contains(energyFluids, d.Fluid) || len(byDev[d.ID]) == 0 {
			continue
		}
		z := BACSZone{ID: d.ID, Site: d.Site, Fluid: d.Fluid}
		for _, r := range byDev[d.ID] {
			if r.Metric == FluidMetric(d.Fluid) {
				z.Months = append(z.Months, MonthKWh{Month: r.Month, KWh: b.kwh(d.Fluid, r.Value),
					Hours: min(r.Hours, r.Month.Hours(b.loc))})
			}
		}
		zones = append(zones, z)
	}
	r, err := AnalyzeBACS(zones, b.options())
	if err != nil {
		return nil, fmt.Errorf("bacs losses: %w", err)
	}
	last := cur.AddMonths(-1)
	return slices.DeleteFunc(r.Findings, func(f BACSFinding) bool { return f.To != last }), nil
}

// LossConditions are the running losses of efficiency as alert conditions of RuleBACSEfficiencyLoss, labelled
// with the zone, its site and the loss's first month (the alert stays one alert while the loss runs on, and
// resolves when a month closes back within the threshold); the evidence carries the months' figures.
func (b *BACS) LossConditions(ctx context.Context, now time.Time) ([]rules.Condition, error) {
	losses, err := b.Losses(ctx, now)
	if err != nil {
		return nil, err
	}
	reg := b.reg()
	thr := b.options().withDefaults().ThresholdPct
	out := make([]rules.Condition, 0, len(losses))
	for _, f := range losses {
		labels := map[string]string{"site": f.Site, "zone": f.Zone, "device": f.Zone, "month": f.From.String(),
			"fluid": string(f.Fluid)}
		if s, ok := reg.Site(f.Site); ok {
			labels["commune"], labels["epci"] = s.Commune, s.EPCI
		}
		ev := rules.Evidence{Metric: FluidMetric(f.Fluid), Device: f.Zone, From: f.From.Start(b.loc),
			To: f.To.Next().Start(b.loc)}
		details := make([]string, 0, len(f.Evidence))
		for _, m := range f.Evidence {
			ev.Value += m.AdjustedKWh
			ev.Baseline += m.ReferenceKWh
			details = append(details, fmt.Sprintf("%s : %s kWh (référence %s : %s kWh, %+.1f %%)", m.Month,
				trimmedDecimal(m.AdjustedKWh, 1), m.Month.AddMonths(-12), trimmedDecimal(m.ReferenceKWh, 1), m.ExcessPct))
		}
		ev.Threshold = ev.Baseline * (1 + thr/100)
		ev.Detail = strings.Join(details, " ; ")
		out = append(out, rules.Condition{Labels: labels, Value: ev.Value, Summary: f.Message, Evidence: ev})
	}
	slices.SortFunc(out, func(x, y rules.Condition) int {
		return cmp.Or(strings.Compare(x.Labels["site"], y.Labels["site"]), strings.Compare(x.Labels["zone"], y.Labels["zone"]))
	})
	return out, nil
}
