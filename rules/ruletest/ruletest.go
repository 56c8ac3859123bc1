// Package ruletest runs unit tests of alerting rules, `hyperviseur rules test FILE...`, as `promtool test
// rules` does for Prometheus: a test file gives input series and the alerts expected to fire at given times,
// and the rules run on simulated time the way the service runs them.
//
// # Test file
//
// One YAML document, parsed strictly: an unknown key, a bad value, an unknown device or rule is an error
// naming the file and the line.
//
//	rule_files: [../configs/rules/default.yaml, extra.yaml]  # relative to the test file; globs allowed
//	# rules:                        # or inline rules, a rule file's document (exclusive with rule_files):
//	#   rules:
//	#     - {name: x, kind: threshold, metric: power_w, above: 5000}
//	#                               # neither: the embedded default set (configs/rules)
//	registry: registry.yaml         # a registry file (relative to the test file), or an inline mapping with
//	                                # sites, devices, profiles as in a registry file; omitted: the embedded
//	                                # demo registry (configs/registry.yaml)
//	start: 2027-01-11T00:00:00+01:00  # RFC 3339; required here or in every test
//	interval: 10m                   # default spacing of input samples; default evaluation_interval
//	evaluation_interval: 1m         # the engine's evaluation step; default 1m
//	tests:
//	  - name: fuite d'eau de la mairie
//	    start: 2027-01-16T00:00:00+01:00  # optional, overrides the file's
//	    interval: 1h                # optional, overrides the file's
//	    input_series:
//	      - device: eau-mairie      # a device of the registry
//	        metric: volume_m3       # a storable metric: canonical, a _delta series or counter_event
//	        values: "100+0.3x26"    # expanding notation, below
//	        interval: 1h            # optional, overrides the test's
//	    alert_eval:
//	      - at: 26h                 # offset from start, a multiple of evaluation_interval
//	        alerts:                 # exactly the alerts firing then, as a set; `alerts: []`: none
//	          - rule: fuite-eau
//	            labels: {device: eau-mairie}  # a subset of the alert's labels
//	            severity: warning   # optional
//
// Values use promtool's expanding notation, tokens separated by spaces: a number; a+bxN and a-bxN (N+1
// values: a, a±b, …, a±N·b); axN (a, N+1 times); _ (no sample at that step); _xN (N steps without a
// sample). The i-th value is at start + i × interval. There are no stale markers: a series just stops.
//
// `alerts` must be given (`alerts: []` asserts that nothing fires) so a forgotten list is not read as "no
// alert". Each expected alert must match a firing alert of its own (same rule, its labels a subset of the
// alert's, the same severity when given) and every firing alert must be matched. Pending alerts are not
// firing; alerts silenced or suppressed by a communication-loss alert still are (they are only not
// notified).
//
// # Execution
//
// Each test runs on its own: a fresh embedded TSDB (store/tsdb) and alert store (rules.OpenSQLite) in a
// temporary directory, the rules loaded afresh (streaming rules start empty), a Manager and an Engine wired
// as `serve` wires them: the silence rules suppress the alerts beneath them, the registry gives the
// topology, nothing is notified.
//
// Readings carry the site, commune, EPCI and fluid of their device from the registry, as ingest labels them;
// a cumulative index also gets its `<metric>_delta` series and its counter_event readings derived by
// ingest.Counters, with the device's register width and maximum power, as the service stores them.
//
// Simulated time walks from start to the last `at` by evaluation_interval (the service evaluates on multiples
// of its interval: a start on such a multiple, a whole hour say, gives the same evaluation times). At each step the readings at or
// before it not yet seen are written to the store, fed to the streaming rules (Engine.Observe) and count as
// heard for the silence rules (their last-seen time); then every rule is evaluated (Engine.EvalAll). At each
// `at`, the firing alerts are compared with the expected ones. A rule whose evaluation fails fails the test.
// Nothing reads the wall clock.
//
// The dependencies a test cannot give leave their rules inactive, as in `serve` today: dimming_failure
// (commanded levels); day_burner then spares no light. Expecting an alert of an inactive rule is an error.
package ruletest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/internal/yamlnode"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// Bounds that keep a typo (10000x1000000, at: 100000h) from filling the memory or running for hours.
const (
	maxValues = 1_000_000 // samples of one series
	maxSteps  = 1_000_000 // evaluation steps of one test
	maxErrors = 20        // problems reported per file
)

// RunTests runs the tests of one file and writes a report to out, as promtool does: "Unit testing: FILE",
// then "  SUCCESS", or "  FAILED:" and, for each failing evaluation, the test, the time, and the expected and
// firing alerts. ok is false when an expectation failed; err is set when the file cannot be run (a syntax or
// configuration error, a rule file or registry that does not load, a store that fails), and is not written to
// out.
func RunTests(ctx context.Context, path string, out io.Writer) (ok bool, err error) {
	fmt.Fprintf(out, "Unit testing: %s\n", path)
	s, err := load(path)
	if err != nil {
		return false, err
	}
	var failed []failure
	for i := range s.tests {
		tc := &s.tests[i]
		fails, err := s.run(ctx, tc)
		if err != nil {
			return false, fmt.Errorf("%s: %s: %w", path, tc.title(), err)
		}
		failed = append(failed, fails...)
	}
	if len(failed) == 0 {
		fmt.Fprintln(out, "  SUCCESS")
		return true, nil
	}
	fmt.Fprintln(out, "  FAILED:")
	for i := range failed {
		failed[i].write(out)
	}
	return false, nil
}

// ConfigError is one problem in a test file, with its line. It matches hv.ErrInvalid.
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Is makes errors.Is(err, hv.ErrInvalid) true.
func (e *ConfigError) Is(target error) bool { return target == hv.ErrInvalid }

// fileConfig is the YAML of a test file.
type fileConfig struct {
	RuleFiles          []string      `yaml:"rule_files"`
	Rules              yaml.Node     `yaml:"rules"`
	Registry           yaml.Node     `yaml:"registry"`
	Start              timestamp     `yaml:"start"`
	Interval           time.Duration `yaml:"interval"`
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	Tests              []testConfig  `yaml:"tests"`
}

type testConfig struct {
	Name        string         `yaml:"name"`
	Start       timestamp      `yaml:"start"`
	Interval    time.Duration  `yaml:"interval"`
	InputSeries []seriesConfig `yaml:"input_series"`
	AlertEval   []evalConfig   `yaml:"alert_eval"`
	line        int
}

type seriesConfig struct {
	Device   string        `yaml:"device"`
	Metric   hv.Metric     `yaml:"metric"`
	Values   string        `yaml:"values"`
	Interval time.Duration `yaml:"interval"`
	line     int
}

type evalConfig struct {
	At        time.Duration `yaml:"at"`
	Alerts    []expAlert    `yaml:"alerts"`
	line      int
	hasAlerts bool
}

// expAlert is an expected alert.
type expAlert struct {
	Rule     string            `yaml:"rule"`
	Labels   map[string]string `yaml:"labels"`
	Severity hv.Severity       `yaml:"severity"`
	line     int
}

// The decoders below keep each entry's line for the errors found after decoding.

func (t *testConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain testConfig
	t.line = n.Line
	return n.Decode((*plain)(t))
}

func (s *seriesConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain seriesConfig
	s.line = n.Line
	return n.Decode((*plain)(s))
}

func (e *evalConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain evalConfig
	e.line = n.Line
	for _, k := range keysOf(n) {
		e.hasAlerts = e.hasAlerts || k.Value == "alerts"
	}
	return n.Decode((*plain)(e))
}

func (a *expAlert) UnmarshalYAML(n *yaml.Node) error {
	type plain expAlert
	a.line = n.Line
	return n.Decode((*plain)(a))
}

// timestamp is an RFC 3339 time with its line.
type timestamp struct {
	t    time.Time
	line int
}

func (ts *timestamp) UnmarshalYAML(n *yaml.Node) error {
	t, err := time.Parse(time.RFC3339, n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: start %q is not an RFC 3339 time (2027-01-11T00:00:00+01:00)", n.Line, n.Value)}}
	}
	ts.t, ts.line = t, n.Line
	return nil
}

// suite is a loaded test file.
type suite struct {
	path  string
	reg   *registry.Registry
	srcs  []ruleSource // nil: the embedded default set
	every time.Duration
	tests []testCase
}

type ruleSource struct {
	name string
	data []byte
}

type testCase struct {
	name   string
	index  int
	start  time.Time
	series []series
	evals  []eval // sorted by at
}

func (tc *testCase) title() string {
	if tc.name == "" {
		return fmt.Sprintf("tests[%d]", tc.index)
	}
	return fmt.Sprintf("test %q", tc.name)
}

type series struct {
	dev      *hv.Device
	site     *hv.Site
	metric   hv.Metric
	interval time.Duration
	points   []point
}

// point is one value of a series; a gap is a step without a sample.
type point struct {
	v   float64
	gap bool
}

type eval struct {
	at     time.Duration
	alerts []expAlert
}

// collector gathers the problems of a file, up to maxErrors.
type collector struct {
	file string
	errs []error
	n    int
}

func (c *collector) add(line int, format string, args ...any) {
	c.n++
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, &ConfigError{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
}

func (c *collector) err() error {
	if c.n > len(c.errs) {
		return errors.Join(append(c.errs, fmt.Errorf("… and %d more problems", c.n-len(c.errs)))...)
	}
	return errors.Join(c.errs...)
}

// load parses and checks a test file, and loads its registry and rules.
func load(path string) (*suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules test: %w", err)
	}
	c := &collector{file: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			c.add(0, "empty file: want rule_files or rules, registry, start and tests")
			return nil, c.err()
		}
		c.add(0, "%s", yamlnode.ErrorText(err))
		return nil, c.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		c.add(extra.Line, "more than one YAML document: keep one per file")
		return nil, c.err()
	}
	top := &root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind != yaml.MappingNode {
		c.add(top.Line, "the document must be a mapping (rule_files, registry, start, tests…)")
		return nil, c.err()
	}
	checkKeys(c, top, reflect.TypeFor[fileConfig](), "")
	if c.n > 0 {
		return nil, c.err()
	}
	var fc fileConfig
	if err := top.Decode(&fc); err != nil {
		c.add(0, "%s", yamlnode.ErrorText(err))
		return nil, c.err()
	}

	s := &suite{path: path, every: fc.EvaluationInterval}
	dir := filepath.Dir(path)
	if s.every == 0 {
		s.every = time.Minute
	}
	if s.every < 0 {
		c.add(keyLine(top, "evaluation_interval"), "evaluation_interval must be positive")
	}
	if fc.Interval < 0 {
		c.add(keyLine(top, "interval"), "interval must be positive")
	}
	s.reg = loadRegistry(c, data, top, dir)
	s.srcs = ruleSources(c, data, top, dir, fc.RuleFiles)
	if len(fc.Tests) == 0 {
		c.add(keyLine(top, "tests"), "no tests")
	}
	if c.n > 0 {
		return nil, c.err()
	}
	// A first load checks the rules and says which can run, for the expected alerts to be checked against.
	set, err := s.loadRules(rules.Deps{LastSeen: func(string) int64 { return 0 }})
	if err != nil {
		return nil, err
	}
	for i := range fc.Tests {
		if tc, ok := s.testCase(c, &fc, i, set); ok {
			s.tests = append(s.tests, tc)
		}
	}
	if c.n > 0 {
		return nil, c.err()
	}
	return s, nil
}

// loadRegistry loads the registry the file names, or the inline one, or the embedded demo registry.
func loadRegistry(c *collector, data []byte, top *yaml.Node, dir string) *registry.Registry {
	t, err := registry.DefaultTerritory()
	if err != nil {
		c.add(0, "%v", err)
		return nil
	}
	key, val, next := field(top, "registry")
	var reg *registry.Registry
	switch {
	case val == nil || yamlnode.IsNull(val):
		reg, err = registry.LoadBytes(t, "configs/registry.yaml (embedded)", configs.DemoRegistry)
	case val.Kind == yaml.ScalarNode:
		reg, err = registry.Load(t, relative(dir, val.Value))
	case val.Kind == yaml.MappingNode:
		reg, err = registry.LoadBytes(t, c.file, embedded(data, val, next))
	default:
		c.add(key.Line, "registry must be a file name or a registry mapping (sites, devices)")
		return nil
	}
	if err != nil {
		c.add(key.Line, "registry: %v", err)
		return nil
	}
	return reg
}

// ruleSources reads the rule files the file names, or keeps its inline rules; nil for the embedded set.
func ruleSources(c *collector, data []byte, top *yaml.Node, dir string, files []string) []ruleSource {
	key, val, next := field(top, "rules")
	inline := val != nil && !yamlnode.IsNull(val)
	switch {
	case inline && len(files) > 0:
		c.add(key.Line, "give rule_files or rules, not both")
		return nil
	case inline && val.Kind != yaml.MappingNode:
		c.add(key.Line, "rules must be a rule file's mapping (rules: [...])")
		return nil
	case inline:
		return []ruleSource{{name: c.file, data: embedded(data, val, next)}}
	case len(files) == 0:
		return nil
	}
	line := keyLine(top, "rule_files")
	var out []ruleSource
	for _, f := range files {
		p := relative(dir, f)
		names := []string{p}
		if strings.ContainsAny(f, "*?[") {
			var err error
			if names, err = filepath.Glob(p); err != nil || len(names) == 0 {
				c.add(line, "rule_files: %q matches no file", f)
				continue
			}
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				c.add(line, "rule_files: %v", err)
				continue
			}
			out = append(out, ruleSource{name: name, data: b})
		}
	}
	if out == nil {
		out = []ruleSource{} // rule files were named: never fall back to the embedded set
	}
	return out
}

func relative(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// loadRules builds the rule set, afresh: streaming rules keep state, so each test loads its own.
func (s *suite) loadRules(deps rules.Deps) (*rules.RuleSet, error) {
	if s.srcs == nil {
		return rules.LoadRulesFS(configs.Rules(), s.reg, deps)
	}
	all := &rules.RuleSet{Inactive: map[string]string{}}
	where := map[string]string{}
	var errs []error
	for _, src := range s.srcs {
		set, err := rules.LoadRules(src.data, src.name, s.reg, deps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range set.Rules {
			if prev, dup := where[r.Name()]; dup {
				errs = append(errs, fmt.Errorf("%s: rule %q: %w: already defined in %s", src.name, r.Name(), hv.ErrInvalid, prev))
				continue
			}
			where[r.Name()] = src.name
			all.Rules = append(all.Rules, r)
		}
		maps.Copy(all.Inactive, set.Inactive)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return all, nil
}

// testCase checks one test of the file against the registry and the rule set.
func (s *suite) testCase(c *collector, fc *fileConfig, i int, set *rules.RuleSet) (testCase, bool) {
	tcf := &fc.Tests[i]
	n := c.n
	tc := testCase{name: tcf.Name, index: i, start: cmp.Or(tcf.Start.t, fc.Start.t)}
	at := fmt.Sprintf("tests[%d]", i)
	if tc.start.IsZero() {
		c.add(tcf.line, "%s: no start (give it in the test or at the top of the file)", at)
	}
	interval := cmp.Or(tcf.Interval, fc.Interval, s.every)
	if tcf.Interval < 0 {
		c.add(tcf.line, "%s: interval must be positive", at)
	}
	if len(tcf.InputSeries) == 0 {
		c.add(tcf.line, "%s: no input_series", at)
	}
	type key struct {
		device string
		metric hv.Metric
	}
	seen := map[key]int{}
	for j := range tcf.InputSeries {
		sc := &tcf.InputSeries[j]
		where := fmt.Sprintf("%s.input_series[%d]", at, j)
		dev, site, known := s.reg.Lookup(sc.Device)
		switch {
		case sc.Device == "":
			c.add(sc.line, "%s: device is required", where)
		case !known:
			c.add(sc.line, "%s: device %q is not in the registry", where, sc.Device)
		}
		switch {
		case sc.Metric == "":
			c.add(sc.line, "%s: metric is required", where)
		case !sc.Metric.Known():
			c.add(sc.line, "%s: metric %q is not a canonical metric, a delta series nor counter_event", where, sc.Metric)
		}
		if prev, dup := seen[key{sc.Device, sc.Metric}]; dup {
			c.add(sc.line, "%s: %s of %s already given at line %d", where, sc.Metric, sc.Device, prev)
		}
		seen[key{sc.Device, sc.Metric}] = sc.line
		if idx, ok := sc.Metric.DeltaOf(); ok {
			if prev, both := seen[key{sc.Device, idx}]; both {
				c.add(sc.line, "%s: %s is derived from the %s series given at line %d: give one of them", where, sc.Metric, idx, prev)
			}
		} else if sc.Metric.Cumulative() {
			if prev, both := seen[key{sc.Device, sc.Metric.Delta()}]; both {
				c.add(sc.line, "%s: %s derives the %s series given at line %d: give one of them", where, sc.Metric, sc.Metric.Delta(), prev)
			}
			if prev, both := seen[key{sc.Device, hv.CounterEvent}]; both {
				c.add(sc.line, "%s: %s derives the counter_event series given at line %d: give one of them", where, sc.Metric, prev)
			}
		}
		if sc.Interval < 0 {
			c.add(sc.line, "%s: interval must be positive", where)
		}
		points, err := expand(sc.Values)
		if err != nil {
			c.add(sc.line, "%s: values: %v", where, err)
		}
		if known {
			tc.series = append(tc.series, series{dev: dev, site: site, metric: sc.Metric, interval: cmp.Or(sc.Interval, interval), points: points})
		}
	}
	if len(tcf.AlertEval) == 0 {
		c.add(tcf.line, "%s: no alert_eval: the test would check nothing", at)
	}
	for j := range tcf.AlertEval {
		ec := &tcf.AlertEval[j]
		where := fmt.Sprintf("%s.alert_eval[%d]", at, j)
		switch {
		case ec.At < 0:
			c.add(ec.line, "%s: at must not be negative", where)
		case s.every > 0 && ec.At%s.every != 0:
			c.add(ec.line, "%s: at %s is not a multiple of evaluation_interval %s", where, fmtOffset(ec.At), fmtOffset(s.every))
		case s.every > 0 && ec.At/s.every > maxSteps:
			c.add(ec.line, "%s: at %s is more than %d evaluations after start: raise evaluation_interval", where, fmtOffset(ec.At), maxSteps)
		}
		if !ec.hasAlerts {
			c.add(ec.line, "%s: alerts is required (alerts: [] asserts that nothing fires)", where)
		}
		for k := range ec.Alerts {
			a := &ec.Alerts[k]
			if a.Rule == "" {
				c.add(a.line, "%s.alerts[%d]: rule is required", where, k)
			} else if _, ok := set.Rule(a.Rule); !ok {
				c.add(a.line, "%s.alerts[%d]: rule %q is not in the rule set", where, k, a.Rule)
			} else if why, inactive := set.Inactive[a.Rule]; inactive {
				c.add(a.line, "%s.alerts[%d]: rule %q cannot run in a test: %s", where, k, a.Rule, why)
			}
			switch a.Severity {
			case "", hv.SeverityCritical, hv.SeverityWarning, hv.SeverityInfo:
			default:
				c.add(a.line, "%s.alerts[%d]: severity %q is not one of critical, warning, info", where, k, a.Severity)
			}
		}
		tc.evals = append(tc.evals, eval{at: ec.At, alerts: ec.Alerts})
	}
	slices.SortStableFunc(tc.evals, func(a, b eval) int { return cmp.Compare(a.at, b.at) })
	return tc, c.n == n
}

// expand parses promtool's expanding notation.
func expand(values string) ([]point, error) {
	var out []point
	for _, tok := range strings.Fields(values) {
		if tok == "stale" {
			return nil, errors.New(`"stale": there are no stale markers, a series just stops (_ is a missing sample)`)
		}
		if tok == "_" {
			out = append(out, point{gap: true})
			continue
		}
		v, err := parseValue(tok)
		base, count, repeated := strings.Cut(tok, "x")
		if err == nil || !repeated {
			if err != nil {
				return nil, err
			}
			out = append(out, point{v: v})
			continue
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a number, nor a+bxN, a-bxN, axN or _xN (N a whole number)", tok)
		}
		if len(out)+n+1 > maxValues {
			return nil, fmt.Errorf("more than %d values", maxValues)
		}
		if base == "_" {
			for range n {
				out = append(out, point{gap: true})
			}
			continue
		}
		a, b := base, "0"
		sign := 1.0
		// The operator is the first + or - after the start that is not an exponent's sign (1e-3+2e-4).
		for i := 1; i < len(base); i++ {
			if (base[i] == '+' || base[i] == '-') && base[i-1] != 'e' && base[i-1] != 'E' {
				a, b = base[:i], base[i+1:]
				if base[i] == '-' {
					sign = -1
				}
				break
			}
		}
		av, err := parseValue(a)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", tok, err)
		}
		bv, err := parseValue(b)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", tok, err)
		}
		for k := 0; k <= n; k++ {
			out = append(out, point{v: av + sign*float64(k)*bv})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no values")
	}
	return out, nil
}

func parseValue(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

// readings are the input of a test as ingest would store them, in time order: labelled from the registry,
// with the deltas and counter events of the indexes.
func (tc *testCase) readings() []hv.Reading {
	counters := ingest.NewCounters()
	var out []hv.Reading
	for _, s := range tc.series {
		base := hv.Reading{Device: s.dev.ID, Metric: s.metric, Site: s.site.ID, Commune: s.site.Commune,
			EPCI: s.site.EPCI, Fluid: s.dev.Fluid}
		for i, p := range s.points {
			if p.gap {
				continue
			}
			r := base
			r.Value, r.Time = p.v, tc.start.Add(time.Duration(i)*s.interval).UnixMilli()
			out = append(out, r)
			if s.metric.Cumulative() {
				out, _ = counters.Derive(r, s.dev, out)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b hv.Reading) int { return cmp.Compare(a.Time, b.Time) })
	return out
}

// run runs one test on simulated time and returns its failed evaluations.
func (s *suite) run(ctx context.Context, tc *testCase) ([]failure, error) {
	dir, err := os.MkdirTemp("", "hyperviseur-ruletest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := tsdb.Open(filepath.Join(dir, "tsdb"), tsdb.Options{}, nil)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	db, err := rules.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()

	heard := map[string]int64{} // the live last-seen times, on simulated time
	set, err := s.loadRules(rules.Deps{LastSeen: func(device string) int64 { return heard[device] }})
	if err != nil {
		return nil, err
	}
	var silenceRules []string
	for _, r := range set.Rules {
		if k, ok := r.(interface{ Kind() string }); ok && k.Kind() == rules.KindSilence {
			silenceRules = append(silenceRules, r.Name())
		}
	}
	mgr, err := rules.NewManager(ctx, db, nil, rules.LookupTopology(s.reg.Lookup), nil, rules.Options{SilenceRules: silenceRules})
	if err != nil {
		return nil, err
	}
	eng, err := rules.NewEngine(rules.EngineConfig{Every: s.every}, set, nil, mgr, store, nil)
	if err != nil {
		return nil, err
	}

	rs := tc.readings()
	var failed []failure
	broken := map[string]bool{} // rules whose failure is reported already
	next, ev := 0, 0
	last := tc.evals[len(tc.evals)-1].at
	for step := time.Duration(0); step <= last; step += s.every {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := tc.start.Add(step)
		j := next
		for j < len(rs) && rs[j].Time <= now.UnixMilli() {
			j++
		}
		if batch := rs[next:j]; len(batch) > 0 {
			if err := store.Write(ctx, batch); err != nil {
				return nil, fmt.Errorf("write the input up to %s: %w", fmtOffset(step), err)
			}
			for _, r := range batch {
				heard[r.Device] = max(heard[r.Device], r.Time)
			}
			eng.Observe(batch)
			next = j
		}
		eng.EvalAll(ctx, now)
		st, _ := eng.Status()
		for _, r := range st {
			if r.Health == "error" && !broken[r.Name] {
				broken[r.Name] = true
				failed = append(failed, failure{test: tc.title(), at: step, now: now,
					msg: fmt.Sprintf("rule %s failed: %s", r.Name, r.LastError)})
			}
		}
		for ; ev < len(tc.evals) && tc.evals[ev].at == step; ev++ {
			got, err := mgr.Alerts(ctx, rules.Filter{State: hv.AlertFiring})
			if err != nil {
				return nil, err
			}
			exp := tc.evals[ev].alerts
			expOK, gotOK := match(exp, got)
			if !slices.Contains(expOK, false) && !slices.Contains(gotOK, false) {
				continue
			}
			failed = append(failed, failure{test: tc.title(), at: step, now: now, exp: exp, got: got, expOK: expOK, gotOK: gotOK})
		}
	}
	return failed, nil
}

// match pairs expected and firing alerts one to one (a maximum bipartite matching: an expected alert with few
// labels may fit several firing ones) and says which of each side found a partner.
func match(exp []expAlert, got []rules.Alert) (expOK, gotOK []bool) {
	fits := func(e *expAlert, a *rules.Alert) bool {
		if e.Rule != a.Rule || e.Severity != "" && e.Severity != a.Severity {
			return false
		}
		for k, v := range e.Labels {
			if got, ok := a.Labels[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	owner := make([]int, len(got)) // the expected alert each firing one is paired with, -1 if none
	for j := range owner {
		owner[j] = -1
	}
	var augment func(i int, seen []bool) bool
	augment = func(i int, seen []bool) bool {
		for j := range got {
			if seen[j] || !fits(&exp[i], &got[j]) {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || augment(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	expOK, gotOK = make([]bool, len(exp)), make([]bool, len(got))
	for i := range exp {
		augment(i, make([]bool, len(got)))
	}
	for j, i := range owner {
		if i >= 0 {
			expOK[i], gotOK[j] = true, true
		}
	}
	return expOK, gotOK
}

// failure is one failed evaluation of a test, or a rule that failed.
type failure struct {
	test         string
	at           time.Duration
	now          time.Time
	msg          string // a rule error; exp and got are unset then
	exp          []expAlert
	got          []rules.Alert
	expOK, gotOK []bool
}

func (f *failure) write(w io.Writer) {
	fmt.Fprintf(w, "    %s, at %s (%s):\n", f.test, fmtOffset(f.at), f.now.Format(time.RFC3339))
	if f.msg != "" {
		fmt.Fprintf(w, "      %s\n", f.msg)
		return
	}
	if len(f.exp) == 0 {
		fmt.Fprintln(w, "      expected: none")
	} else {
		fmt.Fprintln(w, "      expected:")
		for i, e := range f.exp {
			line := "        " + e.Rule + fmtLabels(e.Labels)
			if e.Severity != "" {
				line += " " + string(e.Severity)
			}
			if !f.expOK[i] {
				line += "   <- not firing"
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(f.got) == 0 {
		fmt.Fprintln(w, "      got: none")
		return
	}
	fmt.Fprintln(w, "      got:")
	order := make([]int, len(f.got))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(f.got[a].Rule, f.got[b].Rule), cmp.Compare(fmtLabels(f.got[a].Labels), fmtLabels(f.got[b].Labels)))
	})
	for _, i := range order {
		a := &f.got[i]
		line := "        " + a.Rule + fmtLabels(a.Labels) + " " + string(a.Severity)
		if !f.gotOK[i] {
			line += "   <- not expected"
		}
		fmt.Fprintln(w, line)
		if a.Summary != "" {
			fmt.Fprintf(w, "          %s\n", a.Summary)
		}
	}
}

// fmtLabels writes labels as Prometheus does, sorted: {device="x", site="y"}.
func fmtLabels(ls map[string]string) string {
	if len(ls) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(ls))
	for _, k := range slices.Sorted(maps.Keys(ls)) {
		parts = append(parts, k+"="+strconv.Quote(ls[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// fmtOffset writes a duration without its zero tails: 26h, 1h30m, 90s.
func fmtOffset(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// embedded returns a mapping nested in the file (inline rules or registry) as a document of its own, at the
// same lines: the rest of the file is blanked, so the errors of its loader point into the test file. next is
// the top-level key after it, where it ends. A flow-style file ({rules: …, tests: …}) is re-encoded: its lines
// are lost.
func embedded(data []byte, val, next *yaml.Node) []byte {
	if next != nil && next.Line <= val.Line {
		b, _ := yaml.Marshal(val)
		return b
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	var out bytes.Buffer
	for i, l := range lines {
		n := i + 1
		switch {
		case n < val.Line:
			out.WriteByte('\n')
		case n == val.Line:
			col := 0
			for j, r := range string(l) {
				if col == val.Column-1 {
					out.Write(l[j:])
					break
				}
				if r == '\t' {
					out.WriteByte('\t')
				} else {
					out.WriteByte(' ')
				}
				col++
			}
		case next == nil || n < next.Line:
			out.Write(l)
		}
	}
	return out.Bytes()
}

// field returns a top-level key, its value and the key after it (nil when absent).
func field(top *yaml.Node, key string) (k, v, next *yaml.Node) {
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == key {
			k, v = top.Content[i], top.Content[i+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			if i+2 < len(top.Content) {
				next = top.Content[i+2]
			}
			return k, v, next
		}
	}
	return nil, nil, nil
}

func keyLine(top *yaml.Node, key string) int {
	if k, _, _ := field(top, key); k != nil {
		return k.Line
	}
	return top.Line
}

func keysOf(n *yaml.Node) []*yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i])
	}
	return out
}

var (
	nodeType      = reflect.TypeFor[yaml.Node]()
	timestampType = reflect.TypeFor[timestamp]()
)

// checkKeys reports mapping keys that match no yaml tag of the Go type the node decodes into, descending into
// nested structs and lists of them. The inline rules and registry are their loaders' to check.
func checkKeys(c *collector, n *yaml.Node, t reflect.Type, at string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case t == nodeType || t == timestampType:
		return
	case t.Kind() == reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				checkKeys(c, item, t.Elem(), fmt.Sprintf("%s[%d]", at, i))
			}
		}
		return
	case t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode:
		return // a type mismatch is the decoder's to report
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Tag == "!!merge" { // <<: *shared, or a list of them: their keys are this mapping's
			v := n.Content[i+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					checkKeys(c, m, t, at)
				}
			} else {
				checkKeys(c, v, t, at)
			}
			continue
		}
		ft, ok := fields[k.Value]
		if !ok {
			where := ""
			if at != "" {
				where = " in " + at
			}
			c.add(k.Line, "unknown key %q%s (want %s)", k.Value, where, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			continue
		}
		sub := k.Value
		if at != "" {
			sub = at + "." + k.Value
		}
		checkKeys(c, n.Content[i+1], ft, sub)
	}
}
