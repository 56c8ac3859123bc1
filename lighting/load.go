package lighting

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/yamlnode"
)

// A plan file (configs/lighting/*.yaml) is one YAML document with the keys of Plan: programs, calendars,
// groups, decrees, categories and tariff_eur_kwh. Several files load as one plan: their lists are
// concatenated in file order and tariff_eur_kwh comes from the last file that sets it; names are unique across
// files.
//
// Parsing is strict: an unknown key, a bad value or a reference to an undefined program or calendar is an
// error naming the file, the entry, the line and the key, e.g.
//
//	default.yaml: programs[2] (name "nuit"): line 14: start.sun: "midi" is not one of sunset, dusk
//
// Durations are Go durations ("30m", "1h30m"). An event (start, end, a step's at) is written either as a
// mapping {sun: sunset, offset: -15m} / {at: "22:00"} or as a scalar: "sunset", "sunrise-15m", "22:00". A
// start is sunset or dusk (or a time), an end sunrise or dawn (or a time), a step any of the four; fixed-time
// steps are listed in the order of the night (12:00 to 11:59).
// Defaults applied when the key is absent: a program's level 100, a lux guard's level 100 and window 1h. A
// program whose every level is 0 is refused: `extinction: true` is how a night is kept dark.

// maxErrors bounds the problems one load reports: enough to fix a file in one pass.
const maxErrors = 20

// Limits of a program definition.
const (
	MaxOffset        = 4 * time.Hour    // of a sun event
	MaxRamp          = 30 * time.Minute // of a level change
	MinHold          = 10 * time.Second // of a presence boost
	MaxHold          = time.Hour
	MaxLuxWindow     = 3 * time.Hour
	DefaultLuxWindow = time.Hour // of a lux guard, when the key is absent
)

// Sun events an Event may name.
const (
	SunSunset  = "sunset"
	SunSunrise = "sunrise"
	SunDusk    = "dusk"
	SunDawn    = "dawn"
)

// ConfigError is one problem in a plan: the file (empty for a plan built through the API), the entry
// (`programs[2] (name "x")`), the line (0 when unknown) and the reason, which starts with the key at fault.
// It matches hv.ErrInvalid and ErrInvalid.
type ConfigError struct {
	File  string
	Entry string
	Line  int
	Msg   string
}

func (e *ConfigError) Error() string {
	var parts []string
	if e.File != "" {
		parts = append(parts, e.File)
	}
	if e.Entry != "" {
		parts = append(parts, e.Entry)
	}
	if e.Line > 0 {
		parts = append(parts, "line "+strconv.Itoa(e.Line))
	}
	return strings.Join(append(parts, e.Msg), ": ")
}

// Is makes errors.Is(err, hv.ErrInvalid) true, so the API can answer 400 to a bad edit.
func (e *ConfigError) Is(target error) bool { return target == hv.ErrInvalid || target == ErrInvalid }

// collector gathers problems up to maxErrors.
type collector struct{ yamlnode.Collector }

func (c *collector) add(file, entry string, line int, msg string) {
	c.Add(&ConfigError{File: file, Entry: entry, Line: line, Msg: msg})
}

func (c *collector) err() error { return c.Err() }

// Top-level keys of a plan file and of Plan's lists.
const (
	keyPrograms   = "programs"
	keyCalendars  = "calendars"
	keyGroups     = "groups"
	keyDecrees    = "decrees"
	keyCategories = "categories"
	keyTariff     = "tariff_eur_kwh"
)

// origin is where a decoded entry came from, so a validation problem can name its file and line.
type origin struct {
	file, entry string
	node        *yaml.Node
}

// origins maps a top-level key to the origin of each entry of the merged plan, in order; keyTariff holds
// the tariff's.
type origins map[string][]origin

// LoadPlan reads the named files of fsys (configs.Lighting(), os.DirFS("configs/lighting")) as one plan and
// validates it; with no names, every *.yaml file at the top of fsys, in name order. The error joins every
// problem found, up to 20, each a *ConfigError.
func LoadPlan(fsys fs.FS, names ...string) (*Plan, error) {
	if len(names) == 0 {
		var err error
		if names, err = fs.Glob(fsys, "*.yaml"); err != nil {
			return nil, fmt.Errorf("load lighting plan: %w", err)
		}
		if len(names) == 0 {
			return nil, errors.New("load lighting plan: no *.yaml file")
		}
		slices.Sort(names)
	}
	p, org, c := &Plan{}, origins{}, &collector{yamlnode.Collector{Max: maxErrors}}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load lighting plan: %w", err)
		}
		parseInto(p, org, c, path.Base(name), data)
	}
	return finish(p, org, c)
}

// ParsePlan reads and validates one plan document; name is what errors call it.
func ParsePlan(name string, data []byte) (*Plan, error) {
	p, org, c := &Plan{}, origins{}, &collector{yamlnode.Collector{Max: maxErrors}}
	parseInto(p, org, c, name, data)
	return finish(p, org, c)
}

func finish(p *Plan, org origins, c *collector) (*Plan, error) {
	if c.Count() == 0 {
		p.report(p.check(), org, c)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return p, nil
}

var (
	programType  = reflect.TypeFor[ProgramDef]()
	calendarType = reflect.TypeFor[Calendar]()
	groupType    = reflect.TypeFor[Group]()
	decreeType   = reflect.TypeFor[Decree]()
	categoryType = reflect.TypeFor[SiteCategory]()
)

// parseInto decodes one document strictly and appends its entries to p.
func parseInto(p *Plan, org origins, c *collector, file string, data []byte) {
	top, line, problem := yamlnode.Top(data, "programs, calendars, groups, decrees, categories, tariff_eur_kwh")
	if problem != "" {
		c.add(file, "", line, problem)
	}
	if top == nil {
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if seen[k.Value] {
			c.add(file, "", k.Line, k.Value+" defined twice")
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case keyPrograms:
			p.Programs = append(p.Programs, decodeList[ProgramDef](c, org, file, k.Value, v, programType)...)
		case keyCalendars:
			p.Calendars = append(p.Calendars, decodeList[Calendar](c, org, file, k.Value, v, calendarType)...)
		case keyGroups:
			p.Groups = append(p.Groups, decodeList[Group](c, org, file, k.Value, v, groupType)...)
		case keyDecrees:
			p.Decrees = append(p.Decrees, decodeList[Decree](c, org, file, k.Value, v, decreeType)...)
		case keyCategories:
			p.Categories = append(p.Categories, decodeList[SiteCategory](c, org, file, k.Value, v, categoryType)...)
		case keyTariff:
			if yamlnode.IsNull(v) {
				continue
			}
			var f float64
			if err := v.Decode(&f); err != nil {
				decodeError(c, file, "", top, err)
				continue
			}
			p.TariffEURPerKWh = f
			org[keyTariff] = []origin{{file: file, node: k}}
		default:
			c.add(file, "", k.Line, fmt.Sprintf("unknown key %q (want programs, calendars, groups, decrees, categories, tariff_eur_kwh)", k.Value))
		}
	}
}

// decodeList decodes the entries of one list, checking their keys first; an entry with a problem is left out
// (the load fails anyway) and its origin is not recorded.
func decodeList[T any](c *collector, org origins, file, key string, list *yaml.Node, t reflect.Type) []T {
	if yamlnode.IsNull(list) {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		c.add(file, key, list.Line, "must be a list")
		return nil
	}
	var out []T
	for i, item := range list.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		entry := entryName(key, i, scalarField(item, nameKey(key)), nameKey(key))
		if item.Kind != yaml.MappingNode {
			c.add(file, entry, item.Line, "must be a mapping")
			continue
		}
		n := c.Count()
		checkKeys(c, file, entry, "", item, t)
		if key == keyPrograms {
			requireStepLevels(c, file, entry, item)
		}
		if c.Count() > n {
			continue
		}
		var v T
		if err := item.Decode(&v); err != nil {
			decodeError(c, file, entry, item, err)
			continue
		}
		out = append(out, v)
		org[key] = append(org[key], origin{file: file, entry: entry, node: item})
	}
	return out
}

// decodeError reports a decoding error of an entry, one problem per line the decoder complains about, naming
// the key whose value sits on that line when there is only one.
func decodeError(c *collector, file, entry string, item *yaml.Node, err error) {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		line := 0
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				if l, err := strconv.Atoi(n); err == nil {
					line, m = l, after
				}
			}
		}
		var paths []string
		keysAtLine(item, line, "", &paths)
		if len(paths) == 1 {
			m = paths[0] + ": " + m
		}
		c.add(file, entry, line, m)
	}
}

// keysAtLine collects the paths of the keys whose scalar value is on line.
func keysAtLine(n *yaml.Node, line int, at string, out *[]string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.ScalarNode {
				if v.Line == line {
					*out = append(*out, joinKey(at, k.Value))
				}
				continue
			}
			keysAtLine(v, line, joinKey(at, k.Value), out)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			if v.Kind == yaml.ScalarNode {
				if v.Line == line {
					*out = append(*out, fmt.Sprintf("%s[%d]", at, i))
				}
				continue
			}
			keysAtLine(v, line, fmt.Sprintf("%s[%d]", at, i), out)
		}
	}
}

// nameKey is the key that names the entries of a list in messages.
func nameKey(list string) string {
	if list == keyCategories {
		return "category"
	}
	return "name"
}

// entryName is how messages call an entry: `programs[2] (name "nuit")`.
func entryName(list string, i int, name, key string) string {
	e := fmt.Sprintf("%s[%d]", list, i)
	if name != "" {
		e += fmt.Sprintf(" (%s %q)", key, name)
	}
	return e
}

// requireStepLevels reports the steps written without a level: 0 would switch the lights off, which a
// forgotten key must not do.
func requireStepLevels(c *collector, file, entry string, program *yaml.Node) {
	steps := valueOf(program, "steps")
	if steps == nil || steps.Kind != yaml.SequenceNode {
		return
	}
	for i, s := range steps.Content {
		if s.Kind == yaml.AliasNode && s.Alias != nil {
			s = s.Alias
		}
		if s.Kind == yaml.MappingNode && valueOf(s, "level") == nil {
			c.add(file, entry, s.Line, fmt.Sprintf("steps[%d].level: is required", i))
		}
	}
}

// checkKeys reports mapping keys that match no yaml tag of the Go type the node decodes into, descending into
// nested structs, pointers and lists of structs. Merge keys (`<<: *common`) are checked as if written in place.
func checkKeys(c *collector, file, entry, at string, n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkKeys(c, file, entry, fmt.Sprintf("%s[%d]", at, i), item, t.Elem())
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlnode.Fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				if v.Kind == yaml.AliasNode && v.Alias != nil {
					v = v.Alias
				}
				if v.Kind == yaml.SequenceNode {
					for _, m := range v.Content {
						checkKeys(c, file, entry, at, m, t)
					}
				} else {
					checkKeys(c, file, entry, at, v, t)
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				c.add(file, entry, k.Line, fmt.Sprintf("unknown key %q", joinKey(at, k.Value)))
				continue
			}
			checkKeys(c, file, entry, joinKey(at, k.Value), v, ft)
		}
	}
	// Anything else is a scalar or a type mismatch: the decoder reports the latter.
}

func joinKey(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

// valueOf is the value node of key in a mapping (merge keys expanded; the mapping's own key wins), nil if
// absent.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			merged = append(merged, v)
			continue
		}
		if k.Value == key {
			return v
		}
	}
	for _, m := range merged {
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		list := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			list = m.Content
		}
		for _, x := range list {
			if v := valueOf(x, key); v != nil {
				return v
			}
		}
	}
	return nil
}

// keyNode is the key node of key in a mapping (not through merges), nil if absent.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i].Tag != "!!merge" {
			return n.Content[i]
		}
	}
	return nil
}

// scalarField is the scalar value of key in a mapping, "" if absent.
func scalarField(n *yaml.Node, key string) string {
	if v := valueOf(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// lineOf is the line of the key at path ("steps[1].at.sun") in an entry, of the list item equal to item when
// given, else of the deepest part of the path that exists, else of the entry itself.
func lineOf(n *yaml.Node, p, item string) int {
	line := n.Line
	cur := n
	if p == "" {
		return line
	}
	for _, part := range strings.Split(p, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			if x, err := strconv.Atoi(part[i+1 : len(part)-1]); err == nil {
				idx = x
			}
		}
		k := keyNode(cur, key)
		v := valueOf(cur, key)
		if v == nil {
			return line
		}
		if k != nil {
			line = k.Line
		} else {
			line = v.Line
		}
		cur = v
		if cur.Kind == yaml.AliasNode && cur.Alias != nil {
			cur = cur.Alias
		}
		if idx >= 0 {
			if cur.Kind != yaml.SequenceNode || idx >= len(cur.Content) {
				return line
			}
			cur = cur.Content[idx]
			line = cur.Line
		}
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

// UnmarshalYAML applies the defaults of a program to the keys the document leaves out: level 100.
func (d *ProgramDef) UnmarshalYAML(n *yaml.Node) error {
	type plain ProgramDef
	v := plain{Level: 100}
	if err := n.Decode(&v); err != nil {
		return err
	}
	*d = ProgramDef(v)
	return nil
}

// UnmarshalJSON applies the same defaults as UnmarshalYAML, so an API edit that leaves out the level means 100.
func (d *ProgramDef) UnmarshalJSON(b []byte) error {
	type plain ProgramDef
	v := plain{Level: 100}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*d = ProgramDef(v)
	return nil
}

// UnmarshalYAML applies the defaults of a lux guard to the keys the document leaves out: level 100, window 1h.
func (l *LuxDef) UnmarshalYAML(n *yaml.Node) error {
	type plain LuxDef
	v := plain{Level: 100, Window: DefaultLuxWindow}
	if err := n.Decode(&v); err != nil {
		return err
	}
	*l = LuxDef(v)
	return nil
}

// UnmarshalJSON applies the same defaults as UnmarshalYAML.
func (l *LuxDef) UnmarshalJSON(b []byte) error {
	type plain LuxDef
	v := plain{Level: 100, Window: DefaultLuxWindow}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*l = LuxDef(v)
	return nil
}

// UnmarshalYAML reads an event as a mapping ({sun: sunset, offset: 30m}, {at: "22:00"}) or as a scalar in
// ParseEvent's form.
func (e *Event) UnmarshalYAML(n *yaml.Node) error {
	if yamlnode.IsNull(n) {
		*e = Event{}
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		ev, err := ParseEvent(n.Value)
		if err != nil {
			// A TypeError lets the decoder go on, so the other problems of the entry are reported too.
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
		}
		*e = ev
		return nil
	}
	type plain Event
	var v plain
	if err := n.Decode(&v); err != nil {
		return err
	}
	*e = Event(v)
	return nil
}

// ParseEvent reads the short form of an event: a time "HH:MM", or a sun event with an optional signed Go
// duration offset, "sunset", "sunset+30m", "sunrise-15m". Whether the names and times are valid is
// Validate's to say.
func ParseEvent(s string) (Event, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Event{}, nil
	}
	if s[0] >= '0' && s[0] <= '9' {
		return Event{At: s}, nil
	}
	i := strings.IndexAny(s, "+-")
	if i < 0 {
		return Event{Sun: s}, nil
	}
	off, err := time.ParseDuration(s[i:])
	if err != nil {
		return Event{}, fmt.Errorf("event %q: want HH:MM or a sun event with an optional offset, like sunset+30m", s)
	}
	return Event{Sun: strings.TrimSpace(s[:i]), Offset: off}, nil
}

// String is the short form ParseEvent reads.
func (e Event) String() string {
	switch {
	case e.At != "":
		return e.At
	case e.Offset > 0:
		return e.Sun + "+" + e.Offset.String()
	case e.Offset < 0:
		return e.Sun + e.Offset.String()
	}
	return e.Sun
}

func (e Event) isZero() bool { return e == Event{} }

// parseHM reads "HH:MM" (00:00–23:59) into minutes since midnight.
func parseHM(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || s[0] == '+' || s[0] == '-' || s[3] == '+' || s[3] == '-' ||
		h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

// nightMinutes orders times of day within a night: 12:00 is 0, 11:59 the next morning the last.
func nightMinutes(hm int) int { return (hm - 12*60 + 24*60) % (24 * 60) }

// issue is a problem the validation found, located by list (a top-level key, "" for none), index in it, key
// path inside the entry and, for a list value, the item at fault. first ≥ 0 names the entry a duplicate
// repeats.
type issue struct {
	list  string
	index int
	path  string
	item  string
	msg   string
	first int
}

// Validate checks the plan and builds its indexes (names, group membership, decrees and categories by key):
// call it after building or editing a plan by hand, before sharing it. LoadPlan and ParsePlan return
// validated plans. Values are taken as they are: the defaults of absent keys are applied when decoding.
func (p *Plan) Validate() error {
	c := &collector{yamlnode.Collector{Max: maxErrors}}
	p.report(p.check(), nil, c)
	return c.err()
}

// report turns issues into errors, located in their files when org knows where the entries came from.
func (p *Plan) report(issues []issue, org origins, c *collector) {
	for _, is := range issues {
		msg := is.msg
		if is.path != "" {
			msg = is.path + ": " + msg
		}
		if is.list == keyTariff {
			if o := org[keyTariff]; len(o) > 0 {
				c.add(o[0].file, "", o[0].node.Line, msg)
			} else {
				c.add("", "", 0, msg)
			}
			continue
		}
		from := org[is.list]
		if is.index < len(from) {
			o := from[is.index]
			if is.first >= 0 && is.first < len(from) {
				f := from[is.first]
				msg += fmt.Sprintf(", first defined at %s: line %d", f.file, f.node.Line)
			}
			c.add(o.file, o.entry, lineOf(o.node, is.path, is.item), msg)
			continue
		}
		if is.first >= 0 {
			msg += ", first defined at " + p.entryName(is.list, is.first)
		}
		c.add("", p.entryName(is.list, is.index), 0, msg)
	}
}

func (p *Plan) entryName(list string, i int) string {
	var name string
	switch list {
	case keyPrograms:
		name = p.Programs[i].Name
	case keyCalendars:
		name = p.Calendars[i].Name
	case keyGroups:
		name = p.Groups[i].Name
	case keyDecrees:
		name = p.Decrees[i].Name
	case keyCategories:
		name = p.Categories[i].Category
	}
	return entryName(list, i, name, nameKey(list))
}

// planIndex holds what Validate precomputes beyond the name maps, so lookups are O(1).
type planIndex struct {
	groups                              map[string]int // name → index in Groups
	byDevice, bySite, byCommune, byEPCI map[string]int // → index in Groups
	defaultGroup                        int            // -1: none
	decrees                             map[string]int // commune → index in Decrees
	categories                          map[string]int // site → index in Categories
}

// check validates the plan and, when it is valid, installs its indexes.
func (p *Plan) check() []issue {
	var issues []issue
	add := func(list string, index int, path, item, format string, args ...any) {
		issues = append(issues, issue{list: list, index: index, path: path, item: item, msg: fmt.Sprintf(format, args...), first: -1})
	}
	dup := func(list string, index, first int, what string) {
		issues = append(issues, issue{list: list, index: index, path: "name", msg: "duplicate " + what + " name", first: first})
	}

	programs := map[string]int{}
	for i, d := range p.Programs {
		if msg := checkName(d.Name); msg != "" {
			add(keyPrograms, i, "name", "", "%s", msg)
		} else if first, ok := programs[d.Name]; ok {
			dup(keyPrograms, i, first, "program")
		} else {
			programs[d.Name] = i
		}
		for _, is := range checkProgram(d) {
			add(keyPrograms, i, is.path, is.item, "%s", is.msg)
		}
	}

	calendars := map[string]int{}
	for i, cal := range p.Calendars {
		if msg := checkName(cal.Name); msg != "" {
			add(keyCalendars, i, "name", "", "%s", msg)
		} else if first, ok := calendars[cal.Name]; ok {
			dup(keyCalendars, i, first, "calendar")
		} else {
			calendars[cal.Name] = i
		}
		if cal.Default == "" {
			add(keyCalendars, i, "default", "", "is required: the program of the nights no rule matches")
		} else if _, ok := programs[cal.Default]; !ok {
			add(keyCalendars, i, "default", "", "program %q is not defined", cal.Default)
		}
		for j, r := range cal.Rules {
			for _, is := range checkRule(r, programs) {
				add(keyCalendars, i, fmt.Sprintf("rules[%d]", j)+is.path, is.item, "%s", is.msg)
			}
		}
	}

	idx := &planIndex{
		groups: map[string]int{}, byDevice: map[string]int{}, bySite: map[string]int{}, byCommune: map[string]int{},
		byEPCI: map[string]int{}, defaultGroup: -1, decrees: map[string]int{}, categories: map[string]int{},
	}
	for i, g := range p.Groups {
		if msg := checkName(g.Name); msg != "" {
			add(keyGroups, i, "name", "", "%s", msg)
		} else if first, ok := idx.groups[g.Name]; ok {
			dup(keyGroups, i, first, "group")
		} else {
			idx.groups[g.Name] = i
		}
		switch {
		case g.Calendar == "" && g.Program == "":
			add(keyGroups, i, "calendar", "", "set calendar or program")
		case g.Calendar != "" && g.Program != "":
			add(keyGroups, i, "program", "", "set calendar or program, not both")
		case g.Calendar != "":
			if _, ok := calendars[g.Calendar]; !ok {
				add(keyGroups, i, "calendar", "", "calendar %q is not defined", g.Calendar)
			}
		default:
			if _, ok := programs[g.Program]; !ok {
				add(keyGroups, i, "program", "", "program %q is not defined", g.Program)
			}
		}
		if g.Default {
			if idx.defaultGroup >= 0 {
				add(keyGroups, i, "default", "", "group %q is already the default group", p.Groups[idx.defaultGroup].Name)
			} else {
				idx.defaultGroup = i
			}
		}
		if !g.Default && len(g.Devices)+len(g.Sites)+len(g.Communes)+len(g.EPCIs) == 0 {
			add(keyGroups, i, "devices", "", "a group needs devices, sites, communes or epcis, or default: true")
		}
		member := func(key string, values []string, m map[string]int, valid func(string) string) {
			for _, v := range values {
				if msg := valid(v); msg != "" {
					add(keyGroups, i, key, v, "%s", msg)
				} else if other, ok := m[v]; ok {
					add(keyGroups, i, key, v, "%q is already in group %q", v, p.Groups[other].Name)
				} else {
					m[v] = i
				}
			}
		}
		member("devices", g.Devices, idx.byDevice, checkID)
		member("sites", g.Sites, idx.bySite, checkID)
		member("communes", g.Communes, idx.byCommune, checkINSEE)
		member("epcis", g.EPCIs, idx.byEPCI, checkSIREN)
	}

	decreeNames := map[string]int{}
	for i, d := range p.Decrees {
		if d.Name == "" {
			add(keyDecrees, i, "name", "", "is required")
		} else if first, ok := decreeNames[d.Name]; ok {
			dup(keyDecrees, i, first, "decree")
		} else {
			decreeNames[d.Name] = i
		}
		if len(d.Communes) == 0 {
			add(keyDecrees, i, "communes", "", "is required: the INSEE codes of the communes the decree applies to")
		}
		for _, code := range d.Communes {
			if msg := checkINSEE(code); msg != "" {
				add(keyDecrees, i, "communes", code, "%s", msg)
			} else if other, ok := idx.decrees[code]; ok {
				add(keyDecrees, i, "communes", code, "commune %q already has decree %q", code, p.Decrees[other].Name)
			} else {
				idx.decrees[code] = i
			}
		}
		from, okFrom := parseHM(d.From)
		to, okTo := parseHM(d.To)
		if !okFrom {
			add(keyDecrees, i, "from", "", "%q is not a time HH:MM (00:00–23:59)", d.From)
		}
		if !okTo {
			add(keyDecrees, i, "to", "", "%q is not a time HH:MM (00:00–23:59)", d.To)
		}
		if okFrom && okTo && from == to {
			add(keyDecrees, i, "to", "", "the switch-off must end at another time than it starts (%s)", d.From)
		}
	}

	for i, sc := range p.Categories {
		switch sc.Category {
		case CategoryVoirie, CategoryBatiment, CategoryPatrimoine, CategoryParking:
		default:
			add(keyCategories, i, "category", "", "%q is not one of voirie, batiment, patrimoine, parking", sc.Category)
		}
		if len(sc.Sites) == 0 {
			add(keyCategories, i, "sites", "", "is required: the lighting sites (cabinets) of the category")
		}
		for _, s := range sc.Sites {
			if msg := checkID(s); msg != "" {
				add(keyCategories, i, "sites", s, "%s", msg)
			} else if other, ok := idx.categories[s]; ok {
				add(keyCategories, i, "sites", s, "site %q is already in category %q", s, p.Categories[other].Category)
			} else {
				idx.categories[s] = i
			}
		}
		if sc.ActivityEnd != "" {
			if _, ok := parseHM(sc.ActivityEnd); !ok {
				add(keyCategories, i, "activity_end", "", "%q is not a time HH:MM (00:00–23:59)", sc.ActivityEnd)
			}
		}
	}

	if t := p.TariffEURPerKWh; math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		add(keyTariff, -1, "", "", "%s: %v must be a price of 0 or more", keyTariff, t)
	}

	if len(issues) == 0 {
		p.programs, p.calendars, p.index = programs, calendars, idx
	} else {
		// Indexes of an earlier state could point past the lists now: an invalid plan finds nothing.
		p.programs, p.calendars, p.index = nil, nil, nil
	}
	return issues
}

// subIssue is a problem inside an entry: its key path (relative to the entry, or to the rule for a calendar
// rule, where it starts with ".") and the list item at fault.
type subIssue struct {
	path, item, msg string
}

func sub(path, format string, args ...any) subIssue {
	return subIssue{path: path, msg: fmt.Sprintf(format, args...)}
}

// checkProgram reports what is wrong with one program definition.
func checkProgram(d ProgramDef) []subIssue {
	var out []subIssue
	if d.Extinction {
		// Everything else would be ignored: refusing it keeps the file saying what happens.
		for _, k := range []struct {
			key string
			set bool
		}{
			{"start", !d.Start.isZero()}, {"end", !d.End.isZero()}, {"steps", len(d.Steps) > 0},
			{"ramp", d.Ramp != 0}, {"presence", d.Presence != nil}, {"lux", d.Lux != nil},
		} {
			if k.set {
				out = append(out, sub(k.key, "does not apply to an extinction program (the lights stay off all night)"))
			}
		}
		return out
	}
	out = append(out, checkEvent("start", d.Start, SunSunset, SunDusk)...)
	out = append(out, checkEvent("end", d.End, SunSunrise, SunDawn)...)
	if s, okS := parseHM(d.Start.At); okS {
		if e, okE := parseHM(d.End.At); okE && nightMinutes(e) <= nightMinutes(s) {
			out = append(out, sub("end.at", "switch-off at %s is not after switch-on at %s (times from 12:00 are the evening's, before 12:00 the next morning's)", d.End.At, d.Start.At))
		}
	}
	if !validLevel(d.Level) {
		out = append(out, sub("level", "%v is not in [0, 100]", d.Level))
	}
	allOff := d.Level == 0
	prev, prevAt := -1, ""
	for i, s := range d.Steps {
		at := fmt.Sprintf("steps[%d]", i)
		out = append(out, checkEvent(at+".at", s.At, SunSunset, SunDusk, SunSunrise, SunDawn)...)
		if !validLevel(s.Level) {
			out = append(out, sub(at+".level", "%v is not in [0, 100]", s.Level))
		}
		allOff = allOff && s.Level == 0
		if hm, ok := parseHM(s.At.At); ok {
			if nightMinutes(hm) <= prev {
				out = append(out, sub(at+".at", "%s is not after the previous step's %s: list the steps in the order of the night (12:00 to 11:59)", s.At.At, prevAt))
			}
			prev, prevAt = nightMinutes(hm), s.At.At
		}
	}
	if allOff && validLevel(d.Level) {
		out = append(out, sub("level", "every level of the program is 0: set extinction: true to keep the lights off"))
	}
	if d.Ramp < 0 || d.Ramp > MaxRamp {
		out = append(out, sub("ramp", "%s is not in 0–30m", d.Ramp))
	}
	if pr := d.Presence; pr != nil {
		if math.IsNaN(pr.Level) || pr.Level <= 0 || pr.Level > 100 {
			out = append(out, sub("presence.level", "%v is not in (0, 100]", pr.Level))
		}
		if pr.Hold < MinHold || pr.Hold > MaxHold {
			out = append(out, sub("presence.hold", "%s is not in 10s–1h", pr.Hold))
		}
	}
	if l := d.Lux; l != nil {
		if math.IsNaN(l.Below) || l.Below <= 0 || l.Below > 1e5 {
			out = append(out, sub("lux.below", "%v lux is not in (0, 100000]", l.Below))
		}
		if math.IsNaN(l.Level) || l.Level <= 0 || l.Level > 100 {
			out = append(out, sub("lux.level", "%v is not in (0, 100]", l.Level))
		}
		if l.Window < 0 || l.Window > MaxLuxWindow {
			out = append(out, sub("lux.window", "%s is not in 0–3h", l.Window))
		}
	}
	return out
}

// checkEvent reports what is wrong with an event; suns are the sun events allowed there.
func checkEvent(at string, e Event, suns ...string) []subIssue {
	switch {
	case e.Sun == "" && e.At == "":
		return []subIssue{sub(at, "is required: a sun event (%s) or a time HH:MM", strings.Join(suns, ", "))}
	case e.Sun != "" && e.At != "":
		return []subIssue{sub(at, "set sun or at, not both")}
	case e.At != "":
		var out []subIssue
		if _, ok := parseHM(e.At); !ok {
			out = append(out, sub(at+".at", "%q is not a time HH:MM (00:00–23:59)", e.At))
		}
		if e.Offset != 0 {
			out = append(out, sub(at+".offset", "an offset only applies to a sun event"))
		}
		return out
	}
	var out []subIssue
	if !slices.Contains(suns, e.Sun) {
		out = append(out, sub(at+".sun", "%q is not one of %s", e.Sun, strings.Join(suns, ", ")))
	}
	if e.Offset < -MaxOffset || e.Offset > MaxOffset {
		out = append(out, sub(at+".offset", "%s is beyond ±4h", e.Offset))
	}
	return out
}

// checkRule reports what is wrong with a calendar rule; paths start with "." (relative to the rule).
func checkRule(r CalendarRule, programs map[string]int) []subIssue {
	var out []subIssue
	if strings.TrimSpace(r.Name) == "" {
		out = append(out, sub(".name", "is required: the French label previews show"))
	}
	if r.Program == "" {
		out = append(out, sub(".program", "is required"))
	} else if _, ok := programs[r.Program]; !ok {
		out = append(out, sub(".program", "program %q is not defined", r.Program))
	}
	for _, w := range r.Weekdays {
		if _, ok := frenchWeekdays[w]; !ok {
			out = append(out, subIssue{".weekdays", w, fmt.Sprintf("%q is not one of lundi, mardi, mercredi, jeudi, vendredi, samedi, dimanche", w)})
		}
	}
	for _, d := range r.Dates {
		if !validMonthDay(d) {
			out = append(out, subIssue{".dates", d, fmt.Sprintf("%q is not a date MM-DD", d)})
		}
	}
	switch {
	case (r.From == "") != (r.To == ""):
		out = append(out, sub(".from", "set from and to together (a yearly period MM-DD to MM-DD)"))
	case r.From != "":
		if !validMonthDay(r.From) {
			out = append(out, sub(".from", "%q is not a date MM-DD", r.From))
		}
		if !validMonthDay(r.To) {
			out = append(out, sub(".to", "%q is not a date MM-DD", r.To))
		}
	}
	if len(r.Weekdays) == 0 && len(r.Dates) == 0 && r.From == "" && r.To == "" && !r.PublicHolidays && !r.HolidayEves {
		out = append(out, sub("", "the rule matches every night: set weekdays, dates, from/to, public_holidays or holiday_eves (or make its program the calendar's default)"))
	}
	return out
}

// checkName returns what is wrong with a program, calendar or group name, "" if nothing: names appear in
// URLs and in Night.Program.
func checkName(name string) string {
	if name == "" {
		return "is required"
	}
	if len(name) > 64 {
		return fmt.Sprintf("%q is longer than 64 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')) {
			return fmt.Sprintf("%q: use letters, digits and - _ . only, starting with a letter or digit", name)
		}
	}
	return ""
}

// checkID returns what is wrong with a device or site id, "" if nothing. Whether the registry knows it is not
// checked: the plan loads without a registry, and a group may name a device before it is installed.
func checkID(id string) string {
	if strings.TrimSpace(id) == "" {
		return "an empty id"
	}
	return ""
}

// checkINSEE returns what is wrong with an INSEE commune code, "" if nothing: five characters, digits, or 2A/2B
// and three digits for Corsica.
func checkINSEE(code string) string {
	ok := len(code) == 5
	for i := 0; ok && i < 5; i++ {
		c := code[i]
		ok = '0' <= c && c <= '9' || i == 1 && code[0] == '2' && (c == 'A' || c == 'B')
	}
	if !ok {
		return fmt.Sprintf("%q is not an INSEE commune code (5 characters, e.g. \"02408\"; quote it in YAML)", code)
	}
	return ""
}

// checkSIREN returns what is wrong with an EPCI's SIREN code, "" if nothing: nine digits.
func checkSIREN(code string) string {
	ok := len(code) == 9
	for i := 0; ok && i < 9; i++ {
		ok = '0' <= code[i] && code[i] <= '9'
	}
	if !ok {
		return fmt.Sprintf("%q is not an EPCI SIREN code (9 digits, e.g. \"200043495\"; quote it in YAML)", code)
	}
	return ""
}

// Program returns the program of that name. The plan must have been validated.
func (p *Plan) Program(name string) (ProgramDef, bool) {
	if i, ok := p.programs[name]; ok {
		return p.Programs[i], true
	}
	return ProgramDef{}, false
}

// Calendar returns the calendar of that name. The plan must have been validated.
func (p *Plan) Calendar(name string) (Calendar, bool) {
	if i, ok := p.calendars[name]; ok {
		return p.Calendars[i], true
	}
	return Calendar{}, false
}

// Group returns the group of that name. The plan must have been validated.
func (p *Plan) Group(name string) (*Group, bool) {
	if p.index == nil {
		return nil, false
	}
	if i, ok := p.index.groups[name]; ok {
		return &p.Groups[i], true
	}
	return nil, false
}

// clone copies the plan's lists (not the entries' own slices, which a Plan never changes), without indexes.
func (p *Plan) clone() *Plan {
	return &Plan{
		Programs:        slices.Clone(p.Programs),
		Calendars:       slices.Clone(p.Calendars),
		Groups:          slices.Clone(p.Groups),
		Decrees:         slices.Clone(p.Decrees),
		Categories:      slices.Clone(p.Categories),
		TariffEURPerKWh: p.TariffEURPerKWh,
	}
}

// WithProgram returns a validated copy of the plan with def added, or replacing the program of the same name;
// the receiver is left untouched. def is copied, so the caller may reuse it.
func (p *Plan) WithProgram(def ProgramDef) (*Plan, error) {
	def.Steps = slices.Clone(def.Steps)
	if def.Presence != nil {
		pr := *def.Presence
		def.Presence = &pr
	}
	if def.Lux != nil {
		l := *def.Lux
		def.Lux = &l
	}
	q := p.clone()
	if i := slices.IndexFunc(q.Programs, func(d ProgramDef) bool { return d.Name == def.Name }); i >= 0 {
		q.Programs[i] = def
	} else {
		q.Programs = append(q.Programs, def)
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("program %q: %w", def.Name, err)
	}
	return q, nil
}

// WithoutProgram returns a validated copy of the plan without the named program; the receiver is left
// untouched. It is an error if the program does not exist, or if a calendar or a group still uses it.
func (p *Plan) WithoutProgram(name string) (*Plan, error) {
	i := slices.IndexFunc(p.Programs, func(d ProgramDef) bool { return d.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("remove program %q: %w: no such program", name, hv.ErrInvalid)
	}
	var users []string
	for _, c := range p.Calendars {
		if c.Default == name {
			users = append(users, fmt.Sprintf("calendar %q (default)", c.Name))
		}
		for _, r := range c.Rules {
			if r.Program == name {
				users = append(users, fmt.Sprintf("calendar %q (rule %q)", c.Name, r.Name))
			}
		}
	}
	for _, g := range p.Groups {
		if g.Program == name {
			users = append(users, fmt.Sprintf("group %q", g.Name))
		}
	}
	if len(users) > 0 {
		return nil, fmt.Errorf("remove program %q: %w: still used by %s", name, hv.ErrInvalid, strings.Join(users, ", "))
	}
	q := p.clone()
	q.Programs = slices.Delete(q.Programs, i, i+1)
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("remove program %q: %w", name, err)
	}
	return q, nil
}
