package rules

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/yamlnode"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
)

// A rule file (configs/rules/*.yaml) is one YAML document with one key, rules, a list of rules:
//
//	rules:
//	  - name: fuite-eau               # unique, letters, digits, - _ . only
//	    kind: leak                    # one of Kinds()
//	    severity: warning             # critical | warning | info (default warning)
//	    for: 2h                       # how long the condition must hold before the alert fires
//	    keep_firing_for: 6h           # how long a firing alert outlives its condition
//	    summary: "Fuite à {{.SiteName}} : {{fr .Value 2}} m³/h"   # optional text/template (SummaryData)
//	    scope:                        # which devices: ORed within a selector, ANDed across selectors
//	      fluids: [water]
//	      device_kinds: [meter]
//	      site_kinds: [building]
//	      usages: [école, collège]
//	      communes: ["02408"]
//	      epcis: ["200043495"]
//	      sites: [mairie-laon]
//	      devices: [eau-mairie-laon]
//	      site_fluids: [gas, heat]    # sites with a meter of one of these fluids (gas-heated buildings)
//	      exclude: {usages: [piscine]} # the same selectors; what matches is left out
//	    zero_m3h: 0.01                # the kind's own keys, at the same level (see each kind's Config)
//
// Parsing is strict: an unknown key, a key of another kind, a bad value or a scope naming an unknown commune,
// EPCI, site or device is an error naming the file, the rule, the line and the reason.
//
// Scopes are resolved against the registry when the rules are loaded: when the registry changes, load the
// rules again (the holder swaps the new set in, as it does on a rule edit).
//
// Window rules (leak, baseload, overconsumption) judge, at Eval(now), the last complete window before now
// (hour, night, day, weekend or week, in Paris civil time), so every evaluation within a window gives the
// same answer. Streaming rules (threshold, counter, peak, day_burner, lamp_failure, dimming_failure) are
// Observers fed by ingest and judge the newest readings they saw; their state is in memory and refills
// within a reporting interval after a restart (the Manager keeps the alerts).

// maxErrors bounds the problems one load reports, as the registry does.
const maxErrors = 20

// RuleSpec is defined in lifecycle.go: every rule built here carries one (name, severity, for,
// keep_firing_for) for the Manager.

// Specced is implemented by every rule this package builds: its lifecycle spec.
type Specced interface {
	Spec() RuleSpec
}

// CommandedFunc returns the dimming level a lighting controller has been told to run at `at` (by its program
// or an override) and since when that level is in force; ok is false when nothing is known.
type CommandedFunc func(device string, at time.Time) (level float64, since time.Time, ok bool)

// Deps are what some rule kinds need from the running service. A nil dependency makes the kinds that need it
// inactive (they find nothing; RuleSet.Inactive says which and why) rather than failing the load, so a rule
// file can be checked without a running service.
type Deps struct {
	// LastSeen is the time (Unix ms) of a device's newest reading, 0 if never heard: live.State.LastSeen.
	// Needed by silence.
	LastSeen func(device string) int64
	// Commanded is the level a controller was commanded. Needed by dimming_failure; day_burner uses it, when
	// set, to spare lights deliberately commanded on in daylight.
	Commanded CommandedFunc
}

// RuleSet is the rules of one or more files, in file order.
type RuleSet struct {
	Rules []Rule
	// Inactive maps the name of each rule that cannot run (a dependency is missing) to the reason.
	Inactive map[string]string
}

// Specs lists the lifecycle specs of the rules, in order.
func (s *RuleSet) Specs() []RuleSpec {
	out := make([]RuleSpec, 0, len(s.Rules))
	for _, r := range s.Rules {
		if sp, ok := r.(Specced); ok {
			out = append(out, sp.Spec())
		}
	}
	return out
}

// Observers lists the streaming rules: ingest feeds them every stored reading.
func (s *RuleSet) Observers() []Observer {
	var out []Observer
	for _, r := range s.Rules {
		if o, ok := r.(Observer); ok {
			out = append(out, o)
		}
	}
	return out
}

// Rule returns the rule of that name.
func (s *RuleSet) Rule(name string) (Rule, bool) {
	for _, r := range s.Rules {
		if r.Name() == name {
			return r, true
		}
	}
	return nil, false
}

// ConfigError is one problem in a rule file: the file, the rule (`rules[2] (name "x")`), the line and the
// reason. It matches hv.ErrInvalid.
type ConfigError struct {
	File  string
	Entry string
	Line  int
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File + ": ")
	if e.Entry != "" {
		b.WriteString(e.Entry + ": ")
	}
	if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, hv.ErrInvalid) true, so the API can answer 400 to a bad edit.
func (e *ConfigError) Is(target error) bool { return target == hv.ErrInvalid }

// RuleConfig is what every rule kind shares.
type RuleConfig struct {
	Name          string        `yaml:"name"`
	Kind          string        `yaml:"kind"`
	Severity      hv.Severity   `yaml:"severity"`
	For           time.Duration `yaml:"for"`
	KeepFiringFor time.Duration `yaml:"keep_firing_for"`
	// Summary is an optional text/template of the one-line summary, executed with SummaryData; the kind's
	// French summary otherwise.
	Summary     string `yaml:"summary"`
	Description string `yaml:"description"` // free text for the people who maintain the rules
	Scope       Scope  `yaml:"scope"`
}

// Scope selects devices from the registry: each selector is a list ORed within, selectors are ANDed, an empty
// selector matches everything; what Exclude matches is left out.
type Scope struct {
	Fluids      []hv.Fluid      `yaml:"fluids"`
	DeviceKinds []hv.DeviceKind `yaml:"device_kinds"`
	SiteKinds   []hv.SiteKind   `yaml:"site_kinds"`
	Usages      []string        `yaml:"usages"`
	Communes    []string        `yaml:"communes"`
	EPCIs       []string        `yaml:"epcis"`
	Sites       []string        `yaml:"sites"`
	Devices     []string        `yaml:"devices"`
	// SiteFluids keeps the devices of sites that have a meter of one of these fluids: site_fluids [gas, heat]
	// is the buildings heated by gas or the heat network, whose electricity carries no heating.
	SiteFluids []hv.Fluid `yaml:"site_fluids"`
	Exclude    *Scope     `yaml:"exclude"`
}

// matches reports whether a device is in the scope; siteFluids are the fluids metered on each site.
func (s *Scope) matches(d *hv.Device, site *hv.Site, siteFluids map[string][]hv.Fluid) bool {
	if s == nil {
		return false
	}
	if len(s.SiteFluids) > 0 && !slices.ContainsFunc(siteFluids[site.ID], func(f hv.Fluid) bool { return slices.Contains(s.SiteFluids, f) }) {
		return false
	}
	return inSet(s.Fluids, d.Fluid) && inSet(s.DeviceKinds, d.Kind) && inSet(s.SiteKinds, site.Kind) &&
		inSet(s.Usages, site.Usage) && inSet(s.Communes, site.Commune) && inSet(s.EPCIs, site.EPCI) &&
		inSet(s.Sites, site.ID) && inSet(s.Devices, d.ID) && !s.Exclude.matches(d, site, siteFluids)
}

func inSet[T comparable](set []T, v T) bool { return len(set) == 0 || slices.Contains(set, v) }

// check reports what is wrong with the scope's values against the registry, at path (scope, scope.exclude).
func (s *Scope) check(reg *registry.Registry, at string) []fieldError {
	var errs []fieldError
	for _, f := range s.Fluids {
		if !f.Valid() {
			errs = append(errs, fieldError{at + ".fluids", string(f), fmt.Sprintf("fluid %q is not one of electricity, gas, water, heat, weather", f)})
		}
	}
	for _, f := range s.SiteFluids {
		if !f.Valid() {
			errs = append(errs, fieldError{at + ".site_fluids", string(f), fmt.Sprintf("fluid %q is not one of electricity, gas, water, heat, weather", f)})
		}
	}
	for _, k := range s.DeviceKinds {
		switch k {
		case hv.DeviceMeter, hv.DeviceLightingController, hv.DeviceWeather:
		default:
			errs = append(errs, fieldError{at + ".device_kinds", string(k), fmt.Sprintf("device kind %q is not one of meter, lighting_controller, weather", k)})
		}
	}
	for _, k := range s.SiteKinds {
		switch k {
		case hv.SiteBuilding, hv.SiteLightingCabinet, hv.SiteWeatherStation:
		default:
			errs = append(errs, fieldError{at + ".site_kinds", string(k), fmt.Sprintf("site kind %q is not one of building, lighting_cabinet, weather_station", k)})
		}
	}
	t := reg.Territory()
	for _, c := range s.Communes {
		if _, ok := t.Commune(c); !ok {
			errs = append(errs, fieldError{at + ".communes", c, fmt.Sprintf("commune %q is not an INSEE code of the territory", c)})
		}
	}
	for _, e := range s.EPCIs {
		if _, ok := t.EPCI(e); !ok {
			errs = append(errs, fieldError{at + ".epcis", e, fmt.Sprintf("epci %q is not a SIREN code of the territory", e)})
		}
	}
	for _, id := range s.Sites {
		if _, ok := reg.Site(id); !ok {
			errs = append(errs, fieldError{at + ".sites", id, fmt.Sprintf("site %q is not in the registry", id)})
		}
	}
	for _, id := range s.Devices {
		if _, _, ok := reg.Lookup(id); !ok {
			errs = append(errs, fieldError{at + ".devices", id, fmt.Sprintf("device %q is not in the registry", id)})
		}
	}
	if s.Exclude != nil {
		errs = append(errs, s.Exclude.check(reg, at+".exclude")...)
	}
	return errs
}

// fieldError is a problem with one key of a rule (path "scope.fluids"), and the list item at fault when
// there is one, so the loader can point at its line.
type fieldError struct {
	path, item, msg string
}

// fieldErrors is what the constructors return: the loader turns each into a ConfigError with its line.
type fieldErrors []fieldError

func (fe fieldErrors) Error() string {
	msgs := make([]string, len(fe))
	for i, e := range fe {
		msgs[i] = e.path + ": " + e.msg
	}
	return "invalid rule: " + strings.Join(msgs, "; ")
}

func (fe fieldErrors) Is(target error) bool { return target == hv.ErrInvalid }

func errorsOf(errs []fieldError) error {
	if len(errs) == 0 {
		return nil
	}
	return fieldErrors(errs)
}

func ferr(path, format string, args ...any) fieldError {
	return fieldError{path: path, msg: fmt.Sprintf(format, args...)}
}

// target is one device a rule watches, with what its conditions are labelled with.
type target struct {
	dev    *hv.Device
	site   *hv.Site
	labels map[string]string
}

// base is what every rule kind shares: its spec, its summary template and the devices it watches.
type base struct {
	spec    RuleSpec
	kind    string
	summary *template.Template
	reg     *registry.Registry
	targets []target       // sorted by device id
	index   map[string]int // device id → targets
	filter  hv.Query       // label filters for the store, from the scope
}

// Name is the rule's name.
func (b *base) Name() string { return b.spec.Name }

// Spec is the rule's lifecycle spec.
func (b *base) Spec() RuleSpec { return b.spec }

// Kind is the rule's kind.
func (b *base) Kind() string { return b.kind }

// Devices lists the ids of the devices the rule watches.
func (b *base) Devices() []string {
	out := make([]string, len(b.targets))
	for i, t := range b.targets {
		out[i] = t.dev.ID
	}
	return out
}

// newBase validates the common fields and resolves the scope, keeping the devices keep accepts (the kind's
// own restriction: a leak rule watches water meters whatever the scope says).
func newBase(rc RuleConfig, kind string, reg *registry.Registry, keep func(*hv.Device, *hv.Site) bool) (*base, []fieldError) {
	var errs []fieldError
	if reg == nil {
		return nil, []fieldError{ferr("scope", "no registry")}
	}
	if msg := checkName(rc.Name); msg != "" {
		errs = append(errs, fieldError{path: "name", msg: msg})
	}
	sev := rc.Severity
	switch sev {
	case "":
		sev = hv.SeverityWarning
	case hv.SeverityCritical, hv.SeverityWarning, hv.SeverityInfo:
	default:
		errs = append(errs, ferr("severity", "severity %q is not one of critical, warning, info", sev))
	}
	if rc.For < 0 {
		errs = append(errs, ferr("for", "for must not be negative"))
	}
	if rc.KeepFiringFor < 0 {
		errs = append(errs, ferr("keep_firing_for", "keep_firing_for must not be negative"))
	}
	b := &base{
		spec: RuleSpec{Name: rc.Name, Severity: sev, For: rc.For, KeepFiringFor: rc.KeepFiringFor},
		kind: kind, reg: reg, index: map[string]int{},
	}
	if rc.Summary != "" {
		tmpl, err := template.New(rc.Name).Funcs(summaryFuncs).Option("missingkey=error").Parse(rc.Summary)
		if err != nil {
			errs = append(errs, ferr("summary", "%s", strings.TrimPrefix(err.Error(), "template: ")))
		} else {
			b.summary = tmpl
		}
	}
	errs = append(errs, rc.Scope.check(reg, "scope")...)
	if len(errs) > 0 {
		return nil, errs
	}
	siteFluids := map[string][]hv.Fluid{}
	for _, d := range reg.Devices() {
		if d.Fluid != "" && !slices.Contains(siteFluids[d.Site], d.Fluid) {
			siteFluids[d.Site] = append(siteFluids[d.Site], d.Fluid)
		}
	}
	for _, d := range reg.Devices() {
		dev, site, _ := reg.Lookup(d.ID)
		if !rc.Scope.matches(dev, site, siteFluids) || (keep != nil && !keep(dev, site)) {
			continue
		}
		labels := map[string]string{"device": dev.ID, "site": site.ID}
		for k, v := range map[string]string{"commune": site.Commune, "epci": site.EPCI, "fluid": string(dev.Fluid)} {
			if v != "" {
				labels[k] = v
			}
		}
		b.index[dev.ID] = len(b.targets)
		b.targets = append(b.targets, target{dev: dev, site: site, labels: labels})
	}
	s := rc.Scope
	b.filter = hv.Query{Fluids: s.Fluids, Communes: s.Communes, EPCIs: s.EPCIs, Sites: s.Sites, Devices: s.Devices}
	// A few devices are cheaper to name than to filter for: the store then reads their series only.
	if len(b.targets) > 0 && len(b.targets) <= 64 {
		b.filter.Devices = b.Devices()
	}
	return b, nil
}

// checkName returns what is wrong with a rule name, "" if nothing: names key alerts and appear in URLs.
func checkName(name string) string {
	if name == "" {
		return "name is required"
	}
	if len(name) > 128 {
		return "name is longer than 128 bytes"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')) {
			return fmt.Sprintf("name %q: use letters, digits and - _ . only, starting with a letter or digit", name)
		}
	}
	return ""
}

// condition builds a condition about a target with the kind's default summary, or the rule's template.
func (b *base) condition(t *target, value float64, ev Evidence, summary string) Condition {
	return b.conditionLabels(maps.Clone(t.labels), t, value, ev, summary)
}

// conditionLabels is condition with labels of the caller's (a site or a commune rather than a device).
func (b *base) conditionLabels(labels map[string]string, t *target, value float64, ev Evidence, summary string) Condition {
	if b.summary != nil {
		data := SummaryData{Rule: b.spec.Name, Kind: b.kind, Labels: labels, Value: value, Metric: ev.Metric,
			Unit: ev.Metric.Unit(), Baseline: ev.Baseline, Threshold: ev.Threshold, From: ev.From, To: ev.To,
			Default: summary, Device: labels["device"]}
		if t != nil {
			data.Site, data.SiteName, data.Commune, data.EPCI, data.Fluid = t.site.ID, t.site.Name, t.site.Commune, t.site.EPCI, t.dev.Fluid
		} else {
			data.Site, data.Commune, data.EPCI = labels["site"], labels["commune"], labels["epci"]
		}
		if c, ok := b.reg.Territory().Commune(data.Commune); ok {
			data.CommuneName = c.Name
		}
		var sb strings.Builder
		if err := b.summary.Execute(&sb, data); err == nil {
			summary = sb.String()
		} // a template that fails at run time keeps the kind's summary: an alert without text helps nobody
	}
	return Condition{Labels: labels, Value: value, Summary: summary, Evidence: ev}
}

// communeName is the name of an INSEE commune, the code if unknown.
func (b *base) communeName(code string) string {
	if c, ok := b.reg.Territory().Commune(code); ok {
		return c.Name
	}
	return code
}

// SummaryData is what a summary template sees.
type SummaryData struct {
	Rule, Kind                 string
	Device, Site, SiteName     string
	Commune, CommuneName, EPCI string
	Fluid                      hv.Fluid
	Metric                     hv.Metric
	Unit                       string
	Value, Baseline, Threshold float64
	From, To                   time.Time
	Labels                     map[string]string
	Default                    string // the kind's own French summary
}

// summaryFuncs are the helpers of summary templates: fr formats a number the French way with n decimals
// ({{fr .Value 1}} → "1 234,5"), pct a ratio as a percentage, hm and date a time in Paris.
var summaryFuncs = template.FuncMap{
	"fr":   frNum,
	"pct":  func(v float64) string { return frNum(v*100, 0) + " %" },
	"hm":   func(t time.Time) string { return t.In(parisLoc()).Format("15:04") },
	"date": func(t time.Time) string { return t.In(parisLoc()).Format("02/01/2006") },
}

// frNum formats v with dec decimals, a decimal comma and narrow no-break spaces between thousands.
func frNum(v float64, dec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', dec, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteString("," + frac)
	}
	return b.String()
}

// frDuration writes a duration in French: "3 h 20 min", "2 j 4 h", "45 min".
func frDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	days, h, m := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0 && h > 0:
		return fmt.Sprintf("%d j %d h", days, h)
	case days > 0:
		return fmt.Sprintf("%d j", days)
	case h > 0 && m > 0:
		return fmt.Sprintf("%d h %02d min", h, m)
	case h > 0:
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d min", m)
}

func parisLoc() *time.Location { return sun.Paris() }

// Window is the span a window rule aggregates over, aligned on Paris civil time.
type Window string

// Windows of the window rules.
const (
	WindowHour Window = "hour"
	WindowDay  Window = "day"
	WindowWeek Window = "week" // Monday 00:00 to Monday 00:00
)

func (w Window) valid() bool { return w == WindowHour || w == WindowDay || w == WindowWeek }

// lastComplete is the last window of kind w that ends at or before now: Eval at now looks at it, so every
// evaluation within one window sees the same data (late readings aside) and gives the same answer.
func (w Window) lastComplete(now time.Time) (from, to time.Time) {
	p := now.In(parisLoc())
	y, m, d := p.Date()
	switch w {
	case WindowHour:
		to = time.Date(y, m, d, p.Hour(), 0, 0, 0, parisLoc())
		return to.Add(-time.Hour), to
	case WindowWeek:
		wd := (int(p.Weekday()) + 6) % 7 // days since Monday
		to = time.Date(y, m, d-wd, 0, 0, 0, 0, parisLoc())
		return to.AddDate(0, 0, -7), to
	}
	to = time.Date(y, m, d, 0, 0, 0, 0, parisLoc())
	return to.AddDate(0, 0, -1), to
}

// hours is the nominal length of the window in hours (a DST day is still 24 for coverage purposes).
func (w Window) hours() int {
	switch w {
	case WindowHour:
		return 1
	case WindowWeek:
		return 168
	}
	return 24
}

// ClockRange is a daily span of Paris local time, "00:00-05:00"; it wraps past midnight when From > To
// ("22:00-06:00").
type ClockRange struct {
	From, To int // minutes since midnight
}

// ParseClockRange reads "HH:MM-HH:MM".
func ParseClockRange(s string) (ClockRange, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return ClockRange{}, fmt.Errorf("clock range %q: want HH:MM-HH:MM", s)
	}
	from, err1 := parseClock(strings.TrimSpace(a))
	to, err2 := parseClock(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || from == to {
		return ClockRange{}, fmt.Errorf("clock range %q: want HH:MM-HH:MM, two different times of day", s)
	}
	return ClockRange{From: from, To: to}, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * 60, nil
		}
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// UnmarshalYAML reads the "HH:MM-HH:MM" form.
func (c *ClockRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a clock range HH:MM-HH:MM", n.Line)
	}
	r, err := ParseClockRange(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*c = r
	return nil
}

// MarshalYAML writes the "HH:MM-HH:MM" form.
func (c ClockRange) MarshalYAML() (any, error) { return c.String(), nil }

func (c ClockRange) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", c.From/60, c.From%60, c.To/60, c.To%60)
}

// Contains reports whether t (read in Paris) falls in the range.
func (c ClockRange) Contains(t time.Time) bool {
	p := t.In(parisLoc())
	m := p.Hour()*60 + p.Minute()
	if c.From < c.To {
		return m >= c.From && m < c.To
	}
	return m >= c.From || m < c.To
}

// Hours is the length of the range in hours.
func (c ClockRange) Hours() float64 {
	d := c.To - c.From
	if d < 0 {
		d += 24 * 60
	}
	return float64(d) / 60
}

// lastOccurrence is the last [from, to) of the range that ends at or before now, in Paris civil time.
func (c ClockRange) lastOccurrence(now time.Time) (from, to time.Time) {
	p := now.In(parisLoc())
	y, m, d := p.Date()
	to = time.Date(y, m, d, c.To/60, c.To%60, 0, 0, parisLoc())
	if to.After(now) {
		to = time.Date(y, m, d-1, c.To/60, c.To%60, 0, 0, parisLoc())
	}
	ty, tm, td := to.Date()
	from = time.Date(ty, tm, td, c.From/60, c.From%60, 0, 0, parisLoc())
	if !from.Before(to) {
		from = time.Date(ty, tm, td-1, c.From/60, c.From%60, 0, 0, parisLoc())
	}
	return from, to
}

// series is the points of one target of a rule.
type series struct {
	t      *target
	points []hv.Point
}

// query reads metric for the rule's targets over [from, to), aggregated in windows of every with agg (raw
// when every is 0), and returns the series of the targets that have points, in target order.
func (b *base) query(ctx context.Context, q Querier, metric hv.Metric, from, to time.Time, every time.Duration, agg hv.Agg) ([]series, error) {
	if len(b.targets) == 0 || !to.After(from) {
		return nil, nil
	}
	hq := b.filter
	hq.Metric, hq.From, hq.To = metric, from.UnixMilli(), to.UnixMilli()
	if every > 0 {
		hq.Every, hq.Agg = every.Milliseconds(), agg
	}
	ss, err := q.Query(ctx, hq)
	if err != nil {
		return nil, fmt.Errorf("rule %s: query %s: %w", b.spec.Name, metric, err)
	}
	out := make([]series, 0, len(ss))
	for _, s := range ss {
		i, ok := b.index[s.Device]
		if !ok || len(s.Points) == 0 {
			continue
		}
		out = append(out, series{t: &b.targets[i], points: s.Points})
	}
	slices.SortFunc(out, func(x, y series) int { return strings.Compare(x.t.dev.ID, y.t.dev.ID) })
	return out, nil
}

// sumIn sums the points with a time in [from, to) and counts them.
func sumIn(points []hv.Point, from, to time.Time) (sum float64, n int) {
	f, t := from.UnixMilli(), to.UnixMilli()
	i, _ := slices.BinarySearchFunc(points, f, func(p hv.Point, t int64) int { return cmpInt(p.Time, t) })
	for ; i < len(points) && points[i].Time < t; i++ {
		sum += points[i].Value
		n++
	}
	return sum, n
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// kindDef is how the loader builds one kind: fresh defaults to decode onto, and the constructor.
type kindDef struct {
	defaults func() any // a pointer to the kind's Config holding its defaults
	build    func(rc RuleConfig, cfg any, reg *registry.Registry, deps Deps) (Rule, string, error)
}

// kindOf adapts a typed constructor. inactive says why the rule cannot run with deps ("" when it can).
func kindOf[C any](defaults func() C, build func(RuleConfig, C, *registry.Registry, Deps) (Rule, error),
	inactive func(Deps) string) kindDef {
	return kindDef{
		defaults: func() any { c := defaults(); return &c },
		build: func(rc RuleConfig, cfg any, reg *registry.Registry, deps Deps) (Rule, string, error) {
			r, err := build(rc, *cfg.(*C), reg, deps)
			why := ""
			if inactive != nil {
				why = inactive(deps)
			}
			return r, why, err
		},
	}
}

// ruleKinds are the rule kinds a file may name.
var ruleKinds = map[string]kindDef{
	KindThreshold: kindOf(DefaultThresholdConfig, func(rc RuleConfig, c ThresholdConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewThreshold(rc, c, reg)
	}, nil),
	KindCounter: kindOf(DefaultCounterConfig, func(rc RuleConfig, c CounterConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewCounter(rc, c, reg)
	}, nil),
	KindSilence: kindOf(DefaultSilenceConfig, func(rc RuleConfig, c SilenceConfig, reg *registry.Registry, d Deps) (Rule, error) {
		return NewSilence(rc, c, reg, d.LastSeen)
	}, func(d Deps) string {
		if d.LastSeen == nil {
			return "silence needs the live last-seen times (Deps.LastSeen)"
		}
		return ""
	}),
	KindLeak: kindOf(DefaultLeakConfig, func(rc RuleConfig, c LeakConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewLeak(rc, c, reg)
	}, nil),
	KindBaseload: kindOf(DefaultBaseloadConfig, func(rc RuleConfig, c BaseloadConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewBaseload(rc, c, reg)
	}, nil),
	KindOverconsumption: kindOf(DefaultOverconsumptionConfig, func(rc RuleConfig, c OverconsumptionConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewOverconsumption(rc, c, reg)
	}, nil),
	KindPeak: kindOf(DefaultPeakConfig, func(rc RuleConfig, c PeakConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewPeak(rc, c, reg)
	}, nil),
	KindDayBurner: kindOf(DefaultDayBurnerConfig, func(rc RuleConfig, c DayBurnerConfig, reg *registry.Registry, d Deps) (Rule, error) {
		return NewDayBurner(rc, c, reg, d.Commanded)
	}, nil),
	KindLampFailure: kindOf(DefaultLampFailureConfig, func(rc RuleConfig, c LampFailureConfig, reg *registry.Registry, _ Deps) (Rule, error) {
		return NewLampFailure(rc, c, reg)
	}, nil),
	KindDimmingFailure: kindOf(DefaultDimmingFailureConfig, func(rc RuleConfig, c DimmingFailureConfig, reg *registry.Registry, d Deps) (Rule, error) {
		return NewDimmingFailure(rc, c, reg, d.Commanded)
	}, func(d Deps) string {
		if d.Commanded == nil {
			return "dimming_failure needs the commanded levels (Deps.Commanded)"
		}
		return ""
	}),
}

// Kinds lists the rule kinds, sorted.
func Kinds() []string { return slices.Sorted(maps.Keys(ruleKinds)) }

// LoadRules parses one rule file (filename is what errors call it) against the registry. The error joins
// every problem found, up to 20, each a *ConfigError naming the file, the rule, the line and the reason.
func LoadRules(data []byte, filename string, reg *registry.Registry, deps Deps) (*RuleSet, error) {
	c := &errCollector{yamlnode.Collector{Max: maxErrors}}
	set := &RuleSet{Inactive: map[string]string{}}
	loadInto(set, c, data, filename, reg, deps, map[string]string{})
	if err := c.err(); err != nil {
		return nil, err
	}
	return set, nil
}

// LoadRulesFS parses every *.yaml file at the top of fsys (configs.Rules, os.DirFS("configs/rules")) in name
// order as one rule set: names are unique across files.
func LoadRulesFS(fsys fs.FS, reg *registry.Registry, deps Deps) (*RuleSet, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	slices.Sort(names)
	c := &errCollector{yamlnode.Collector{Max: maxErrors}}
	set := &RuleSet{Inactive: map[string]string{}}
	seen := map[string]string{}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load rules: %w", err)
		}
		loadInto(set, c, data, path.Base(name), reg, deps, seen)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return set, nil
}

func loadInto(set *RuleSet, c *errCollector, data []byte, file string, reg *registry.Registry, deps Deps, seen map[string]string) {
	if reg == nil {
		c.add(file, "", 0, "no registry to resolve scopes against")
		return
	}
	top, line, problem := yamlnode.Top(data, "one key, rules")
	if problem != "" {
		c.add(file, "", line, problem)
	}
	if top == nil {
		return
	}
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		switch {
		case k.Value != "rules":
			c.add(file, "", k.Line, fmt.Sprintf("unknown key %q (want rules)", k.Value))
		case list != nil:
			c.add(file, "", k.Line, "rules defined twice")
		default:
			list = top.Content[i+1]
		}
	}
	if list == nil || yamlnode.IsNull(list) {
		return
	}
	if list.Kind != yaml.SequenceNode {
		c.add(file, "rules", list.Line, "must be a list")
		return
	}
	for i, item := range list.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		entry := fmt.Sprintf("rules[%d]", i)
		name := yamlField(item, "name")
		if name != "" {
			entry += fmt.Sprintf(" (name %q)", name)
		}
		if item.Kind != yaml.MappingNode {
			c.add(file, entry, item.Line, "must be a mapping")
			continue
		}
		r, why := loadRule(c, file, entry, item, reg, deps)
		if r == nil {
			continue
		}
		if first, dup := seen[name]; dup {
			c.add(file, entry, keyLine(item, "name"), "duplicate rule name, first defined at "+first)
			continue
		}
		seen[name] = fmt.Sprintf("%s: line %d", file, item.Line)
		set.Rules = append(set.Rules, r)
		if why != "" {
			set.Inactive[name] = why
		}
	}
}

var ruleConfigType = reflect.TypeFor[RuleConfig]()

// loadRule decodes and builds one rule, reporting problems to c; nil when the rule is unusable.
func loadRule(c *errCollector, file, entry string, item *yaml.Node, reg *registry.Registry, deps Deps) (Rule, string) {
	n := c.Count()
	kind := yamlField(item, "kind")
	def, known := ruleKinds[kind]
	switch {
	case kind == "":
		c.add(file, entry, item.Line, "kind is required (one of "+strings.Join(Kinds(), ", ")+")")
	case !known:
		c.add(file, entry, keyLine(item, "kind"), fmt.Sprintf("kind %q is not one of %s", kind, strings.Join(Kinds(), ", ")))
	}
	var cfg any
	var cfgType reflect.Type
	if known {
		cfg = def.defaults()
		cfgType = reflect.TypeOf(cfg).Elem()
	}
	// Unknown keys: against the common fields and, once the kind is known, the kind's own.
	common := yamlnode.Fields(ruleConfigType)
	keys := mappingKeys(item)
	for i := 0; i+1 < len(keys); i += 2 {
		k := keys[i]
		if ft, ok := common[k.Value]; ok {
			checkKeys(c, file, entry, k.Value, keys[i+1], ft)
			continue
		}
		if cfgType == nil {
			continue // the kind's error says it all
		}
		if ft, ok := yamlnode.Fields(cfgType)[k.Value]; ok {
			checkKeys(c, file, entry, k.Value, keys[i+1], ft)
			continue
		}
		c.add(file, entry, k.Line, fmt.Sprintf("unknown key %q for kind %s (its keys: %s)", k.Value, kind,
			strings.Join(slices.Sorted(maps.Keys(yamlnode.Fields(cfgType))), ", ")))
	}
	if c.Count() > n {
		return nil, ""
	}
	var rc RuleConfig
	if err := item.Decode(&rc); err != nil {
		c.add(file, entry, 0, yamlnode.ErrorText(err))
		return nil, ""
	}
	if err := item.Decode(cfg); err != nil {
		c.add(file, entry, 0, yamlnode.ErrorText(err))
		return nil, ""
	}
	r, why, err := def.build(rc, cfg, reg, deps)
	if err != nil {
		var fe fieldErrors
		if !errors.As(err, &fe) {
			c.add(file, entry, item.Line, err.Error())
			return nil, ""
		}
		for _, e := range fe {
			c.add(file, entry, lineOf(item, e.path, e.item), e.msg)
		}
		return nil, ""
	}
	return r, why
}

// mappingKeys lists the key and value nodes of a mapping with its merge keys (`<<: *defaults`, a list of
// them) expanded, so the keys a rule takes from a shared anchor are checked too.
func mappingKeys(n *yaml.Node) []*yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" {
			out = append(out, k, v)
			continue
		}
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind == yaml.SequenceNode {
			for _, m := range v.Content {
				out = append(out, mappingKeys(m)...)
			}
		} else {
			out = append(out, mappingKeys(v)...)
		}
	}
	return out
}

// lineOf is the line of the value at path ("scope.fluids") in a rule, of the list item equal to item when
// given, else of the nearest enclosing key that exists, else of the rule itself.
func lineOf(n *yaml.Node, p, item string) int {
	line := n.Line
	cur := n
	for _, key := range strings.Split(p, ".") {
		if cur.Kind == yaml.AliasNode && cur.Alias != nil {
			cur = cur.Alias
		}
		if cur.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(cur.Content); i += 2 {
			if cur.Content[i].Value == key {
				line = cur.Content[i].Line
				next = cur.Content[i+1]
			}
		}
		if next == nil {
			return line
		}
		cur = next
	}
	if item != "" && cur.Kind == yaml.SequenceNode {
		for _, it := range cur.Content {
			if it.Value == item {
				return it.Line
			}
		}
	}
	return line
}

// keyLine is the line of key in a mapping, the mapping's own when absent.
func keyLine(n *yaml.Node, key string) int { return lineOf(n, key, "") }

// checkKeys reports mapping keys that match no yaml tag of the Go type the node decodes into, descending
// into nested structs (scope, scope.exclude).
func checkKeys(c *errCollector, file, entry, at string, n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return // a type mismatch is the decoder's to report
	}
	if _, custom := reflect.PointerTo(t).MethodByName("UnmarshalYAML"); custom {
		return
	}
	fields := yamlnode.Fields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			c.add(file, entry, k.Line, fmt.Sprintf("unknown key %q", at+"."+k.Value))
			continue
		}
		checkKeys(c, file, entry, at+"."+k.Value, n.Content[i+1], ft)
	}
}

// yamlField returns the scalar value of key in a mapping node, "" if absent; a key of the mapping itself wins
// over one merged in (`<<: *defaults`), as in the decoder.
func yamlField(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag != "!!merge" && n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	keys := mappingKeys(n)
	for i := 0; i+1 < len(keys); i += 2 {
		if keys[i].Value == key && keys[i+1].Kind == yaml.ScalarNode {
			return keys[i+1].Value
		}
	}
	return ""
}

// errCollector gathers problems up to maxErrors.
type errCollector struct{ yamlnode.Collector }

func (c *errCollector) add(file, entry string, line int, msg string) {
	c.Add(&ConfigError{File: file, Entry: entry, Line: line, Msg: msg})
}

func (c *errCollector) err() error { return c.Err() }

// observe calls fn under mu for each reading of rs that is one of metrics and of a device the rule watches,
// with the device's target index: the loop every streaming kind shares. The lock is taken at the first such
// reading only, so a batch with nothing for the rule costs a scan and no lock.
func (b *base) observe(mu *sync.Mutex, rs []hv.Reading, metrics []hv.Metric, fn func(idx int, rd *hv.Reading)) {
	locked := false
	for i := range rs {
		rd := &rs[i]
		if !slices.Contains(metrics, rd.Metric) {
			continue
		}
		idx, ok := b.index[rd.Device]
		if !ok {
			continue
		}
		if !locked {
			mu.Lock()
			locked = true
		}
		fn(idx, rd)
	}
	if locked {
		mu.Unlock()
	}
}
