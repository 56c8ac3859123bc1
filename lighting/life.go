package lighting

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
)

// Rated lamp lives, in burning hours: what the maintenance plan replaces lamps at.
const (
	RatedHoursLED    = 100_000 // LED luminaire, L80 (flux down to 80 %)
	RatedHoursSodium = 24_000  // high-pressure sodium (SHP) lamp
)

// lifeYear is the year of the lamp-life plan: the burning rate is read over the last lifeYear and remaining
// lives are counted in lifeYears (365 days; the quarter day is far below the plan's precision).
const lifeYear = 365 * 24 * time.Hour

// RatedLifeFunc gives the rated life in hours of a controller's lamps; 0 or less means RatedHoursLED.
//
// The registry knows neither the lamp technology nor the number of luminaires of a cabinet, so neither can
// be inferred from max_power_w (40 LED luminaires and 12 sodium ones draw the same). The default is LED:
// controllers that dim and report levels are what renovations to LED install, and a cabinet still on sodium
// is a known, listed exception the caller passes (SodiumSites). Every row shows the rated life it assumed.
type RatedLifeFunc func(dev *hv.Device, site *hv.Site) float64

// SodiumSites rates the controllers of the given cabinets (site ids) or the given controllers (device ids)
// at RatedHoursSodium, the others at RatedHoursLED.
func SodiumSites(ids ...string) RatedLifeFunc {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return func(dev *hv.Device, site *hv.Site) float64 {
		if set[dev.ID] || (site != nil && set[site.ID]) {
			return RatedHoursSodium
		}
		return RatedHoursLED
	}
}

// LifeRow is one controller's lamps in the replacement plan.
type LifeRow struct {
	Device  string `json:"device"`
	Site    string `json:"site"`
	Commune string `json:"commune"`
	// Hours is the operating_hours index: the lamps' burning hours so far.
	Hours      float64 `json:"hours"`
	RatedHours float64 `json:"rated_hours"`
	UsedPct    float64 `json:"used_pct"` // Hours / RatedHours, in %; above 100 when overdue
	// HoursPerYear is the burning rate: the operating_hours deltas of the last 365 days, or of the history
	// there is scaled to a year (HistoryDays says how much; a history of a few summer weeks underestimates
	// the rate of a whole year).
	HoursPerYear   float64 `json:"hours_per_year"`
	HistoryDays    float64 `json:"history_days"`
	RemainingHours float64 `json:"remaining_hours"` // RatedHours − Hours, at least 0
	// RemainingYears is RemainingHours at HoursPerYear (0 when overdue); null when the lamps did not burn
	// over the history, so no date can be given.
	RemainingYears  *float64 `json:"remaining_years"`
	ReplacementYear *int     `json:"replacement_year"` // the year RemainingYears ends in, Europe/Paris
}

// LifePlan builds the lamp replacement plan at now: one row per lighting controller with an operating_hours
// reading in the last 365 days (the silence rule reports the others), sorted by remaining years (unknown
// last), then by used share, most worn first. rated may be nil (RatedHoursLED for all). It reads daily
// windows of operating_hours (last value) and operating_hours_delta (sum): one query each.
//
// The history starts at the first daily window (UTC days) holding an index reading, or 365 days before now
// if earlier, so HistoryDays is exact for a full year and within a day otherwise.
func LifePlan(ctx context.Context, store hv.Store, reg *registry.Registry, rated RatedLifeFunc, now time.Time) ([]LifeRow, error) {
	type ctrl struct {
		dev  *hv.Device
		site *hv.Site
	}
	var (
		ctrls = map[string]ctrl{}
		ids   []string
	)
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceLightingController {
			continue
		}
		if dev, site, ok := reg.Lookup(d.ID); ok {
			ctrls[d.ID] = ctrl{dev, site}
			ids = append(ids, d.ID)
		}
	}
	rows := []LifeRow{}
	if len(ids) == 0 {
		return rows, nil
	}
	from := now.Add(-lifeYear)
	day := (24 * time.Hour).Milliseconds()
	q := hv.Query{
		Metric: hv.OperatingHours, From: from.UnixMilli(), To: now.UnixMilli() + 1, Devices: ids,
		Every: day, Agg: hv.AggLast,
	}
	index, err := store.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("lamp life: query %s: %w", q.Metric, err)
	}
	q.Metric, q.Agg = hv.OperatingHours.Delta(), hv.AggSum
	deltas, err := store.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("lamp life: query %s: %w", q.Metric, err)
	}
	burned := make(map[string]float64, len(deltas))
	for _, s := range deltas {
		for _, p := range s.Points {
			burned[s.Device] += p.Value
		}
	}
	for _, s := range index {
		c, ok := ctrls[s.Device]
		if !ok || len(s.Points) == 0 {
			continue
		}
		r := LifeRow{Device: s.Device, Site: c.site.ID, Commune: c.site.Commune, Hours: s.Points[len(s.Points)-1].Value}
		if rated != nil {
			r.RatedHours = rated(c.dev, c.site)
		}
		if r.RatedHours <= 0 {
			r.RatedHours = RatedHoursLED
		}
		r.UsedPct = reportRound(r.Hours/r.RatedHours*100, 1)
		r.RemainingHours = max(0, r.RatedHours-r.Hours)

		start := max(from.UnixMilli(), s.Points[0].Time)
		span := time.Duration(now.UnixMilli()-start) * time.Millisecond
		r.HistoryDays = reportRound(span.Hours()/24, 2)
		if b := burned[s.Device]; span >= 24*time.Hour && b > 0 {
			rate := b / span.Hours() * lifeYear.Hours()
			r.HoursPerYear = reportRound(rate, 1)
			years := r.RemainingHours / rate
			// Capped so the duration cannot overflow: past two centuries the year means nothing anyway.
			end := now.Add(time.Duration(min(years, 200) * float64(lifeYear))).In(sun.Paris()).Year()
			years = reportRound(years, 2)
			r.RemainingYears, r.ReplacementYear = &years, &end
		}
		r.Hours = reportRound(r.Hours, 1)
		r.RemainingHours = reportRound(r.RemainingHours, 1)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b LifeRow) int {
		switch {
		case a.RemainingYears == nil && b.RemainingYears != nil:
			return 1
		case a.RemainingYears != nil && b.RemainingYears == nil:
			return -1
		case a.RemainingYears != nil:
			if c := cmp.Compare(*a.RemainingYears, *b.RemainingYears); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(b.UsedPct, a.UsedPct), strings.Compare(a.Device, b.Device))
	})
	return rows, nil
}

// lifeHeader is the CSV header of WriteLifeCSV, one row per controller:
//
//	controleur            the controller (device id)
//	armoire               its cabinet (site id)
//	commune               INSEE code
//	heures_fonctionnement burning hours so far (operating_hours)
//	duree_vie_h           rated life, hours
//	usure_pct             share of the rated life used, %
//	heures_par_an         burning rate, hours a year
//	historique_jours      days of history the rate is read over
//	heures_restantes      rated life left, hours
//	annees_restantes      years left at that rate; empty when unknown
//	annee_remplacement    planned replacement year; empty when unknown
var lifeHeader = []string{
	"controleur", "armoire", "commune", "heures_fonctionnement", "duree_vie_h", "usure_pct", "heures_par_an",
	"historique_jours", "heures_restantes", "annees_restantes", "annee_remplacement",
}

// WriteLifeCSV writes the replacement plan as CSV (comma-separated, decimal point; header in lifeHeader).
func WriteLifeCSV(w io.Writer, rows []LifeRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(lifeHeader); err != nil {
		return fmt.Errorf("write lamp life csv: %w", err)
	}
	for _, r := range rows {
		years, year := "", ""
		if r.RemainingYears != nil {
			years = csvFloat(*r.RemainingYears)
		}
		if r.ReplacementYear != nil {
			year = strconv.Itoa(*r.ReplacementYear)
		}
		if err := cw.Write([]string{
			r.Device, r.Site, r.Commune, csvFloat(r.Hours), csvFloat(r.RatedHours), csvFloat(r.UsedPct),
			csvFloat(r.HoursPerYear), csvFloat(r.HistoryDays), csvFloat(r.RemainingHours), years, year,
		}); err != nil {
			return fmt.Errorf("write lamp life csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write lamp life csv: %w", err)
	}
	return nil
}
