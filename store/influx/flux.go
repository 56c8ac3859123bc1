package influx

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// fluxString quotes s as a Flux string literal. Backslash and double quote are escaped, line breaks and tabs
// written as escapes, and "${" as "\${" so that no value starts an interpolation; the escapes are the ones
// both the Go parser of Flux 0.65 (InfluxDB 1.8) and the Rust parser of later versions accept.
func fluxString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// fluxTime writes a Unix-ns instant as a Flux time literal.
func fluxTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// fluxRange is range() over [from, to) in ms. InfluxDB 1.8 treats the stop of range() as inclusive where 2.x
// treats it as exclusive; with a stop 1 ns before to, both return exactly the millisecond points before to.
func fluxRange(from, to int64) string {
	return "range(start: " + fluxTime(from*1e6) + ", stop: " + fluxTime(to*1e6-1) + ")"
}

// fluxIn is the predicate "column r.col is one of vals"; an empty value also matches rows without the column,
// as Query.Matches matches an unregistered device's empty site.
func fluxIn(col string, vals []string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		if v == "" {
			parts[i] = "not exists r." + col + " or r." + col + ` == ""`
			continue
		}
		parts[i] = "r." + col + " == " + fluxString(v)
	}
	return "(" + strings.Join(parts, " or ") + ")"
}

// pushdown maps the aggregates InfluxDB computes the same way as hyperviseur.Aggregate to Flux functions.
// increase is not among them: Flux's increase() is not reset-aware the way the domain defines it.
var pushdown = map[hv.Agg]string{
	hv.AggMean: "mean", hv.AggNone: "mean", hv.AggSum: "sum", hv.AggMin: "min", hv.AggMax: "max",
	hv.AggLast: "last", hv.AggCount: "count",
}

// queryFlux builds the Flux of q; it reports whether the windows are computed by the server.
func queryFlux(bucket string, q hv.Query) (string, bool) {
	var b strings.Builder
	b.WriteString("from(bucket: " + fluxString(bucket) + ")\n")
	b.WriteString("  |> " + fluxRange(q.From, q.To) + "\n")
	b.WriteString("  |> filter(fn: (r) => r._measurement == " + fluxString(string(q.Metric)) +
		` and r._field == "` + fieldValue + `"`)
	fluids := make([]string, len(q.Fluids))
	for i, f := range q.Fluids {
		fluids[i] = string(f)
	}
	for _, f := range []struct {
		col  string
		vals []string
	}{
		{tagDevice, q.Devices}, {tagSite, q.Sites}, {tagCommune, q.Communes}, {tagEPCI, q.EPCIs},
		{tagFluid, fluids},
	} {
		if len(f.vals) > 0 {
			b.WriteString(" and " + fluxIn(f.col, f.vals))
		}
	}
	b.WriteString(")\n")
	fn, server := pushdown[q.Agg]
	server = server && q.Every > 0
	if server {
		// Windows are aligned on the epoch; the first one is clamped to the range start, so the labels are
		// recomputed from the row time (see hv.WindowStart).
		fmt.Fprintf(&b, "  |> aggregateWindow(every: %sms, fn: %s, createEmpty: false, timeSrc: \"_start\")\n",
			strconv.FormatInt(q.Every, 10), fn)
	}
	b.WriteString(`  |> keep(columns: ["_time", "_value", "device", "site", "commune", "epci", "fluid"])`)
	return b.String(), server
}

// lastFlux selects the newest point of each series of the metrics in [since, now] (ms).
func lastFlux(bucket string, metrics []hv.Metric, since, now int64) string {
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = string(m)
	}
	return "from(bucket: " + fluxString(bucket) + ")\n" +
		"  |> " + fluxRange(since, now+1) + "\n" +
		"  |> filter(fn: (r) => " + fluxIn("_measurement", names) + ` and r._field == "` + fieldValue + `")` + "\n" +
		"  |> last()\n" +
		`  |> keep(columns: ["_time", "_value", "_measurement", "device", "site", "commune", "epci", "fluid"])`
}
