package lighting_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
)

const lifeRegistry = `
sites:
  - {id: armoire-led, name: "Armoire LED", kind: lighting_cabinet, commune: "02408"}
  - {id: armoire-shp, name: "Armoire sodium", kind: lighting_cabinet, commune: "02691"}
  - {id: armoire-eteinte, name: "Armoire éteinte", kind: lighting_cabinet, commune: "02722"}
  - {id: armoire-muette, name: "Armoire muette", kind: lighting_cabinet, commune: "02722"}
devices:
  - {id: ctrl-led, site: armoire-led, kind: lighting_controller, max_power_w: 1100}
  - {id: ctrl-shp, site: armoire-shp, kind: lighting_controller, max_power_w: 1100}
  - {id: ctrl-eteinte, site: armoire-eteinte, kind: lighting_controller, max_power_w: 1100}
  - {id: ctrl-muette, site: armoire-muette, kind: lighting_controller, max_power_w: 1100}
`

func TestLifePlan(t *testing.T) {
	reg := loadRegistry(t, lifeRegistry)
	store := openStore(t)
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	var rs []hv.Reading
	// daily writes a controller's operating_hours index from days before now until now, rising from first to
	// last evenly, with the deltas ingest derives.
	daily := func(id string, days int, first, last float64) {
		_, site, _ := reg.Device(id)
		prev := first
		for i := 0; i <= days; i++ {
			at := now.Add(time.Duration(i-days) * day).UnixMilli()
			v := first + (last-first)*float64(i)/float64(days)
			r := hv.Reading{Device: id, Metric: hv.OperatingHours, Value: v, Time: at, Site: site.ID,
				Commune: site.Commune, EPCI: site.EPCI, Fluid: hv.Electricity}
			rs = append(rs, r)
			if i > 0 {
				r.Metric, r.Value = hv.OperatingHours.Delta(), v-prev
				rs = append(rs, r)
			}
			prev = v
		}
	}
	// LED: a full year, 4 000 h burnt, 96 000 of 100 000 h used: 4 000 h left, one year.
	daily("ctrl-led", 365, 92_000, 96_000)
	// Sodium: 73 days (a fifth of a year) of history, 600 h burnt: 3 000 h a year; 23 000 of 24 000 h used:
	// 1 000 h left, a third of a year.
	daily("ctrl-shp", 73, 22_400, 23_000)
	// Off for a month: no rate, no date.
	daily("ctrl-eteinte", 30, 5_000, 5_000)
	// ctrl-muette never reported: not in the plan.
	write(t, store, rs)

	rows, err := lighting.LifePlan(context.Background(), store, reg, lighting.SodiumSites("armoire-shp"), now)
	if err != nil {
		t.Fatal(err)
	}
	ptr := func(v float64) *float64 { return &v }
	year := func(y int) *int { return &y }
	want := []lighting.LifeRow{
		{Device: "ctrl-shp", Site: "armoire-shp", Commune: "02691", Hours: 23_000, RatedHours: 24_000, UsedPct: 95.8,
			HoursPerYear: 3_000, HistoryDays: 73, RemainingHours: 1_000, RemainingYears: ptr(0.33), ReplacementYear: year(2027)},
		{Device: "ctrl-led", Site: "armoire-led", Commune: "02408", Hours: 96_000, RatedHours: 100_000, UsedPct: 96,
			HoursPerYear: 4_000, HistoryDays: 365, RemainingHours: 4_000, RemainingYears: ptr(1), ReplacementYear: year(2028)},
		{Device: "ctrl-eteinte", Site: "armoire-eteinte", Commune: "02722", Hours: 5_000, RatedHours: 100_000, UsedPct: 5,
			HistoryDays: 30, RemainingHours: 95_000},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows: got %d %+v, want %d", len(rows), rows, len(want))
	}
	for i, w := range want {
		g := rows[i]
		if g.Device != w.Device || g.Site != w.Site || g.Commune != w.Commune || g.Hours != w.Hours ||
			g.RatedHours != w.RatedHours || g.UsedPct != w.UsedPct || g.HoursPerYear != w.HoursPerYear ||
			g.HistoryDays != w.HistoryDays || g.RemainingHours != w.RemainingHours ||
			!equalPtr(g.RemainingYears, w.RemainingYears) || !equalPtr(g.ReplacementYear, w.ReplacementYear) {
			t.Errorf("row %d:\n got %s\nwant %s", i, show(g), show(w))
		}
	}

	var buf bytes.Buffer
	if err := lighting.WriteLifeCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"controleur", "armoire", "commune", "heures_fonctionnement", "duree_vie_h", "usure_pct",
		"heures_par_an", "historique_jours", "heures_restantes", "annees_restantes", "annee_remplacement"}
	if len(recs) != 4 || !slices.Equal(recs[0], wantHeader) {
		t.Fatalf("csv: got %q", recs)
	}
	if w := []string{"ctrl-shp", "armoire-shp", "02691", "23000", "24000", "95.8", "3000", "73", "1000", "0.33", "2027"}; !slices.Equal(recs[1], w) {
		t.Errorf("csv row:\n got %q\nwant %q", recs[1], w)
	}
	if w := []string{"ctrl-eteinte", "armoire-eteinte", "02722", "5000", "100000", "5", "0", "30", "95000", "", ""}; !slices.Equal(recs[3], w) {
		t.Errorf("csv row without rate:\n got %q\nwant %q", recs[3], w)
	}
}

func TestLifePlanOverdue(t *testing.T) {
	reg := loadRegistry(t, lifeRegistry)
	store := openStore(t)
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	_, site, _ := reg.Device("ctrl-shp")
	base := hv.Reading{Device: "ctrl-shp", Site: site.ID, Commune: site.Commune, EPCI: site.EPCI}
	r1, r2, d := base, base, base
	r1.Metric, r1.Time, r1.Value = hv.OperatingHours, now.Add(-48*time.Hour).UnixMilli(), 25_000
	r2.Metric, r2.Time, r2.Value = hv.OperatingHours, now.UnixMilli(), 25_020
	d.Metric, d.Time, d.Value = hv.OperatingHours.Delta(), r2.Time, 20
	write(t, store, []hv.Reading{r1, r2, d})
	rows, err := lighting.LifePlan(context.Background(), store, reg, lighting.SodiumSites("ctrl-shp"), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("rows: got %+v", rows)
	}
	r := rows[0]
	if r.RemainingHours != 0 || r.RemainingYears == nil || *r.RemainingYears != 0 || r.ReplacementYear == nil ||
		*r.ReplacementYear != 2027 || r.UsedPct != 104.3 || r.HoursPerYear != 3650 {
		t.Errorf("overdue: got %s", show(r))
	}
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// show prints a row with its optional fields dereferenced.
func show(r lighting.LifeRow) string {
	years, year := "nil", "nil"
	if r.RemainingYears != nil {
		years = fmt.Sprint(*r.RemainingYears)
	}
	if r.ReplacementYear != nil {
		year = fmt.Sprint(*r.ReplacementYear)
	}
	r.RemainingYears, r.ReplacementYear = nil, nil
	return fmt.Sprintf("%+v years=%s year=%s", r, years, year)
}
