package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// The streamed exports of the command line: the same writer as /api/v1/exports/csv and /json
// (reporting/stream.go), rows on stdout, progress on stderr. The command line has the whole département in
// scope, like the store it opens.

// exportSeriesCmd is `hyperviseur export series`.
func exportSeriesCmd() *cobra.Command {
	var (
		devices, sites, epcis, metrics []string
		from, to, every, agg, format   string
		maxRows                        int64
	)
	cmd := &cobra.Command{
		Use:   "series",
		Short: "Stream the points of one or more series as CSV or NDJSON (the columns of /api/v1/exports/csv?kind=series)",
		Long: `Write the points of --metric for the devices selected by --device, --site and --epci (none: all) over
[--from, --to) to stdout, raw or aggregated (--every, --agg), read a chunk of the range at a time; progress
(rows, %, rate) goes to stderr. With the embedded store the service must be stopped (it holds the store).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := reporting.ParseExportFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			q, ms, err := seriesFlags(metrics, from, to, every, agg)
			if err != nil {
				return err
			}
			_, reg, store, err := openForReport(cmd)
			if err != nil {
				return err
			}
			defer store.Close()
			q.Devices, q.Sites, q.EPCIs = devices, sites, epcis
			for _, e := range epcis {
				if _, ok := reg.Territory().EPCI(e); !ok {
					return fmt.Errorf("--epci: %q is not an EPCI of the territory", e)
				}
			}
			e := reporting.SeriesExport{Query: q, Metrics: ms, Intervals: cliIntervals(reg, q)}
			est := e.Estimate()
			if est > maxRows {
				return fmt.Errorf("about %d rows is more than --max-rows %d: shorten the range, use a larger --every or fewer devices", est, maxRows)
			}
			w := reporting.NewRowWriter(cmd.OutOrStdout(), f, reporting.SeriesColumns, maxRows)
			return runExport(cmd, "series", w, est, func() error { return e.Stream(cmd.Context(), store, w) })
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&devices, "device", nil, "device id (repeat or comma-separate)")
	fl.StringSliceVar(&sites, "site", nil, "site id: its devices (repeat or comma-separate)")
	fl.StringSliceVar(&epcis, "epci", nil, "EPCI SIREN code: its devices (repeat or comma-separate)")
	fl.StringSliceVar(&metrics, "metric", nil, "canonical metric, e.g. power_w or energy_kwh_delta (required; repeat or comma-separate)")
	fl.StringVar(&from, "from", "", "start, inclusive: RFC 3339 or Unix milliseconds (default 24 h before --to)")
	fl.StringVar(&to, "to", "", "end, exclusive: RFC 3339 or Unix milliseconds (default now)")
	fl.StringVar(&every, "every", "", "window, e.g. 15m or 1h (default raw points)")
	fl.StringVar(&agg, "agg", "", "mean|sum|min|max|last|count|increase (needs --every; default mean)")
	fl.StringVar(&format, "format", "csv", "csv|json (json: NDJSON, one object per line, then an end line)")
	fl.Int64Var(&maxRows, "max-rows", reporting.MaxExportRows, "refuse an export of more rows")
	return cmd
}

// seriesFlags builds the query (without devices) and the metrics from the flags, checked as the store
// checks them.
func seriesFlags(metrics []string, from, to, every, agg string) (hv.Query, []hv.Metric, error) {
	var q hv.Query
	if len(metrics) == 0 {
		return q, nil, fmt.Errorf("--metric: required, e.g. --metric energy_kwh_delta")
	}
	end, err := cliTime(to, time.Now())
	if err != nil {
		return q, nil, fmt.Errorf("--to: %w", err)
	}
	start, err := cliTime(from, end.Add(-24*time.Hour))
	if err != nil {
		return q, nil, fmt.Errorf("--from: %w", err)
	}
	q.From, q.To = start.UnixMilli(), end.UnixMilli()
	if every != "" {
		d, err := time.ParseDuration(every)
		if err != nil {
			return q, nil, fmt.Errorf("--every: %q is not a duration like 15m or 1h", every)
		}
		q.Every = d.Milliseconds()
	}
	if q.Agg, err = hv.ParseAgg(agg); err != nil {
		return q, nil, fmt.Errorf("--agg: %w", err)
	}
	var ms []hv.Metric
	for _, m := range metrics {
		q.Metric = hv.Metric(m)
		if err := q.Validate(); err != nil {
			return q, nil, err
		}
		ms = append(ms, q.Metric)
	}
	q.Metric = ""
	return q, ms, nil
}

// cliTime reads RFC 3339 or Unix milliseconds; empty gives def.
func cliTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix milliseconds", s)
	}
	return t, nil
}

// cliIntervals is the reading interval of each registered device q selects, and an unknown one for each
// named device the registry does not know.
func cliIntervals(reg *registry.Registry, q hv.Query) []time.Duration {
	var out []time.Duration
	for _, d := range reg.Devices() {
		_, st, _ := reg.Device(d.ID)
		if (len(q.Devices) == 0 || slices.Contains(q.Devices, d.ID)) && (len(q.Sites) == 0 || slices.Contains(q.Sites, d.Site)) &&
			(len(q.EPCIs) == 0 || slices.Contains(q.EPCIs, st.EPCI)) {
			out = append(out, d.Interval)
		}
	}
	for _, id := range q.Devices {
		if _, _, ok := reg.Device(id); !ok {
			out = append(out, 0)
		}
	}
	return out
}

// exportConsumptionCmd is `hyperviseur export consumption`.
func exportConsumptionCmd() *cobra.Command {
	var (
		scope, usage, from, to, every, per, format string
		fluids                                     []string
		climate, yoy                               bool
	)
	cmd := &cobra.Command{
		Use:   "consumption",
		Short: "Stream the consumption of a scope by hour, day, month or year as CSV or NDJSON (the columns of /api/v1/exports/csv?kind=consumption)",
		Long: `Build the daily rollups from the configured store since --from (a year earlier with --yoy), then write
the consumption of --scope per --every over [--from, --to] (dates, both included, Paris days) to stdout;
progress (rows, %, rate) goes to stderr. With the embedded store the service must be stopped.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := reporting.ParseExportFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			req := reporting.Request{Scope: scope, Usage: usage, Climate: climate, YearOverYear: yoy}
			for _, x := range fluids {
				req.Fluids = append(req.Fluids, hv.Fluid(x))
			}
			if req.From, err = time.Parse(time.DateOnly, from); err != nil {
				return fmt.Errorf("--from: want YYYY-MM-DD")
			}
			if req.To, err = time.Parse(time.DateOnly, to); err != nil {
				return fmt.Errorf("--to: want YYYY-MM-DD")
			}
			if req.Every, err = reporting.ParseEvery(every); err != nil {
				return fmt.Errorf("--every: %w", err)
			}
			if req.Per, err = reporting.ParsePer(per); err != nil {
				return fmt.Errorf("--per: %w", err)
			}
			cfg, reg, store, err := openForReport(cmd)
			if err != nil {
				return err
			}
			defer store.Close()
			rc := cfg.Reporting.Config
			rc.Since = req.From
			if yoy {
				rc.Since = req.From.AddDate(-1, 0, 0)
			}
			rollups := reporting.NewRollups(store, rc, nil)
			an := reporting.NewAnalytics(store, rollups, func() *registry.Registry { return reg }, rc)
			est, err := an.ConsumptionEstimate(req)
			if err != nil {
				return err
			}
			if err := rollups.Build(cmd.Context()); err != nil {
				return err
			}
			w := reporting.NewRowWriter(cmd.OutOrStdout(), f, reporting.ConsumptionColumns(req), 0)
			return runExport(cmd, "consumption", w, est, func() error { return an.StreamConsumption(cmd.Context(), req, w) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&scope, "scope", "departement", "site:<id>, commune:<INSEE>, epci:<SIREN> or departement")
	fl.StringSliceVar(&fluids, "fluid", nil, "electricity|gas|heat|water (default all; repeat or comma-separate)")
	fl.StringVar(&usage, "usage", "", "sites of this usage only (mairie, école…)")
	fl.StringVar(&from, "from", "", "first day, YYYY-MM-DD (required)")
	fl.StringVar(&to, "to", "", "last day, included, YYYY-MM-DD (required)")
	fl.StringVar(&every, "every", "day", "hour|day|month|year")
	fl.StringVar(&per, "per", "", "m2|inhabitant (default absolute values)")
	fl.BoolVar(&climate, "climate", false, "add the climate correction of heating fluids (--every year)")
	fl.BoolVar(&yoy, "yoy", false, "add each period one year earlier")
	fl.StringVar(&format, "format", "csv", "csv|json (json: NDJSON, one object per line, then an end line)")
	return cmd
}

// runExport runs stream with progress on stderr and ends the export.
func runExport(cmd *cobra.Command, kind string, w *reporting.RowWriter, estimate int64, stream func() error) error {
	p := newExportProgress(cmd.ErrOrStderr(), kind, estimate, time.Now)
	w.Progress = p.update
	err := stream()
	if cerr := w.Close(err); err == nil {
		err = cerr
	}
	p.done(w.Rows(), err)
	return err
}

// exportProgress prints the rows written, the share of the estimate and the rate, at most twice a second, on one
// line rewritten in place.
type exportProgress struct {
	out      io.Writer
	kind     string
	estimate int64
	now      func() time.Time
	began    time.Time
	last     time.Time
}

func newExportProgress(out io.Writer, kind string, estimate int64, now func() time.Time) *exportProgress {
	t := now()
	return &exportProgress{out: out, kind: kind, estimate: estimate, now: now, began: t}
}

func (p *exportProgress) line(rows int64) string {
	el := p.now().Sub(p.began)
	rate := 0.0
	if el > 0 {
		rate = float64(rows) / el.Seconds()
	}
	pct := ""
	if p.estimate > 0 {
		pct = fmt.Sprintf(" (%d%% of ~%d)", min(100, rows*100/p.estimate), p.estimate)
	}
	return fmt.Sprintf("export %s: %d rows%s, %.0f rows/s, %s", p.kind, rows, pct, rate, el.Round(time.Millisecond))
}

func (p *exportProgress) update(rows int64) {
	if t := p.now(); t.Sub(p.last) >= 500*time.Millisecond {
		p.last = t
		fmt.Fprintf(p.out, "\r%s", p.line(rows))
	}
}

func (p *exportProgress) done(rows int64, err error) {
	if err != nil {
		fmt.Fprintf(p.out, "\r%s: stopped: %v\n", p.line(rows), err)
		return
	}
	fmt.Fprintf(p.out, "\r%s\n", p.line(rows))
}
