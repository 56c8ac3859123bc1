package lighting

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
)

// Reports on what the lighting did, night by night. A night is named by its evening's local date D and spans
// 12:00 D → 12:00 D+1 Europe/Paris (23 or 25 h on the nights clocks change), as Plan.Night resolves it. A
// report covers the nights from the evening of from to the evening of to, both included; both are read as
// local dates in Europe/Paris.

// MaxReportNights bounds the nights of one report: a year and a leap day.
const MaxReportNights = 366

// Nights of one store query: the reports read the store range by range so that a year of the whole fleet
// never sits in memory at once (savings: 1 740 controllers × 24 hourly sums × 31 nights ≈ 1.3 M points;
// compliance reads raw 5-minute readings, hence a week).
const (
	savingsChunkNights    = 31
	complianceChunkNights = 7
)

// offPowerShare: a controller that reports no level is off when it draws less than this share of its nominal
// power (drivers and ballasts draw a little when the lamps are off).
const offPowerShare = 0.05

// defaultReportInterval is how long a reading holds when the registry gives no interval: the fleet's
// controllers report every 5 minutes.
const defaultReportInterval = 5 * time.Minute

// controllerNominalW is a controller's nominal lamp power at full level: the registry's max_power_w is the
// nominal × 1.1 (as rules/kind_lighting.go reads it), 0 when unknown.
func controllerNominalW(d *hv.Device) float64 { return d.MaxPowerW / 1.1 }

// reportNight is one night of a report.
type reportNight struct {
	date        time.Time // the evening's local date, 00:00 Europe/Paris
	from, until time.Time // 12:00 on date → 12:00 the next day
}

// day returns the night's date as YYYY-MM-DD.
func (n reportNight) day() string { return n.date.Format(time.DateOnly) }

// at is the instant of a local clock time (minutes after 00:00 on the night's date, beyond 24 h for the next
// morning). time.Date normalises the overflow before applying the zone, so DST is handled.
func (n reportNight) at(minutes int) time.Time {
	y, m, d := n.date.Date()
	return time.Date(y, m, d, 0, minutes, 0, 0, n.date.Location())
}

// reportNights lists the nights from the evening of from to the evening of to, both included.
func reportNights(from, to time.Time) ([]reportNight, error) {
	loc := sun.Paris()
	fy, fm, fd := from.In(loc).Date()
	ty, tm, td := to.In(loc).Date()
	last := time.Date(ty, tm, td, 0, 0, 0, 0, loc)
	if last.Before(time.Date(fy, fm, fd, 0, 0, 0, 0, loc)) {
		return nil, fmt.Errorf("nights: %w: to %s is before from %s", hv.ErrInvalid, last.Format(time.DateOnly),
			time.Date(fy, fm, fd, 0, 0, 0, 0, loc).Format(time.DateOnly))
	}
	var out []reportNight
	for i := 0; ; i++ {
		day := time.Date(fy, fm, fd+i, 0, 0, 0, 0, loc)
		if day.After(last) {
			return out, nil
		}
		if i == MaxReportNights {
			return nil, fmt.Errorf("nights: %w: more than %d nights", hv.ErrInvalid, MaxReportNights)
		}
		out = append(out, reportNight{
			date:  day,
			from:  time.Date(fy, fm, fd+i, 12, 0, 0, 0, loc),
			until: time.Date(fy, fm, fd+i+1, 12, 0, 0, 0, loc),
		})
	}
}

// nightIndex returns the index of the night holding t (Unix ms), -1 when none does.
func nightIndex(nights []reportNight, t int64) int {
	i := sort.Search(len(nights), func(i int) bool { return nights[i].until.UnixMilli() > t })
	if i < len(nights) && t >= nights[i].from.UnixMilli() {
		return i
	}
	return -1
}

// eachChunk calls f with consecutive runs of at most size nights.
func eachChunk(nights []reportNight, size int, f func(first int, chunk []reportNight) error) error {
	for i := 0; i < len(nights); i += size {
		if err := f(i, nights[i:min(i+size, len(nights))]); err != nil {
			return err
		}
	}
	return nil
}

// reportLocal renders an instant in Europe/Paris for JSON and CSV: operators read local times.
func reportLocal(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.In(sun.Paris())
}

func reportRound(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

func csvFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// ---------------------------------------------------------------------------------------------------------
// Savings

// GroupFunc names the lighting group a controller belongs to, "" to leave it out of the report. Savings takes
// a function rather than the Plan so that a report can group controllers otherwise (by commune, by EPCI);
// PlanGroups gives the plan's groups.
type GroupFunc func(dev *hv.Device, site *hv.Site) string

// PlanGroups is the GroupFunc of a validated plan: the name of the group GroupOf finds.
func PlanGroups(p *Plan) GroupFunc {
	return func(dev *hv.Device, site *hv.Site) string {
		if g := p.GroupOf(dev, site); g != nil {
			return g.Name
		}
		return ""
	}
}

// NightSavings is the energy one night of dimming and switch-off saved, by group and in total.
type NightSavings struct {
	Night  string         `json:"night"`  // the evening's local date, YYYY-MM-DD
	From   time.Time      `json:"from"`   // 12:00 on Night, Europe/Paris
	Until  time.Time      `json:"until"`  // 12:00 the next day
	Hours  float64        `json:"hours"`  // Until − From: 24, or 23 / 25 when the clocks change
	Groups []GroupSavings `json:"groups"` // sorted by group name
	Total  GroupSavings   `json:"total"`  // over the groups; Group is ""
}

// GroupSavings compares what a group's controllers used over a night with the reference: each counted
// controller at its nominal power from sunset to the next sunrise at its cabinet (no dimming, no
// switch-off).
//
// A controller is counted when its energy deltas frame its night: one stamped in the hour of its sunset or
// earlier in the night's window, one in the hour of its sunrise or later. Missing (no delta that night) and
// Incomplete (deltas that stop or start in the dark, so part of the night's energy lands on another night)
// controllers are left out of both the used and the reference energy, so a silent controller neither
// inflates nor dilutes the savings. A gap inside the night is harmless: the delta after it carries the
// whole gap's consumption (energy_kwh is an index). Controllers without max_power_w (NoNominal) have no
// reference and are left out too.
type GroupSavings struct {
	Group       string `json:"group"`
	Controllers int    `json:"controllers"` // in the group
	Counted     int    `json:"counted"`
	Missing     int    `json:"missing"`
	Incomplete  int    `json:"incomplete"`
	NoNominal   int    `json:"no_nominal"`
	// LitHours is the counted controllers' average burning time (operating_hours deltas); ControllerHours
	// their sum.
	LitHours        float64 `json:"lit_hours"`
	ControllerHours float64 `json:"controller_hours"`
	// DarkHours is the counted controllers' average time from sunset to sunrise: the reference's duration.
	DarkHours    float64 `json:"dark_hours"`
	UsedKWh      float64 `json:"used_kwh"` // energy_kwh deltas stamped in the night's window
	ReferenceKWh float64 `json:"reference_kwh"`
	SavedKWh     float64 `json:"saved_kwh"` // reference − used
	SavedPct     float64 `json:"saved_pct"` // of the reference; 0 when the reference is 0
	SavedEUR     float64 `json:"saved_eur"` // SavedKWh × tariff
}

// savingsAcc accumulates one group's night before rounding.
type savingsAcc struct {
	controllers, counted, missing, incomplete, noNominal int
	used, hours, ref, dark                               float64
}

func (a *savingsAcc) add(b savingsAcc) {
	a.controllers += b.controllers
	a.counted += b.counted
	a.missing += b.missing
	a.incomplete += b.incomplete
	a.noNominal += b.noNominal
	a.used += b.used
	a.hours += b.hours
	a.ref += b.ref
	a.dark += b.dark
}

func (a savingsAcc) result(group string, tariff float64) GroupSavings {
	g := GroupSavings{
		Group: group, Controllers: a.controllers, Counted: a.counted, Missing: a.missing,
		Incomplete: a.incomplete, NoNominal: a.noNominal,
		ControllerHours: reportRound(a.hours, 3), UsedKWh: reportRound(a.used, 3), ReferenceKWh: reportRound(a.ref, 3),
		SavedKWh: reportRound(a.ref-a.used, 3), SavedEUR: reportRound((a.ref-a.used)*tariff, 2),
	}
	if a.counted > 0 {
		g.LitHours = reportRound(a.hours/float64(a.counted), 3)
		g.DarkHours = reportRound(a.dark/float64(a.counted), 3)
	}
	if a.ref > 0 {
		g.SavedPct = reportRound((a.ref-a.used)/a.ref*100, 1)
	}
	return g
}

// savingsController is one controller of the report.
type savingsController struct {
	dev     *hv.Device
	site    *hv.Site
	group   string
	nominal float64 // W
}

// controllerNight is what the store says of one controller over one night.
type controllerNight struct {
	used, hours float64
	has         bool
	first, last int64 // the first and last hourly windows holding an energy delta
}

// Savings reports, for each night from the evening of from to the evening of to (both included) and each
// group groupOf names, the energy the controllers used against the all-night, full-power reference, priced
// at tariff €/kWh. It reads hourly sums of energy_kwh_delta and operating_hours_delta, one query per metric
// and month, and sorts the hours into nights.
func Savings(ctx context.Context, store hv.Store, reg *registry.Registry, groupOf GroupFunc, from, to time.Time, tariff float64) ([]NightSavings, error) {
	nights, err := reportNights(from, to)
	if err != nil {
		return nil, fmt.Errorf("savings: %w", err)
	}
	var (
		ctrls  []savingsController
		ids    []string
		byID   = map[string]int{}
		groups = map[string]bool{}
	)
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceLightingController {
			continue
		}
		dev, site, ok := reg.Lookup(d.ID)
		if !ok {
			continue
		}
		g := groupOf(dev, site)
		if g == "" {
			continue
		}
		groups[g] = true
		c := savingsController{dev: dev, site: site, group: g, nominal: controllerNominalW(dev)}
		if c.nominal > 0 {
			byID[dev.ID] = len(ctrls)
			ids = append(ids, dev.ID)
		}
		ctrls = append(ctrls, c)
	}
	names := slices.Sorted(maps.Keys(groups))

	out := make([]NightSavings, len(nights))
	err = eachChunk(nights, savingsChunkNights, func(first int, chunk []reportNight) error {
		data := make([][]controllerNight, len(ctrls))
		if len(ids) > 0 {
			for i := range data {
				data[i] = make([]controllerNight, len(chunk))
			}
			q := hv.Query{
				From: chunk[0].from.UnixMilli(), To: chunk[len(chunk)-1].until.UnixMilli(),
				Devices: ids, Every: time.Hour.Milliseconds(), Agg: hv.AggSum,
			}
			q.Metric = hv.EnergyKWh.Delta()
			energy, err := store.Query(ctx, q)
			if err != nil {
				return fmt.Errorf("savings: query %s: %w", q.Metric, err)
			}
			q.Metric = hv.OperatingHours.Delta()
			hours, err := store.Query(ctx, q)
			if err != nil {
				return fmt.Errorf("savings: query %s: %w", q.Metric, err)
			}
			for _, s := range energy {
				ci, ok := byID[s.Device]
				if !ok {
					continue
				}
				for _, p := range s.Points {
					ni := nightIndex(chunk, p.Time)
					if ni < 0 {
						continue
					}
					cn := &data[ci][ni]
					cn.used += p.Value
					if !cn.has || p.Time < cn.first {
						cn.first = p.Time
					}
					if !cn.has || p.Time > cn.last {
						cn.last = p.Time
					}
					cn.has = true
				}
			}
			for _, s := range hours {
				ci, ok := byID[s.Device]
				if !ok {
					continue
				}
				for _, p := range s.Points {
					if ni := nightIndex(chunk, p.Time); ni >= 0 {
						data[ci][ni].hours += p.Value
					}
				}
			}
		}
		for ni, n := range chunk {
			accs := map[string]*savingsAcc{}
			for _, g := range names {
				accs[g] = &savingsAcc{}
			}
			dark := map[string][2]time.Time{} // site → sunset, next sunrise
			for ci, c := range ctrls {
				a := accs[c.group]
				a.controllers++
				if c.nominal <= 0 {
					a.noNominal++
					continue
				}
				cn := data[ci][ni]
				if !cn.has {
					a.missing++
					continue
				}
				sd, ok := dark[c.site.ID]
				if !ok {
					sd[0] = sun.Compute(n.date, c.site.Lat, c.site.Lon, sun.Paris()).Sunset
					sd[1] = sun.Compute(n.date.AddDate(0, 0, 1), c.site.Lat, c.site.Lon, sun.Paris()).Sunrise
					dark[c.site.ID] = sd
				}
				var darkH float64
				if !sd[0].IsZero() && !sd[1].IsZero() {
					hour := time.Hour.Milliseconds()
					if cn.first > hv.WindowStart(sd[0].UnixMilli(), hour) || cn.last < hv.WindowStart(sd[1].UnixMilli(), hour) {
						a.incomplete++
						continue
					}
					darkH = sd[1].Sub(sd[0]).Hours()
				}
				a.counted++
				a.used += cn.used
				a.hours += cn.hours
				a.dark += darkH
				a.ref += c.nominal * darkH / 1000
			}
			ns := NightSavings{
				Night: n.day(), From: n.from, Until: n.until, Hours: n.until.Sub(n.from).Hours(),
				Groups: make([]GroupSavings, 0, len(names)),
			}
			var total savingsAcc
			for _, g := range names {
				ns.Groups = append(ns.Groups, accs[g].result(g, tariff))
				total.add(*accs[g])
			}
			ns.Total = total.result("", tariff)
			out[first+ni] = ns
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// savingsHeader is the CSV header of WriteSavingsCSV, one row per night and group then a "total" row:
//
//	nuit            the evening's date, YYYY-MM-DD
//	groupe          the group's name, "total" for the night's total
//	controleurs     controllers in the group
//	comptes         controllers counted
//	manquants       controllers without data that night
//	incomplets      controllers whose data does not frame the night
//	sans_puissance  controllers without max_power_w
//	heures_allumage average burning hours of the counted controllers
//	heures_controleurs sum of their burning hours
//	heures_nuit     average sunset → sunrise hours
//	conso_kwh, reference_kwh, economie_kwh, economie_pct, economie_eur
var savingsHeader = []string{
	"nuit", "groupe", "controleurs", "comptes", "manquants", "incomplets", "sans_puissance",
	"heures_allumage", "heures_controleurs", "heures_nuit", "conso_kwh", "reference_kwh", "economie_kwh",
	"economie_pct", "economie_eur",
}

// WriteSavingsCSV writes the savings as CSV (comma-separated, decimal point; header in savingsHeader).
func WriteSavingsCSV(w io.Writer, nights []NightSavings) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(savingsHeader); err != nil {
		return fmt.Errorf("write savings csv: %w", err)
	}
	row := func(night, group string, g GroupSavings) error {
		return cw.Write([]string{
			night, group, strconv.Itoa(g.Controllers), strconv.Itoa(g.Counted), strconv.Itoa(g.Missing),
			strconv.Itoa(g.Incomplete), strconv.Itoa(g.NoNominal), csvFloat(g.LitHours),
			csvFloat(g.ControllerHours), csvFloat(g.DarkHours), csvFloat(g.UsedKWh),
			csvFloat(g.ReferenceKWh), csvFloat(g.SavedKWh), csvFloat(g.SavedPct), csvFloat(g.SavedEUR),
		})
	}
	for _, n := range nights {
		for _, g := range n.Groups {
			if err := row(n.Night, g.Group, g); err != nil {
				return fmt.Errorf("write savings csv: %w", err)
			}
		}
		if err := row(n.Night, "total", n.Total); err != nil {
			return fmt.Errorf("write savings csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write savings csv: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------------------
// Compliance

// CompliancePlan is what the compliance report needs of the lighting plan; *Plan provides it.
type CompliancePlan interface {
	// DecreeFor returns the local switch-off order of a commune (INSEE code), nil when it has none.
	DecreeFor(commune string) *Decree
	// CategoryOf returns a site's category under the arrêté du 27 décembre 2018 (voirie when unlisted).
	CategoryOf(site string) SiteCategory
}

var _ CompliancePlan = (*Plan)(nil)

// ComplianceReport checks each lighting cabinet's controllers, night by night, against the switch-off its
// category calls for.
//
// The rule of a cabinet comes from its category: voirie follows the commune's decree over [From, To];
// batiment and patrimoine must be off from 01:00, or 1 h after ActivityEnd when later, until 07:00; parking
// from 2 h after ActivityEnd until 07:00 (the arrêté lets the lights come back at 07:00, or 1 h before the
// activity starts, which the plan does not record: 07:00 is the strict reading). Clock times from 12:00
// belong to the night's evening, before 12:00 to the next morning.
//
// Lit means level_pct > 0; a controller that reports no level_pct in a chunk of the range is judged on
// power_w, lit from offPowerShare (5 %) of its nominal power. Only readings stamped inside the forbidden
// window count (the reading before the window is not carried into it: the switch may have happened at the
// window's start). Each lit reading counts as lit from its time until the next reading, at most the
// device's reporting interval (5 min when the registry gives none), and at most until the window's end.
type ComplianceReport struct {
	From       string              `json:"from"` // first night, YYYY-MM-DD
	To         string              `json:"to"`   // last night
	Communes   []CommuneCompliance `json:"communes"`
	Violations []Violation         `json:"violations"`
	Unchecked  []Unchecked         `json:"unchecked"`
}

// CommuneCompliance sums up a commune's nights. A night is checked when at least one of its controllers
// could be judged that night, compliant when none of those broke its rule.
type CommuneCompliance struct {
	Commune         string `json:"commune"` // INSEE code
	Name            string `json:"name"`
	Cabinets        int    `json:"cabinets"` // lighting cabinets with at least one controller
	NightsChecked   int    `json:"nights_checked"`
	NightsCompliant int    `json:"nights_compliant"`
	Violations      int    `json:"violations"`
}

// Violation is one controller lit, one night, when its rule wanted it off.
type Violation struct {
	Night       string    `json:"night"`
	Commune     string    `json:"commune"`
	CommuneName string    `json:"commune_name"`
	Site        string    `json:"site"`
	Device      string    `json:"device"`
	Category    string    `json:"category"`
	Rule        string    `json:"rule"`        // French, as shown
	WindowFrom  time.Time `json:"window_from"` // the forbidden window
	WindowTo    time.Time `json:"window_to"`
	First       time.Time `json:"first"` // the first lit reading in the window
	Last        time.Time `json:"last"`  // the last one
	MinutesLit  float64   `json:"minutes_lit"`
	// MaxLevel is the highest level_pct read in the window, or the highest power_w as a percentage of the
	// nominal power when the controller reports no level (Measure says which).
	MaxLevel float64 `json:"max_level"`
	Measure  string  `json:"measure"` // "level_pct" or "power_w"
}

// Unchecked is a controller that could not be judged on some nights, and why (French).
type Unchecked struct {
	Commune  string `json:"commune"`
	Site     string `json:"site"`
	Device   string `json:"device"`
	Category string `json:"category"`
	Reason   string `json:"reason"`
	Nights   int    `json:"nights"`
}

// Reasons a controller is not checked.
const (
	reasonNoDecree     = "pas d'arrêté municipal d'extinction pour la commune"
	reasonBadDecree    = "arrêté municipal : heures invalides"
	reasonNoActivity   = "parking sans heure de fin d'activité : non vérifiable"
	reasonBadActivity  = "heure de fin d'activité invalide"
	reasonEmptyWindow  = "plage d'extinction vide"
	reasonNoReadings   = "aucune mesure pendant la plage d'extinction"
	reasonNoNominal    = "ni niveau ni puissance nominale : non vérifiable"
	reasonUnknownCateg = "catégorie inconnue"
)

// Fixed times of the arrêté du 27 décembre 2018, in minutes after 00:00 on the night's date.
const (
	arreteOffLatest = 25 * 60 // 01:00 the next morning
	arreteRelight   = 31 * 60 // 07:00
)

// offRule is a cabinet's switch-off rule as clock times of the night (minutes after 00:00 on its date).
type offRule struct {
	category string
	text     string
	from, to int
	reason   string // when set, the rule cannot be checked
}

// parseNightClock reads "HH:MM" as minutes after 00:00 on the night's date: from 12:00 in the evening,
// before 12:00 the next morning.
func parseNightClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, false
	}
	v := hh*60 + mm
	if v < 12*60 {
		v += 24 * 60
	}
	return v, true
}

func formatNightClock(v int) string { return fmt.Sprintf("%02d:%02d", v/60%24, v%60) }

// ruleOf resolves a cabinet's rule.
func ruleOf(plan CompliancePlan, site *hv.Site) offRule {
	sc := plan.CategoryOf(site.ID)
	r := offRule{category: cmp.Or(sc.Category, CategoryVoirie)}
	switch r.category {
	case CategoryVoirie:
		d := plan.DecreeFor(site.Commune)
		if d == nil {
			r.reason = reasonNoDecree
			return r
		}
		from, ok1 := parseNightClock(d.From)
		to, ok2 := parseNightClock(d.To)
		if !ok1 || !ok2 {
			r.reason = reasonBadDecree
			return r
		}
		r.from, r.to = from, to
		r.text = fmt.Sprintf("arrêté municipal %s–%s", d.From, d.To)
	case CategoryBatiment, CategoryPatrimoine:
		r.from, r.to = arreteOffLatest, arreteRelight
		r.text = "arrêté du 27 décembre 2018 : extinction à 01:00"
		if sc.ActivityEnd != "" {
			end, ok := parseNightClock(sc.ActivityEnd)
			if !ok {
				r.reason = reasonBadActivity
				return r
			}
			if end+60 > r.from {
				r.from = end + 60
				r.text = fmt.Sprintf("arrêté du 27 décembre 2018 : extinction à %s, 1 h après la fin d'activité",
					formatNightClock(r.from))
			}
		}
	case CategoryParking:
		if sc.ActivityEnd == "" {
			r.reason = reasonNoActivity
			return r
		}
		end, ok := parseNightClock(sc.ActivityEnd)
		if !ok {
			r.reason = reasonBadActivity
			return r
		}
		r.from, r.to = end+120, arreteRelight
		r.text = fmt.Sprintf("arrêté du 27 décembre 2018 : extinction à %s, 2 h après la fin d'activité",
			formatNightClock(r.from))
	default:
		r.reason = reasonUnknownCateg + " « " + r.category + " »"
		return r
	}
	if r.to <= r.from {
		r.reason = reasonEmptyWindow
	}
	return r
}

// complianceTarget is one controller of a cabinet and its rule.
type complianceTarget struct {
	dev      *hv.Device
	site     *hv.Site
	rule     offRule
	nominal  float64
	interval int64 // ms
}

// Compliance checks the lighting cabinets' controllers against their switch-off rules for each night from
// the evening of from to the evening of to (both included). It reads raw level_pct readings, and power_w for
// controllers that report no level, one query per metric and week.
func Compliance(ctx context.Context, store hv.Store, reg *registry.Registry, plan CompliancePlan, from, to time.Time) (*ComplianceReport, error) {
	nights, err := reportNights(from, to)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	rep := &ComplianceReport{
		From: nights[0].day(), To: nights[len(nights)-1].day(),
		Communes: []CommuneCompliance{}, Violations: []Violation{}, Unchecked: []Unchecked{},
	}
	type uncheckedKey struct{ device, reason string }
	unchecked := map[uncheckedKey]*Unchecked{}
	skip := func(t *complianceTarget, reason string, n int) {
		k := uncheckedKey{t.dev.ID, reason}
		u := unchecked[k]
		if u == nil {
			u = &Unchecked{Commune: t.site.Commune, Site: t.site.ID, Device: t.dev.ID, Category: t.rule.category, Reason: reason}
			unchecked[k] = u
		}
		u.Nights += n
	}

	type communeState struct {
		summary  CommuneCompliance
		checked  []bool // by night
		violated []bool
	}
	communes := map[string]*communeState{}
	cabinets := map[string]bool{}
	var targets []complianceTarget // checkable ones
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceLightingController {
			continue
		}
		dev, site, ok := reg.Lookup(d.ID)
		if !ok || site.Kind != hv.SiteLightingCabinet {
			continue
		}
		cs := communes[site.Commune]
		if cs == nil {
			cs = &communeState{
				summary: CommuneCompliance{Commune: site.Commune},
				checked: make([]bool, len(nights)), violated: make([]bool, len(nights)),
			}
			if tr := reg.Territory(); tr != nil {
				if c, ok := tr.Commune(site.Commune); ok {
					cs.summary.Name = c.Name
				}
			}
			communes[site.Commune] = cs
		}
		if !cabinets[site.ID] {
			cabinets[site.ID] = true
			cs.summary.Cabinets++
		}
		t := complianceTarget{dev: dev, site: site, rule: ruleOf(plan, site), nominal: controllerNominalW(dev),
			interval: cmp.Or(dev.Interval, defaultReportInterval).Milliseconds()}
		if t.rule.reason != "" {
			skip(&t, t.rule.reason, len(nights))
			continue
		}
		targets = append(targets, t)
	}

	err = eachChunk(nights, complianceChunkNights, func(first int, chunk []reportNight) error {
		if len(targets) == 0 {
			return nil
		}
		ids := make([]string, len(targets))
		for i, t := range targets {
			ids[i] = t.dev.ID
		}
		q := hv.Query{Metric: hv.LevelPct, From: chunk[0].from.UnixMilli(), To: chunk[len(chunk)-1].until.UnixMilli(), Devices: ids}
		levels, err := store.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("compliance: query %s: %w", q.Metric, err)
		}
		points := make(map[string][]hv.Point, len(levels))
		for _, s := range levels {
			points[s.Device] = s.Points
		}
		var noLevel []string
		for _, id := range ids {
			if len(points[id]) == 0 {
				noLevel = append(noLevel, id)
			}
		}
		power := map[string][]hv.Point{}
		if len(noLevel) > 0 {
			q.Metric, q.Devices = hv.PowerW, noLevel
			ps, err := store.Query(ctx, q)
			if err != nil {
				return fmt.Errorf("compliance: query %s: %w", q.Metric, err)
			}
			for _, s := range ps {
				power[s.Device] = s.Points
			}
		}
		for ti := range targets {
			t := &targets[ti]
			cs := communes[t.site.Commune]
			pts, measure := points[t.dev.ID], string(hv.LevelPct)
			if len(pts) == 0 {
				pts, measure = power[t.dev.ID], string(hv.PowerW)
			}
			for ni, n := range chunk {
				wFrom, wTo := n.at(t.rule.from), n.at(t.rule.to)
				if measure == string(hv.PowerW) && t.nominal <= 0 {
					skip(t, reasonNoNominal, 1)
					continue
				}
				v, judged := judgeWindow(pts, wFrom.UnixMilli(), wTo.UnixMilli(), t.interval, func(p hv.Point) (bool, float64) {
					if measure == string(hv.LevelPct) {
						return p.Value > 0, p.Value
					}
					return p.Value >= offPowerShare*t.nominal, p.Value / t.nominal * 100
				})
				if !judged {
					skip(t, reasonNoReadings, 1)
					continue
				}
				cs.checked[first+ni] = true
				if v == nil {
					continue
				}
				cs.violated[first+ni] = true
				cs.summary.Violations++
				v.Night, v.Commune, v.CommuneName = n.day(), t.site.Commune, cs.summary.Name
				v.Site, v.Device, v.Category, v.Rule = t.site.ID, t.dev.ID, t.rule.category, t.rule.text
				v.WindowFrom, v.WindowTo, v.Measure = reportLocal(wFrom), reportLocal(wTo), measure
				rep.Violations = append(rep.Violations, *v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	for _, code := range slices.Sorted(maps.Keys(communes)) {
		cs := communes[code]
		for i := range nights {
			if cs.checked[i] {
				cs.summary.NightsChecked++
				if !cs.violated[i] {
					cs.summary.NightsCompliant++
				}
			}
		}
		rep.Communes = append(rep.Communes, cs.summary)
	}
	slices.SortFunc(rep.Violations, func(a, b Violation) int {
		return cmp.Or(strings.Compare(a.Night, b.Night), strings.Compare(a.Commune, b.Commune),
			strings.Compare(a.Site, b.Site), strings.Compare(a.Device, b.Device))
	})
	for _, u := range unchecked {
		rep.Unchecked = append(rep.Unchecked, *u)
	}
	slices.SortFunc(rep.Unchecked, func(a, b Unchecked) int {
		return cmp.Or(strings.Compare(a.Commune, b.Commune), strings.Compare(a.Site, b.Site),
			strings.Compare(a.Device, b.Device), strings.Compare(a.Reason, b.Reason))
	})
	return rep, nil
}

// judgeWindow looks at the readings (sorted by time) stamped in [from, to): judged is false when there are
// none; v is nil when none is lit, else the violation's readings part (First, Last, MinutesLit, MaxLevel).
func judgeWindow(pts []hv.Point, from, to, interval int64, lit func(hv.Point) (bool, float64)) (v *Violation, judged bool) {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].Time >= from })
	var litMS int64
	for ; i < len(pts) && pts[i].Time < to; i++ {
		judged = true
		p := pts[i]
		on, level := lit(p)
		if !on {
			continue
		}
		end := p.Time + interval
		if i+1 < len(pts) && pts[i+1].Time < end {
			end = pts[i+1].Time
		}
		litMS += min(end, to) - p.Time
		at := reportLocal(time.UnixMilli(p.Time))
		if v == nil {
			v = &Violation{First: at, MaxLevel: level}
		}
		v.Last = at
		v.MaxLevel = max(v.MaxLevel, level)
	}
	if v != nil {
		v.MinutesLit = reportRound(float64(litMS)/60000, 2)
		v.MaxLevel = reportRound(v.MaxLevel, 1)
	}
	return v, judged
}

// violationHeader is the CSV header of WriteViolationsCSV, one row per violation:
//
//	nuit             the evening's date, YYYY-MM-DD
//	commune          INSEE code
//	nom_commune
//	armoire          the cabinet (site id)
//	controleur       the controller (device id)
//	categorie        voirie, batiment, patrimoine, parking
//	regle            the rule, in French
//	debut_plage, fin_plage              the forbidden window, RFC 3339 local time
//	premiere_mesure, derniere_mesure    the first and last lit readings in it
//	minutes_allumees minutes lit in the window
//	niveau_max       the highest level (%), or power as % of nominal (mesure = power_w)
//	mesure           level_pct or power_w
var violationHeader = []string{
	"nuit", "commune", "nom_commune", "armoire", "controleur", "categorie", "regle", "debut_plage", "fin_plage",
	"premiere_mesure", "derniere_mesure", "minutes_allumees", "niveau_max", "mesure",
}

// WriteViolationsCSV writes compliance violations as CSV (comma-separated, decimal point, RFC 3339 times in
// Europe/Paris; header in violationHeader).
func WriteViolationsCSV(w io.Writer, vs []Violation) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(violationHeader); err != nil {
		return fmt.Errorf("write violations csv: %w", err)
	}
	ts := func(t time.Time) string { return reportLocal(t).Format(time.RFC3339) }
	for _, v := range vs {
		if err := cw.Write([]string{
			v.Night, v.Commune, v.CommuneName, v.Site, v.Device, v.Category, v.Rule, ts(v.WindowFrom),
			ts(v.WindowTo), ts(v.First), ts(v.Last), csvFloat(v.MinutesLit), csvFloat(v.MaxLevel), v.Measure,
		}); err != nil {
			return fmt.Errorf("write violations csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write violations csv: %w", err)
	}
	return nil
}
