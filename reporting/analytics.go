package reporting

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
)

// Every is the step of a consumption answer.
type Every string

// Steps of a consumption answer. Days, months and years are civil ones of Europe/Paris.
const (
	EveryHour  Every = "hour"
	EveryDay   Every = "day"
	EveryMonth Every = "month"
	EveryYear  Every = "year"
)

// ParseEvery validates a step name.
func ParseEvery(s string) (Every, error) {
	switch e := Every(s); e {
	case EveryHour, EveryDay, EveryMonth, EveryYear:
		return e, nil
	}
	return "", fmt.Errorf("every %q: %w: want hour|day|month|year", s, hv.ErrInvalid)
}

// Per is what a consumption is divided by.
type Per string

// Normalisations.
const (
	PerNone       Per = ""
	PerM2         Per = "m2"
	PerInhabitant Per = "inhabitant"
)

// ParsePer validates a normalisation name.
func ParsePer(s string) (Per, error) {
	switch p := Per(s); p {
	case PerNone, PerM2, PerInhabitant:
		return p, nil
	}
	return "", fmt.Errorf("per %q: %w: want m2|inhabitant or nothing", s, hv.ErrInvalid)
}

// Fluids are the consumption fluids, in the order of an answer's rows.
var Fluids = []hv.Fluid{hv.Electricity, hv.Gas, hv.Heat, hv.Water}

// FluidMetric is the delta series a fluid's consumption is read from ("" for a fluid that is not consumed).
func FluidMetric(f hv.Fluid) hv.Metric {
	switch f {
	case hv.Electricity:
		return hv.EnergyKWh.Delta()
	case hv.Gas, hv.Water:
		return hv.VolumeM3.Delta()
	case hv.Heat:
		return hv.HeatKWh.Delta()
	}
	return ""
}

// fluidLabel names a fluid for the notes.
var fluidLabel = map[hv.Fluid]string{hv.Electricity: "électricité", hv.Gas: "gaz", hv.Heat: "chaleur", hv.Water: "eau"}

func heating(f hv.Fluid) bool { return f == hv.Gas || f == hv.Heat }

// Request asks for the consumption of a scope.
type Request struct {
	// Scope is site:<id>, commune:<INSEE>, epci:<SIREN> or departement.
	Scope string
	// Fluids to answer for; empty: all of Fluids.
	Fluids []hv.Fluid
	// Usage keeps the sites of one usage (mairie, école…); empty: all.
	Usage string
	// Kind keeps the sites of one kind (building, lighting_cabinet); empty: all.
	Kind hv.SiteKind
	// From and To are dates, both included: their year, month and day are read in their own location and
	// taken as Europe/Paris days.
	From, To time.Time
	Every    Every
	Per      Per
	// Climate adds the climate-corrected consumption of heating fluids to whole-year rows (Every=year).
	Climate bool
	// YearOverYear adds each row's same period one year earlier.
	YearOverYear bool
}

// Amount is a consumption in its fluid's unit and, but for water, in kWh, both divided as the request's Per
// says.
type Amount struct {
	Value float64  `json:"value"`
	KWh   *float64 `json:"kwh,omitempty"`
}

// Climate is a row's climate correction.
type Climate struct {
	DJURef float64 `json:"dju_ref"`
	// DJU is the year's degree days at the sites' stations, weighted by the consumption each station's sites
	// carry.
	DJU       float64 `json:"dju"`
	Corrected Amount  `json:"corrected"`
}

// Previous is the same period one year earlier (the same dates, the same local clock hours).
type Previous struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Amount
	Climate *Climate `json:"climate,omitempty"`
	// Change is (value − previous) / previous; absent when the previous value is 0.
	Change *float64 `json:"change,omitempty"`
}

// Row is one fluid's consumption over one period.
type Row struct {
	// Start and End bound the period, [Start, End), in Europe/Paris; a period the request's dates cut is
	// cut too (Start is then not the calendar period's start).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Fluid hv.Fluid  `json:"fluid"`
	// Unit is Value's: kWh or m3, then /m2 or /inhabitant with Per; KWh is in kWh with the same divisor.
	Unit string `json:"unit"`
	Amount
	Climate  *Climate  `json:"climate,omitempty"`
	Previous *Previous `json:"previous,omitempty"`
}

// Response is the answer to a Request.
type Response struct {
	Scope string `json:"scope"`
	Every Every  `json:"every"`
	Per   Per    `json:"per,omitempty"`
	From  string `json:"from"` // dates, both included
	To    string `json:"to"`
	// Divisors are the m² or inhabitants each fluid's values were divided by.
	Divisors map[hv.Fluid]float64 `json:"divisors,omitempty"`
	GasPCS   float64              `json:"gas_pcs_kwh_per_m3"`
	Rows     []Row                `json:"rows"`
	// Notes say, in French for the user, what was left out or could not be computed.
	Notes []string `json:"notes,omitempty"`
}

// Analytics answers consumption and ranking questions from the rollups (days and longer) and the store
// (hours, degree days). It is safe for concurrent use.
type Analytics struct {
	store   hv.Store
	rollups *Rollups
	reg     func() *registry.Registry
	cfg     Config
	loc     *time.Location
	now     func() time.Time

	mu  sync.Mutex
	idx *regIndex // of the registry it was built from

	refs referencesHolder // declared décret tertiaire references
}

// NewAnalytics returns the analytics over store and rollups; reg gives the current registry (it is swapped
// on edits). cfg must be valid.
func NewAnalytics(store hv.Store, rollups *Rollups, reg func() *registry.Registry, cfg Config) *Analytics {
	return &Analytics{store: store, rollups: rollups, reg: reg, cfg: cfg, loc: rollups.loc, now: rollups.now}
}

// regIndex is what the analytics need of one registry, computed once.
type regIndex struct {
	reg     *registry.Registry
	sites   []hv.Site
	site    map[string]int
	devices []hv.Device // meters and lighting controllers of a consumption fluid
	station []string    // per site: its nearest weather device, "" when the registry has none
}

func (a *Analytics) index() *regIndex {
	reg := a.reg()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.idx != nil && a.idx.reg == reg {
		return a.idx
	}
	ix := &regIndex{reg: reg, sites: reg.Sites(), site: map[string]int{}}
	for i, s := range ix.sites {
		ix.site[s.ID] = i
	}
	type station struct {
		id       string
		lat, lon float64
	}
	var stations []station
	for _, d := range reg.Devices() {
		switch {
		case d.Kind == hv.DeviceWeather:
			if s, ok := reg.Site(d.Site); ok {
				stations = append(stations, station{d.ID, s.Lat, s.Lon})
			}
		case (d.Kind == hv.DeviceMeter || d.Kind == hv.DeviceLightingController) && FluidMetric(d.Fluid) != "":
			ix.devices = append(ix.devices, d)
		}
	}
	// The rule of rules.NearestStation (equirectangular distance, the first of equals in id order), computed
	// over the stations alone: rules.NearestStation scans every device at each call, 1 729 times here.
	ix.station = make([]string, len(ix.sites))
	for i, s := range ix.sites {
		best := math.Inf(1)
		for _, st := range stations {
			dx := (st.lon - s.Lon) * math.Cos((st.lat+s.Lat)/2*math.Pi/180)
			dy := st.lat - s.Lat
			if d := dx*dx + dy*dy; d < best {
				ix.station[i], best = st.id, d
			}
		}
	}
	a.idx = ix
	return ix
}

// scope is a parsed Request.Scope with what it covers.
type scope struct {
	match      func(hv.Site) bool
	population float64
}

func (ix *regIndex) scope(s string) (scope, error) {
	t := ix.reg.Territory()
	kind, code, _ := strings.Cut(s, ":")
	bad := func(format string, args ...any) error {
		return fmt.Errorf("scope %q: %w: %s", s, hv.ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case s == "departement" || s == "département":
		var pop float64
		for _, c := range t.Communes() {
			pop += float64(c.Population)
		}
		return scope{match: func(hv.Site) bool { return true }, population: pop}, nil
	case code == "":
	case kind == "site":
		site, ok := ix.reg.Site(code)
		if !ok {
			return scope{}, bad("no such site")
		}
		c, _ := t.Commune(site.Commune)
		return scope{match: func(x hv.Site) bool { return x.ID == code }, population: float64(c.Population)}, nil
	case kind == "commune":
		c, ok := t.Commune(code)
		if !ok {
			return scope{}, bad("no such commune (INSEE code)")
		}
		return scope{match: func(x hv.Site) bool { return x.Commune == code }, population: float64(c.Population)}, nil
	case kind == "epci":
		e, ok := t.EPCI(code)
		if !ok {
			return scope{}, bad("no such EPCI (SIREN code)")
		}
		var pop float64
		for _, cc := range e.Communes {
			c, _ := t.Commune(cc)
			pop += float64(c.Population)
		}
		return scope{match: func(x hv.Site) bool { return x.EPCI == code }, population: pop}, nil
	}
	return scope{}, bad("want site:<id>|commune:<INSEE>|epci:<SIREN>|departement")
}

// selection is the devices a request covers, by fluid, and what their values are divided by.
type selection struct {
	fluids  []hv.Fluid         // requested fluids that have devices (and a divisor), in row order
	devs    map[hv.Fluid][]int // indexes into regIndex.devices
	divisor map[hv.Fluid]float64
	missing []hv.Fluid // requested fluids without a device in scope
	notes   []string   // what else was left out
}

func (a *Analytics) selectDevices(ix *regIndex, sc scope, fluids []hv.Fluid, usage string, kind hv.SiteKind, per Per) selection {
	sel := selection{devs: map[hv.Fluid][]int{}, divisor: map[hv.Fluid]float64{}}
	surface := map[hv.Fluid]map[string]float64{}
	noSurface := map[string]bool{}
	for i, d := range ix.devices {
		if !slices.Contains(fluids, d.Fluid) {
			continue
		}
		si, ok := ix.site[d.Site]
		if !ok {
			continue
		}
		site := ix.sites[si]
		if !sc.match(site) || (usage != "" && site.Usage != usage) || (kind != "" && site.Kind != kind) {
			continue
		}
		if per == PerM2 {
			if site.SurfaceM2 <= 0 {
				noSurface[site.ID] = true
				continue
			}
			if surface[d.Fluid] == nil {
				surface[d.Fluid] = map[string]float64{}
			}
			surface[d.Fluid][site.ID] = site.SurfaceM2
		}
		sel.devs[d.Fluid] = append(sel.devs[d.Fluid], i)
	}
	for _, f := range Fluids {
		if !slices.Contains(fluids, f) {
			continue
		}
		if len(sel.devs[f]) == 0 {
			sel.missing = append(sel.missing, f)
			continue
		}
		switch per {
		case PerM2:
			var s float64
			for _, id := range sortedKeys(surface[f]) { // sorted: the same sum every time
				s += surface[f][id]
			}
			sel.divisor[f] = s
		case PerInhabitant:
			if sc.population <= 0 {
				if !slices.Contains(sel.notes, noPopulation) {
					sel.notes = append(sel.notes, noPopulation)
				}
				continue
			}
			sel.divisor[f] = sc.population
		}
		sel.fluids = append(sel.fluids, f)
	}
	if len(noSurface) > 0 {
		sel.notes = append(sel.notes, fmt.Sprintf("Ratio au m² : %d site(s) sans surface renseignée (armoires d'éclairage public, bâtiments sans surface) exclu(s) du calcul.", len(noSurface)))
	}
	return sel
}

const noPopulation = "Population du périmètre inconnue : ratio par habitant non calculé."

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// period is one row's time span, [start, end), with its days [d0, d1) for the rollups.
type period struct {
	start, end time.Time
	d0, d1     int32
	whole      bool // a whole calendar period, not cut by the request's dates
}

func span(start, end time.Time, whole bool) period {
	return period{start: start, end: end, d0: dayOfTime(start), d1: dayOfTime(end), whole: whole}
}

// periods splits [from, to) (local midnights) into the steps of every.
func (a *Analytics) periods(from, to time.Time, every Every) []period {
	var out []period
	switch every {
	case EveryHour:
		for t := from; t.Before(to); t = t.Add(time.Hour) {
			out = append(out, period{start: t, end: t.Add(time.Hour), whole: true})
		}
	case EveryDay:
		for t := from; t.Before(to); t = t.AddDate(0, 0, 1) {
			out = append(out, span(t, t.AddDate(0, 0, 1), true))
		}
	case EveryMonth, EveryYear:
		y, m, _ := from.Date()
		cal := time.Date(y, m, 1, 0, 0, 0, 0, a.loc)
		step := func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
		if every == EveryYear {
			cal = time.Date(y, 1, 1, 0, 0, 0, 0, a.loc)
			step = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
		}
		for ; cal.Before(to); cal = step(cal) {
			next := step(cal)
			s, e := later(cal, from), earlier(next, to)
			out = append(out, span(s, e, s.Equal(cal) && e.Equal(next)))
		}
	}
	return out
}

// previous is p one year earlier: the same dates, the same local clock hours.
func (a *Analytics) previous(p period, every Every) period {
	s := p.start.AddDate(-1, 0, 0)
	switch every {
	case EveryHour:
		return period{start: s, end: s.Add(time.Hour), whole: true}
	case EveryDay: // 29 February → 1 March
		y, m, d := s.Date()
		s = time.Date(y, m, d, 0, 0, 0, 0, a.loc)
		return span(s, s.AddDate(0, 0, 1), true)
	}
	return span(s, p.end.AddDate(-1, 0, 0), p.whole)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// localDate is t's date as a local midnight.
func (a *Analytics) localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, a.loc)
}

// Consumption answers a consumption request. Day, month and year steps come from the rollups (refreshed
// first when the request touches dirty days), hours from the store.
func (a *Analytics) Consumption(ctx context.Context, req Request) (*Response, error) {
	if err := a.check(req); err != nil {
		return nil, fmt.Errorf("consumption: %w", err)
	}
	ix := a.index()
	sc, err := ix.scope(req.Scope)
	if err != nil {
		return nil, fmt.Errorf("consumption: %w", err)
	}
	fluids := req.Fluids
	if len(fluids) == 0 {
		fluids = Fluids
	}
	from, to := a.localDate(req.From), a.localDate(req.To).AddDate(0, 0, 1)
	sel := a.selectDevices(ix, sc, fluids, req.Usage, req.Kind, req.Per)
	resp := &Response{Scope: req.Scope, Every: req.Every, Per: req.Per, From: from.Format(time.DateOnly),
		To: a.localDate(req.To).Format(time.DateOnly), GasPCS: a.cfg.GasPCS, Rows: []Row{}}
	for _, f := range sel.missing {
		resp.Notes = append(resp.Notes, fmt.Sprintf("Aucun compteur (%s) dans le périmètre.", fluidLabel[f]))
	}
	resp.Notes = append(resp.Notes, sel.notes...)
	if req.Per != PerNone {
		resp.Divisors = sel.divisor
	}
	cur := a.periods(from, to, req.Every)
	all := cur
	if req.YearOverYear {
		all = slices.Clone(cur)
		for _, p := range cur {
			all = append(all, a.previous(p, req.Every))
		}
	}
	var sums *totals
	if req.Every == EveryHour {
		sums, err = a.hourly(ctx, ix, sel, all, len(cur))
	} else {
		sums, err = a.daily(ctx, ix, sel, all, req.Climate && req.Every == EveryYear)
	}
	if err != nil {
		return nil, fmt.Errorf("consumption: %w", err)
	}
	var cl *climateCalc
	if req.Climate {
		cl = a.newClimate(ctx)
		resp.Notes = append(resp.Notes, cl.referenceNote()...)
	}
	for pi, p := range cur {
		for _, f := range sel.fluids {
			div := 1.0
			if req.Per != PerNone {
				div = sel.divisor[f]
			}
			row := Row{Start: p.start, End: p.end, Fluid: f, Unit: unit(f, req.Per), Amount: a.amount(f, sums.total[pi][f]/div)}
			if cl != nil && heating(f) {
				row.Climate, err = cl.correct(p, f, sums.station[pi][f], div)
				if err != nil {
					return nil, fmt.Errorf("consumption: %w", err)
				}
			}
			if req.YearOverYear {
				qi := pi + len(cur)
				q := all[qi]
				prev := &Previous{Start: q.start, End: q.end, Amount: a.amount(f, sums.total[qi][f]/div)}
				if pv := prev.Value; pv != 0 {
					c := (row.Value - pv) / pv
					prev.Change = &c
				}
				if cl != nil && heating(f) {
					prev.Climate, err = cl.correct(q, f, sums.station[qi][f], div)
					if err != nil {
						return nil, fmt.Errorf("consumption: %w", err)
					}
				}
				row.Previous = prev
			}
			resp.Rows = append(resp.Rows, row)
		}
	}
	if cl != nil {
		resp.Notes = append(resp.Notes, cl.notes...)
	}
	return resp, nil
}

// check validates a request's shape.
func (a *Analytics) check(req Request) error {
	if _, err := ParseEvery(string(req.Every)); err != nil {
		return err
	}
	if _, err := ParsePer(string(req.Per)); err != nil {
		return err
	}
	for _, f := range req.Fluids {
		if FluidMetric(f) == "" {
			return fmt.Errorf("fluid %q: %w: want electricity|gas|heat|water", f, hv.ErrInvalid)
		}
	}
	switch req.Kind {
	case "", hv.SiteBuilding, hv.SiteLightingCabinet:
	default:
		return fmt.Errorf("kind %q: %w: want building|lighting_cabinet", req.Kind, hv.ErrInvalid)
	}
	switch {
	case req.From.IsZero() || req.To.IsZero():
		return fmt.Errorf("from, to: %w: both dates are required", hv.ErrInvalid)
	case a.localDate(req.To).Before(a.localDate(req.From)):
		return fmt.Errorf("to: %w: before from", hv.ErrInvalid)
	case dayOfTime(req.To)-dayOfTime(req.From) > 100*366:
		return fmt.Errorf("from, to: %w: more than 100 years", hv.ErrInvalid)
	case req.Climate && req.Every != EveryYear:
		return fmt.Errorf("climate: %w: the correction is annual (OPERAT): ask every=year", hv.ErrInvalid)
	}
	if req.Every == EveryHour {
		days := dayOfTime(req.To) - dayOfTime(req.From) + 1
		if int(days) > a.cfg.MaxHourlyDays {
			return fmt.Errorf("from, to: %w: %d days by the hour, at most %d", hv.ErrInvalid, days, a.cfg.MaxHourlyDays)
		}
	}
	return nil
}

func unit(f hv.Fluid, per Per) string {
	u := FluidMetric(f).Unit()
	switch per {
	case PerM2:
		return u + "/m2"
	case PerInhabitant:
		return u + "/inhabitant"
	}
	return u
}

// amount gives v (in f's unit) in kWh too.
func (a *Analytics) amount(f hv.Fluid, v float64) Amount {
	out := Amount{Value: v}
	switch f {
	case hv.Electricity, hv.Heat:
		k := v
		out.KWh = &k
	case hv.Gas:
		k := v * a.cfg.GasPCS
		out.KWh = &k
	}
	return out
}

// totals are a request's sums by period: per fluid, and for climate per fluid and station.
type totals struct {
	total   []map[hv.Fluid]float64
	station []map[hv.Fluid]map[string]float64
}

func newTotals(n int) *totals {
	t := &totals{total: make([]map[hv.Fluid]float64, n), station: make([]map[hv.Fluid]map[string]float64, n)}
	for i := range t.total {
		t.total[i] = map[hv.Fluid]float64{}
		t.station[i] = map[hv.Fluid]map[string]float64{}
	}
	return t
}

// ensureFresh refreshes the rollups when days [d0, d1) of metrics are dirty.
func (a *Analytics) ensureFresh(ctx context.Context, metrics []hv.Metric, d0, d1 int32) error {
	if !a.rollups.Ready() {
		return ErrNotReady
	}
	if a.rollups.dirtyWithin(metrics, d0, d1) {
		return a.rollups.Refresh(ctx)
	}
	return nil
}

func (sel selection) metrics() []hv.Metric {
	var ms []hv.Metric
	for _, f := range sel.fluids {
		if m := FluidMetric(f); !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
	}
	return ms
}

// daily sums the selected devices' rollups over the periods; byStation also splits heating fluids by the
// stations of the devices' sites.
func (a *Analytics) daily(ctx context.Context, ix *regIndex, sel selection, ps []period, byStation bool) (*totals, error) {
	out := newTotals(len(ps))
	if len(ps) == 0 {
		return out, nil
	}
	d0, d1 := ps[0].d0, ps[0].d1
	for _, p := range ps {
		d0, d1 = min(d0, p.d0), max(d1, p.d1)
	}
	if err := a.ensureFresh(ctx, sel.metrics(), d0, d1); err != nil {
		return nil, err
	}
	r := a.rollups
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, f := range sel.fluids {
		byDev := r.series[FluidMetric(f)]
		split := byStation && heating(f)
		for _, di := range sel.devs[f] {
			d := ix.devices[di]
			s := byDev[d.ID]
			if s == nil {
				continue
			}
			st := ""
			if split {
				st = ix.station[ix.site[d.Site]]
			}
			for pi, p := range ps {
				v := s.sum(p.d0, p.d1)
				out.total[pi][f] += v
				if split {
					m := out.station[pi][f]
					if m == nil {
						m = map[string]float64{}
						out.station[pi][f] = m
					}
					m[st] += v
				}
			}
		}
	}
	return out, nil
}

// hourly sums the selected devices' hourly deltas from the store. ps holds the current hours, then from
// index split on (year over year) the previous ones: each run is read with one query per fluid.
func (a *Analytics) hourly(ctx context.Context, ix *regIndex, sel selection, ps []period, split int) (*totals, error) {
	out := newTotals(len(ps))
	var ranges [][2]int
	for _, rg := range [][2]int{{0, split}, {split, len(ps)}} {
		if rg[1] > rg[0] {
			ranges = append(ranges, rg)
		}
	}
	for _, f := range sel.fluids {
		ids := make(map[string]bool, len(sel.devs[f]))
		for _, di := range sel.devs[f] {
			ids[ix.devices[di].ID] = true
		}
		for _, rg := range ranges {
			q := hv.Query{Metric: FluidMetric(f), From: ps[rg[0]].start.UnixMilli(), To: ps[rg[1]-1].end.UnixMilli(),
				Every: hourMs, Agg: hv.AggSum, Fluids: []hv.Fluid{f}}
			if len(ids) <= a.cfg.MaxDeviceFilter {
				q.Devices = sortedKeys(ids)
			}
			ss, err := a.store.Query(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("read %s by the hour: %w", q.Metric, err)
			}
			byHour := map[int64]float64{}
			for _, s := range ss {
				if !ids[s.Device] {
					continue
				}
				for _, p := range s.Points {
					byHour[p.Time] += p.Value
				}
			}
			for pi := rg[0]; pi < rg[1]; pi++ {
				out.total[pi][f] = byHour[ps[pi].start.UnixMilli()]
			}
		}
	}
	return out, nil
}

// climateCalc corrects whole-year heating consumptions, reading each station's degree days once.
type climateCalc struct {
	a           *Analytics
	ctx         context.Context
	ref         float64
	placeholder bool
	dju         map[djuKey]djuYear
	notes       []string
	noted       map[string]bool
}

type djuKey struct {
	station string
	d0      int32
}

type djuYear struct {
	sum        float64
	days, want int
}

func (a *Analytics) newClimate(ctx context.Context) *climateCalc {
	ref, ok := a.cfg.referenceDJU()
	return &climateCalc{a: a, ctx: ctx, ref: ref, placeholder: !ok, dju: map[djuKey]djuYear{}, noted: map[string]bool{}}
}

// referenceNote warns when DJU_ref is the placeholder.
func (c *climateCalc) referenceNote() []string {
	if !c.placeholder {
		return nil
	}
	return []string{fmt.Sprintf("DJU de référence : valeur par défaut provisoire (%.0f DJU base %g °C), à remplacer par les DJU de référence Météo-France du territoire.", c.ref, c.a.cfg.DJUBase)}
}

func (c *climateCalc) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !c.noted[s] {
		c.noted[s] = true
		c.notes = append(c.notes, s)
	}
}

// yearDJU is a station's degree days over a period, with the days it covers.
func (c *climateCalc) yearDJU(station string, p period) (djuYear, error) {
	k := djuKey{station, p.d0}
	if v, ok := c.dju[k]; ok {
		return v, nil
	}
	dd, err := rules.QueryDegreeDays(c.ctx, c.a.store, station, p.start, p.end, c.a.cfg.DJUBase, c.a.loc)
	if err != nil {
		return djuYear{}, err
	}
	v := djuYear{days: len(dd), want: int(p.d1 - p.d0)}
	for _, d := range dd {
		v.sum += d.Value
	}
	c.dju[k] = v
	return v, nil
}

// stationFactor is the correction factor of fluid f over p at a station, and the station's degree days;
// ok is false (with a note) when it cannot be computed.
func (c *climateCalc) stationFactor(p period, f hv.Fluid, station string) (factor, dju float64, ok bool, err error) {
	year := p.start.Year()
	if station == "" {
		c.note("Correction climatique de %d impossible : aucune station météo dans le registre.", year)
		return 0, 0, false, nil
	}
	y, err := c.yearDJU(station, p)
	if err != nil {
		return 0, 0, false, err
	}
	if y.days < y.want || y.sum <= 0 {
		c.note("Correction climatique de %d impossible : la station %s ne couvre que %d jour(s) sur %d.", year, station, y.days, y.want)
		return 0, 0, false, nil
	}
	s := c.a.cfg.HeatingShare[f]
	return (1 - s) + s*c.ref/y.sum, y.sum, true, nil
}

// correct returns the climate correction of fluid f over p, whose consumption (in f's unit) byStation splits
// by station, divided by div; nil (with a note) when it cannot be computed.
func (c *climateCalc) correct(p period, f hv.Fluid, byStation map[string]float64, div float64) (*Climate, error) {
	if !p.whole || p.start.Month() != time.January || p.start.Day() != 1 {
		c.note("Correction climatique : seules les années civiles complètes sont corrigées (%d est incomplète dans la période demandée).", p.start.Year())
		return nil, nil
	}
	var raw, corrected, weighted, plain float64
	stations := sortedKeys(byStation)
	for _, st := range stations {
		e := byStation[st]
		fct, dju, ok, err := c.stationFactor(p, f, st)
		if !ok || err != nil {
			return nil, err
		}
		raw += e
		corrected += e * fct
		weighted += e * dju
		plain += dju
	}
	cl := &Climate{DJURef: c.ref, Corrected: c.a.amount(f, corrected/div)}
	switch {
	case raw > 0:
		cl.DJU = weighted / raw
	case len(stations) > 0:
		cl.DJU = plain / float64(len(stations))
	}
	return cl, nil
}

// RankRequest asks for the buildings of an EPCI ranked by their consumption over a year.
type RankRequest struct {
	EPCI string // SIREN code; empty: the whole département
	// Fluid ranks on one fluid; empty: all energy (electricity, gas in kWh PCS, heat) in kWh.
	Fluid hv.Fluid
	Usage string
	Year  int // calendar year in Europe/Paris
	// Per is m2 (kWh/m²/year, buildings without a surface left out) or none (kWh/year).
	Per Per
	// Climate ranks on the climate-corrected consumption when every site's station covers the year.
	Climate bool
}

// RankRow is one building's year.
type RankRow struct {
	Rank      int     `json:"rank"`
	Site      string  `json:"site"`
	Name      string  `json:"name"`
	Usage     string  `json:"usage,omitempty"`
	Commune   string  `json:"commune"`
	SurfaceM2 float64 `json:"surface_m2,omitempty"`
	// Total is the year's consumption, in kWh (m³ for water).
	Total float64 `json:"total"`
	// Value is what the ranking orders: Total, divided by the surface with Per m2.
	Value float64 `json:"value"`
	// Corrected is Value climate-corrected (Climate).
	Corrected *float64 `json:"corrected,omitempty"`
}

// RankResponse lists the buildings from the most consuming down.
type RankResponse struct {
	EPCI  string    `json:"epci,omitempty"`
	Fluid hv.Fluid  `json:"fluid,omitempty"`
	Year  int       `json:"year"`
	Per   Per       `json:"per,omitempty"`
	Unit  string    `json:"unit"`
	Rows  []RankRow `json:"rows"`
	Notes []string  `json:"notes,omitempty"`
}

// siteTotals sums the rollups of the selection's devices over p per site and fluid: energies in kWh (gas at
// the configured kWh PCS per m³), water in m³. A site is listed with every selected fluid it has a meter of,
// even one that counted nothing. The caller has made the rollups fresh over p.
func (a *Analytics) siteTotals(ix *regIndex, sel selection, p period) map[string]map[hv.Fluid]float64 {
	out := map[string]map[hv.Fluid]float64{}
	r := a.rollups
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, f := range sel.fluids {
		byDev := r.series[FluidMetric(f)]
		for _, di := range sel.devs[f] {
			d := ix.devices[di]
			var v float64
			if s := byDev[d.ID]; s != nil {
				v = s.sum(p.d0, p.d1)
			}
			if f != hv.Water {
				v = *a.amount(f, v).KWh
			}
			if out[d.Site] == nil {
				out[d.Site] = map[hv.Fluid]float64{}
			}
			out[d.Site][f] += v
		}
	}
	return out
}

// Rank ranks the buildings of an EPCI (or the département) by their consumption of a year, most consuming
// first (ties by site id).
func (a *Analytics) Rank(ctx context.Context, req RankRequest) (*RankResponse, error) {
	fluids := []hv.Fluid{hv.Electricity, hv.Gas, hv.Heat}
	switch {
	case req.Fluid != "" && FluidMetric(req.Fluid) == "":
		return nil, fmt.Errorf("rank: fluid %q: %w: want electricity|gas|heat|water or nothing", req.Fluid, hv.ErrInvalid)
	case req.Fluid != "":
		fluids = []hv.Fluid{req.Fluid}
	}
	if req.Per != PerNone && req.Per != PerM2 {
		return nil, fmt.Errorf("rank: per %q: %w: want m2 or nothing", req.Per, hv.ErrInvalid)
	}
	if req.Year < 1970 || req.Year > 2200 {
		return nil, fmt.Errorf("rank: year %d: %w: out of range", req.Year, hv.ErrInvalid)
	}
	ix := a.index()
	scopeName := "departement"
	if req.EPCI != "" {
		scopeName = "epci:" + req.EPCI
	}
	sc, err := ix.scope(scopeName)
	if err != nil {
		return nil, fmt.Errorf("rank: %w", err)
	}
	sel := a.selectDevices(ix, sc, fluids, req.Usage, hv.SiteBuilding, req.Per)
	start := time.Date(req.Year, 1, 1, 0, 0, 0, 0, a.loc)
	p := span(start, start.AddDate(1, 0, 0), true)
	u := "kWh"
	if req.Fluid == hv.Water {
		u = "m3"
	}
	if req.Per == PerM2 {
		u += "/m2"
	}
	resp := &RankResponse{EPCI: req.EPCI, Fluid: req.Fluid, Year: req.Year, Per: req.Per, Unit: u, Rows: []RankRow{}}
	if req.Fluid != "" && len(sel.missing) > 0 { // with every energy, a missing one is normal
		resp.Notes = append(resp.Notes, fmt.Sprintf("Aucun compteur (%s) dans le périmètre.", fluidLabel[req.Fluid]))
	}
	resp.Notes = append(resp.Notes, sel.notes...)
	if a.now().Before(p.end) {
		resp.Notes = append(resp.Notes, fmt.Sprintf("Année %d en cours : consommations partielles.", req.Year))
	}
	if err := a.ensureFresh(ctx, sel.metrics(), p.d0, p.d1); err != nil {
		return nil, fmt.Errorf("rank: %w", err)
	}
	type siteYear struct {
		total, other float64
		heat         map[hv.Fluid]float64 // heating fluids, kWh, to correct
	}
	bySite := map[string]*siteYear{}
	for id, byFluid := range a.siteTotals(ix, sel, p) {
		sy := &siteYear{heat: map[hv.Fluid]float64{}}
		for f, v := range byFluid {
			sy.total += v
			if heating(f) {
				sy.heat[f] += v
			} else {
				sy.other += v
			}
		}
		bySite[id] = sy
	}
	var cl *climateCalc
	if req.Climate {
		cl = a.newClimate(ctx)
		resp.Notes = append(resp.Notes, cl.referenceNote()...)
	}
	for id, sy := range bySite {
		site := ix.sites[ix.site[id]]
		row := RankRow{Site: id, Name: site.Name, Usage: site.Usage, Commune: site.Commune, SurfaceM2: site.SurfaceM2,
			Total: sy.total, Value: sy.total}
		div := 1.0
		if req.Per == PerM2 {
			div = site.SurfaceM2
			row.Value = sy.total / div
		}
		if cl != nil {
			corrected, ok := sy.other, true
			for _, f := range []hv.Fluid{hv.Gas, hv.Heat} {
				e, has := sy.heat[f]
				if !has {
					continue
				}
				fct, _, fine, err := cl.stationFactor(p, f, ix.station[ix.site[id]])
				if err != nil {
					return nil, fmt.Errorf("rank: %w", err)
				}
				ok = ok && fine
				corrected += e * fct
			}
			if ok {
				v := corrected / div
				row.Corrected = &v
			}
		}
		resp.Rows = append(resp.Rows, row)
	}
	if cl != nil {
		resp.Notes = append(resp.Notes, cl.notes...)
	}
	key := func(r RankRow) float64 {
		if r.Corrected != nil {
			return *r.Corrected
		}
		return r.Value
	}
	slices.SortFunc(resp.Rows, func(x, y RankRow) int {
		if c := cmp.Compare(key(y), key(x)); c != 0 {
			return c
		}
		return strings.Compare(x.Site, y.Site)
	})
	for i := range resp.Rows {
		resp.Rows[i].Rank = i + 1
	}
	return resp, nil
}
