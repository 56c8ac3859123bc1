package reporting

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// bacsHours spreads total kWh evenly over the first n hours of month m in Europe/Paris (n 0: every hour).
func bacsHours(m YearMonth, total float64, n int) []HourlyKWh {
	loc := bacsLocation()
	if n == 0 {
		n = m.Hours(loc)
	}
	start := time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
	out := make([]HourlyKWh, n)
	for i := range out {
		out[i] = HourlyKWh{Time: start.Add(time.Duration(i) * time.Hour), KWh: total / float64(n)}
	}
	return out
}

// bacsMonths spreads each total over its whole month, from first on.
func bacsMonths(first YearMonth, totals ...float64) []HourlyKWh {
	var out []HourlyKWh
	for _, v := range totals {
		out = append(out, bacsHours(first, v, 0)...)
		first = first.Next()
	}
	return out
}

// bacsFlat is a configured reference of kWh every month.
func bacsFlat(kwh float64) map[time.Month]float64 {
	out := map[time.Month]float64{}
	for m := time.January; m <= time.December; m++ {
		out[m] = kwh
	}
	return out
}

func TestBACSMonthlyKWh(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	got, err := MonthlyKWh([]HourlyKWh{
		{at("2024-01-31T23:30:00Z"), 4}, // 00:30 on 1 February in Paris
		{at("2024-01-31T22:10:00Z"), 1}, // 23:10 on 31 January
		{at("2024-01-31T22:50:00Z"), 2}, // the same hour
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []MonthKWh{{YearMonth{2024, time.January}, 3, 1}, {YearMonth{2024, time.February}, 4, 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	utc, err := MonthlyKWh([]HourlyKWh{{at("2024-01-31T23:30:00Z"), 4}}, time.UTC)
	if err != nil || utc[0].Month != (YearMonth{2024, time.January}) {
		t.Fatalf("in UTC: %+v %v, want January", utc, err)
	}
	if _, err := MonthlyKWh([]HourlyKWh{{at("2024-01-31T23:30:00Z"), -1}}, nil); !errors.Is(err, hv.ErrInvalid) {
		t.Fatalf("negative: error %v, want ErrInvalid", err)
	}

	for _, c := range []struct {
		m    YearMonth
		want int
	}{
		{YearMonth{2024, time.January}, 744}, {YearMonth{2024, time.February}, 696},
		{YearMonth{2023, time.February}, 672}, {YearMonth{2024, time.March}, 743},
		{YearMonth{2024, time.October}, 745}, {YearMonth{2024, time.April}, 720},
	} {
		if got := c.m.Hours(bacsLocation()); got != c.want {
			t.Errorf("%s has %d hours, want %d", c.m, got, c.want)
		}
	}
	if got := (YearMonth{2024, time.December}).Next(); got != (YearMonth{2025, time.January}) {
		t.Errorf("next of 2024-12 is %s", got)
	}
}

// TestBACSLossDetection: reference 1 000 kWh a month, threshold 10 %, 2 months.
func TestBACSLossDetection(t *testing.T) {
	jan := YearMonth{2025, time.January}
	feb, mar, apr := jan.Next(), jan.Next().Next(), jan.Next().Next().Next()
	type finding struct {
		from, to YearMonth
		excess   float64
		max      float64
	}
	for _, c := range []struct {
		name string
		zone BACSZone
		want []finding
	}{
		{
			name: "two consecutive months over +10 % fire",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1150, 1120, 1000)},
			want: []finding{{feb, mar, 270, 15}},
		},
		{
			name: "one month over does not fire",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1150, 1050, 1000)},
		},
		{
			name: "exactly +10 % is not over",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1100, 1100, 1000)},
		},
		{
			name: "months apart do not make a run",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1150, 1000, 1150)},
		},
		{
			name: "a month without data breaks the run",
			zone: BACSZone{Hourly: append(bacsMonths(jan, 1200), bacsMonths(mar, 1200)...)},
		},
		{
			name: "an incomplete month breaks the run",
			zone: BACSZone{Hourly: append(bacsMonths(jan, 1000, 1150), bacsHours(mar, 1150, 300)...)},
		},
		{
			name: "a longer run is one finding",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1150, 1120, 1200)},
			want: []finding{{feb, apr, 470, 20}},
		},
		{
			name: "two runs, two findings",
			zone: BACSZone{Hourly: bacsMonths(jan, 1200, 1200, 1000, 1300, 1110)},
			want: []finding{{jan, feb, 400, 20}, {apr, apr.Next(), 410, 30}},
		},
		{
			// Adjusted at 2 kWh/DJU: February 1 150 + 2 × (400 − 480) = 990, March 1 120 + 2 × (350 − 420) = 980.
			name: "a cold spell is not a loss once climate adjusted",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1150, 1120, 1000), KWhPerDJU: 2,
				DJU:          map[YearMonth]float64{feb: 480, mar: 420},
				ReferenceDJU: map[time.Month]float64{time.February: 400, time.March: 350}},
		},
		{
			// February 1 050 + 2 × (400 − 320) = 1 210, March 1 000 + 2 × (350 − 280) = 1 140.
			name: "a mild winter reveals a loss once climate adjusted",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1050, 1000, 1000), KWhPerDJU: 2,
				DJU:          map[YearMonth]float64{feb: 320, mar: 280},
				ReferenceDJU: map[time.Month]float64{time.February: 400, time.March: 350}},
			want: []finding{{feb, mar, 350, 21}},
		},
		{
			name: "no adjustment without the reference's degree days",
			zone: BACSZone{Hourly: bacsMonths(jan, 1000, 1150, 1120, 1000), KWhPerDJU: 2,
				DJU: map[YearMonth]float64{feb: 480, mar: 420}},
			want: []finding{{feb, mar, 270, 15}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			z := c.zone
			z.ID, z.Site, z.Fluid = "chaufferie", "college-hirson", hv.Gas
			if z.Reference == nil {
				z.Reference = bacsFlat(1000)
			}
			r, err := AnalyzeBACS([]BACSZone{z}, BACSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Findings) != len(c.want) {
				t.Fatalf("findings %+v, want %d", r.Findings, len(c.want))
			}
			lossMonths := 0
			for i, w := range c.want {
				f := r.Findings[i]
				if f.From != w.from || f.To != w.to || f.Zone != "chaufferie" || f.Site != "college-hirson" {
					t.Errorf("finding %d: %s → %s in %s/%s, want %s → %s", i, f.From, f.To, f.Site, f.Zone, w.from, w.to)
				}
				complianceNear(t, "excess kWh", f.ExcessKWh, w.excess)
				complianceNear(t, "max excess %", f.MaxExcessPct, w.max)
				for _, m := range f.Evidence {
					if m.Status != MonthOver || !m.Loss {
						t.Errorf("evidence %+v", m)
					}
				}
				lossMonths += len(f.Evidence)
				if !strings.Contains(f.Message, "Perte d'efficacité") || !strings.Contains(f.Message, f.From.String()) {
					t.Errorf("message %q", f.Message)
				}
			}
			for _, m := range r.Months {
				if m.Loss {
					lossMonths--
				}
			}
			if lossMonths != 0 {
				t.Errorf("months marked as loss do not match the evidence")
			}
		})
	}
}

func TestBACSClimateAdjustedMonths(t *testing.T) {
	jan := YearMonth{2025, time.January}
	z := BACSZone{ID: "z", Fluid: hv.Heat, Hourly: bacsMonths(jan, 1150, 100), KWhPerDJU: 2, Reference: bacsFlat(1000),
		DJU:          map[YearMonth]float64{jan: 480, jan.Next(): 0},
		ReferenceDJU: map[time.Month]float64{time.January: 400, time.February: 30}}
	r, err := AnalyzeBACS([]BACSZone{z}, BACSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Months[0]
	if !m.Adjusted || !m.HasDJU || !m.HasReferenceDJU || m.Status != MonthOK {
		t.Fatalf("january %+v", m)
	}
	complianceNear(t, "adjusted", m.AdjustedKWh, 990)
	complianceNear(t, "excess %", m.ExcessPct, -1)
	// A summer month's 0 DJU is a value, not a missing one: 100 + 2 × 30 = 160.
	complianceNear(t, "february adjusted", r.Months[1].AdjustedKWh, 160)
}

// TestBACSReferenceYear: without a configured reference, a zone compares with its own months of the reference
// year; those are marked reference, and an incomplete reference month gives no reference.
func TestBACSReferenceYear(t *testing.T) {
	ref := YearMonth{2023, time.January}
	jan := YearMonth{2024, time.January}
	hourly := bacsMonths(ref, 1000, 800, 900)
	hourly = append(hourly, bacsHours(YearMonth{2023, time.April}, 900, 100)...) // 100 of 720 hours
	hourly = append(hourly, bacsMonths(jan, 1050, 900, 1000, 1000)...)
	z := BACSZone{ID: "tgbt", Site: "mairie-laon", Fluid: hv.Electricity, Hourly: hourly}
	r, err := AnalyzeBACS([]BACSZone{z}, BACSOptions{ReferenceYear: 2023})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		month  string
		status MonthStatus
		excess float64
	}{
		{"2023-01", MonthReference, 0}, {"2023-02", MonthReference, 0}, {"2023-03", MonthReference, 0},
		{"2023-04", MonthReference, 0},
		{"2024-01", MonthOK, 5}, {"2024-02", MonthOver, 12.5}, {"2024-03", MonthOver, 100.0 / 9},
		{"2024-04", MonthNoReference, 0},
	}
	if len(r.Months) != len(want) {
		t.Fatalf("months %+v", r.Months)
	}
	for i, w := range want {
		m := r.Months[i]
		if m.Month.String() != w.month || m.Status != w.status {
			t.Errorf("%d: %s %s, want %s %s", i, m.Month, m.Status, w.month, w.status)
		}
		complianceNear(t, m.Month.String()+" excess", m.ExcessPct, w.excess)
	}
	if len(r.Findings) != 1 || r.Findings[0].From.String() != "2024-02" || r.Findings[0].To.String() != "2024-03" {
		t.Fatalf("findings %+v", r.Findings)
	}
	complianceNear(t, "excess kWh", r.Findings[0].ExcessKWh, 200)
}

// TestBACSKeptMonths: months kept from earlier runs (beyond the raw retention) are compared like the others.
func TestBACSKeptMonths(t *testing.T) {
	ref := YearMonth{2020, time.February}
	z := BACSZone{ID: "z", Fluid: hv.Gas,
		Months: []MonthKWh{{ref, 1000, ref.Hours(bacsLocation())}},
		Hourly: bacsMonths(YearMonth{2025, time.February}, 1200)}
	r, err := AnalyzeBACS([]BACSZone{z}, BACSOptions{ReferenceYear: 2020, Months: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Months) != 2 || r.Months[1].Status != MonthOver || len(r.Findings) != 1 {
		t.Fatalf("report %+v", r)
	}
	z.Months = append(z.Months, MonthKWh{YearMonth{2025, time.February}, 1, 1})
	if _, err := AnalyzeBACS([]BACSZone{z}, BACSOptions{}); !errors.Is(err, hv.ErrInvalid) ||
		!strings.Contains(err.Error(), "2025-02 given twice") {
		t.Fatalf("error %v, want a month given twice", err)
	}
}

func TestBACSInvalid(t *testing.T) {
	ok := BACSZone{ID: "z", Fluid: hv.Electricity}
	for _, c := range []struct {
		name  string
		zones []BACSZone
		opts  BACSOptions
		want  string
	}{
		{"negative threshold", []BACSZone{ok}, BACSOptions{ThresholdPct: -1}, "threshold_pct"},
		{"negative months", []BACSZone{ok}, BACSOptions{Months: -2}, "months"},
		{"coverage above 1", []BACSZone{ok}, BACSOptions{MinCoverage: 1.5}, "min_coverage"},
		{"zone twice", []BACSZone{ok, ok}, BACSOptions{}, `zone "z"`},
		{"zone without id", []BACSZone{{Fluid: hv.Heat}}, BACSOptions{}, "without id"},
		{"water", []BACSZone{{ID: "w", Fluid: hv.Water}}, BACSOptions{}, "not an energy"},
		{"negative reference", []BACSZone{{ID: "r", Fluid: hv.Heat, Reference: map[time.Month]float64{time.May: -3}}},
			BACSOptions{}, "reference of May"},
		{"kept month too long", []BACSZone{{ID: "k", Fluid: hv.Heat, Months: []MonthKWh{{YearMonth{2024, time.April}, 1, 721}}}},
			BACSOptions{}, "2024-04"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := AnalyzeBACS(c.zones, c.opts)
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrInvalid with %q", err, c.want)
			}
		})
	}
}

// TestBACSRetention: from any instant, the first hour of the oldest of the BACSMonthsKept complete months is
// within BACSRetention.
func TestBACSRetention(t *testing.T) {
	loc := bacsLocation()
	for y := 2024; y <= 2040; y++ {
		for m := time.January; m <= time.December; m++ {
			now := time.Date(y, m+1, 1, 0, 0, 0, 0, loc).Add(-time.Second) // the last second of the month
			oldest := time.Date(y, m-BACSMonthsKept, 1, 0, 0, 0, 0, loc)
			if age := now.Sub(oldest); age > BACSRetention {
				t.Fatalf("at %s the oldest kept month starts %s ago, beyond %s", now, age, BACSRetention)
			}
		}
	}
}

// TestWriteBACS: a zone compared with a configured, climate-adjusted reference (February and March make a
// finding, April is incomplete), and one with its own reference year (February 2024 is missing).
func TestWriteBACS(t *testing.T) {
	jan := YearMonth{2025, time.January}
	zones := []BACSZone{
		{ID: "college-hirson/chaufferie", Site: "college-hirson", Fluid: hv.Gas, KWhPerDJU: 2, Reference: bacsFlat(1000),
			Hourly:       append(bacsMonths(jan, 1050, 1000, 1300), bacsHours(YearMonth{2025, time.April}, 500, 600)...),
			DJU:          map[YearMonth]float64{jan: 380.5, jan.Next(): 280, jan.Next().Next(): 250},
			ReferenceDJU: map[time.Month]float64{time.January: 400, time.February: 350, time.March: 300}},
		{ID: "mairie-laon/tgbt", Site: "mairie-laon", Fluid: hv.Electricity,
			Hourly: append(bacsMonths(YearMonth{2024, time.January}, 500), bacsMonths(jan, 480.5, 700)...)},
	}
	r, err := AnalyzeBACS(zones, BACSOptions{ReferenceYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Zone != "college-hirson/chaufferie" {
		t.Fatalf("findings %+v", r.Findings)
	}
	var buf bytes.Buffer
	if err := WriteBACS(&buf, r); err != nil {
		t.Fatal(err)
	}
	checkComplianceGolden(t, "bacs.csv", buf.Bytes())
	recs := readSpreadsheetCSV(t, buf.Bytes())
	if len(recs) != 1+len(r.Months) || len(recs[0]) != len(bacsHeader) {
		t.Fatalf("%d records, header %q", len(recs), recs[0])
	}
}

// TestBACSYearMonthText: months read and write as YYYY-MM, also as map keys.
func TestBACSYearMonthText(t *testing.T) {
	in := map[YearMonth]float64{{2025, time.February}: 280.5}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"2025-02":280.5}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var out map[YearMonth]float64
	if err := json.Unmarshal(b, &out); err != nil || out[YearMonth{2025, time.February}] != 280.5 {
		t.Fatalf("unmarshal: %v %v", out, err)
	}
	var m YearMonth
	if err := m.UnmarshalText([]byte("2025-13")); !errors.Is(err, hv.ErrInvalid) {
		t.Fatalf("2025-13: error %v, want ErrInvalid", err)
	}
}
