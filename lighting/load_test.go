package lighting

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
)

// mustParse parses a plan document, failing the test on error.
func mustParse(t *testing.T, doc string) *Plan {
	t.Helper()
	p, err := ParsePlan("test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse plan: %v", err)
	}
	return p
}

// TestDefaultPlan loads the shipped plan and checks what the rest of the service relies on.
func TestDefaultPlan(t *testing.T) {
	p, err := LoadPlan(configs.Lighting(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all, err := LoadPlan(configs.Lighting())
	if err != nil {
		t.Fatalf("every file: %v", err)
	}
	if len(all.Programs) != len(p.Programs) {
		t.Errorf("every file: %d programs, default.yaml alone %d", len(all.Programs), len(p.Programs))
	}
	for _, name := range []string{"coeur-de-nuit", "coeur-de-nuit-weekend", "gradation", "fete", "extinction-ete"} {
		d, ok := p.Program(name)
		if !ok {
			t.Errorf("program %s missing", name)
			continue
		}
		if d.Label == "" {
			t.Errorf("program %s has no label", name)
		}
	}
	if d, _ := p.Program("fete"); d.Level != 100 {
		t.Errorf("fete: level %v, want the default 100", d.Level)
	}
	if d, _ := p.Program("gradation"); d.Lux == nil || d.Lux.Level != 100 || d.Lux.Window != time.Hour || d.Lux.Below != 15 {
		t.Errorf("gradation: lux %+v, want below 15 with the defaults level 100, window 1h", d.Lux)
	}
	if d, _ := p.Program("extinction-ete"); !d.Extinction {
		t.Error("extinction-ete is not an extinction program")
	}
	if _, ok := p.Calendar("standard"); !ok {
		t.Error("calendar standard missing")
	}
	if p.TariffEURPerKWh != 0.20 {
		t.Errorf("tariff %v, want 0.20", p.TariffEURPerKWh)
	}
	ctrl := &hv.Device{ID: "ctrl-x", Site: "armoire-x", Kind: hv.DeviceLightingController}
	for commune, want := range map[string]string{"02691": "saint-quentin", "02408": "laon", "02722": "defaut"} {
		g := p.GroupOf(ctrl, &hv.Site{ID: "armoire-x", Commune: commune})
		if g == nil || g.Name != want {
			t.Errorf("commune %s: group %v, want %s", commune, g, want)
		}
	}
	// The default plan keeps its own decrees: every night of a year the lights of Laon and Château-Thierry
	// are off over the decree's hours, except on festive nights (no exception in a decree).
	for _, c := range []struct {
		commune, group string
		lat, lon       float64
	}{
		{"02408", "laon", 49.5641, 3.6199}, {"02168", "defaut", 49.0464, 3.4030},
	} {
		d := p.DecreeFor(c.commune)
		if d == nil {
			t.Fatalf("commune %s: no decree", c.commune)
		}
		g, _ := p.Group(c.group)
		from, _ := parseHM(d.From)
		to, _ := parseHM(d.To)
		festive := 0
		for day := time.Date(2027, 1, 1, 0, 0, 0, 0, paris); day.Year() == 2027; day = day.AddDate(0, 0, 1) {
			n, err := p.Night(g, day, c.lat, c.lon)
			if err != nil {
				t.Fatal(err)
			}
			if n.Program == "fete" {
				festive++
				continue
			}
			y, m, dd := day.Date()
			start := time.Date(y, m, dd+1, from/60, from%60, 0, 0, paris) // both decrees start after midnight
			end := time.Date(y, m, dd+1, to/60, to%60, 0, 0, paris)
			prog, err := ProgramFrom("x", 1, n)
			if err != nil {
				t.Fatal(err)
			}
			for at := start; at.Before(end); at = at.Add(5 * time.Minute) {
				if l, ok := prog.LevelAt(at); !ok || l != 0 {
					t.Fatalf("%s night of %s (%s): level %v at %s, inside the decree %s–%s", c.commune, day.Format(time.DateOnly), n.Program, l, at, d.From, d.To)
				}
			}
		}
		if festive != 2+2+12 { // 1 and 2 January, 13 and 14 July, 20 to 31 December
			t.Errorf("%s: %d festive nights, want 16", c.commune, festive)
		}
	}
}

// TestLoadPlanBad checks each testdata/*.bad.yaml fails with exactly the expected text, Prometheus style: the
// file, the entry, the line, the key and the reason.
func TestLoadPlanBad(t *testing.T) {
	tests := []struct {
		name string
		err  []string // one line per problem, after "testdata/<name>.bad.yaml: "
	}{
		{"unknown-key", []string{
			`programs[0] (name "nuit"): line 5: unknown key "levle"`,
			`programs[0] (name "nuit"): line 9: unknown key "presence.delay"`,
		}},
		{"bad-event", []string{
			`programs[0] (name "nuit"): line 3: start.sun: "midi" is not one of sunset, dusk`,
			`programs[0] (name "nuit"): line 4: end.at: "25:00" is not a time HH:MM (00:00–23:59)`,
			`programs[0] (name "nuit"): line 6: steps[0].at.offset: 5h0m0s is beyond ±4h`,
			`programs[0] (name "nuit"): line 7: steps[1].at.offset: an offset only applies to a sun event`,
			`programs[1] (name "matin"): line 8: end: is required: a sun event (sunrise, dawn) or a time HH:MM`,
		}},
		{"bad-levels", []string{
			`programs[0] (name "nuit"): line 5: level: 120 is not in [0, 100]`,
			`programs[0] (name "nuit"): line 7: steps[0].level: -5 is not in [0, 100]`,
			`programs[0] (name "nuit"): line 8: ramp: 1h0m0s is not in 0–30m`,
			`programs[0] (name "nuit"): line 9: presence.level: 0 is not in (0, 100]`,
			`programs[0] (name "nuit"): line 9: presence.hold: 5s is not in 10s–1h`,
			`programs[0] (name "nuit"): line 10: lux.below: 0 lux is not in (0, 100000]`,
			`programs[0] (name "nuit"): line 10: lux.window: 4h0m0s is not in 0–3h`,
		}},
		{"missing-level", []string{
			`programs[0] (name "nuit"): line 7: steps[1].level: is required`,
		}},
		{"bad-duration", []string{
			`programs[0] (name "nuit"): line 4: end: event "sunrise+30 minutes": want HH:MM or a sun event with an optional offset, like sunset+30m`,
			"programs[0] (name \"nuit\"): line 5: ramp: cannot unmarshal !!str `5 minutes` into time.Duration",
		}},
		{"all-off", []string{
			`programs[0] (name "eteint"): line 5: level: every level of the program is 0: set extinction: true to keep the lights off`,
		}},
		{"extinction", []string{
			`programs[0] (name "ete"): line 4: start: does not apply to an extinction program (the lights stay off all night)`,
			`programs[0] (name "ete"): line 5: steps: does not apply to an extinction program (the lights stay off all night)`,
		}},
		{"step-order", []string{
			`programs[0] (name "nuit"): line 4: end.at: switch-off at 17:00 is not after switch-on at 18:00 (times from 12:00 are the evening's, before 12:00 the next morning's)`,
			`programs[0] (name "nuit"): line 7: steps[1].at: 23:00 is not after the previous step's 05:00: list the steps in the order of the night (12:00 to 11:59)`,
		}},
		{"bad-calendar", []string{
			`calendars[0] (name "standard"): line 5: default: program "normal" is not defined`,
			`calendars[0] (name "standard"): line 8: rules[0].weekdays: "monday" is not one of lundi, mardi, mercredi, jeudi, vendredi, samedi, dimanche`,
			`calendars[0] (name "standard"): line 12: rules[1].program: program "fete" is not defined`,
			`calendars[0] (name "standard"): line 11: rules[1].dates: "02-30" is not a date MM-DD`,
			`calendars[0] (name "standard"): line 14: rules[2].from: set from and to together (a yearly period MM-DD to MM-DD)`,
			`calendars[0] (name "standard"): line 16: rules[3].name: is required: the French label previews show`,
			`calendars[0] (name "standard"): line 16: rules[3]: the rule matches every night: set weekdays, dates, from/to, public_holidays or holiday_eves (or make its program the calendar's default)`,
		}},
		{"bad-groups", []string{
			`groups[0] (name "laon"): line 9: program: set calendar or program, not both`,
			`groups[0] (name "laon"): line 7: communes: "2408" is not an INSEE commune code (5 characters, e.g. "02408"; quote it in YAML)`,
			`groups[1] (name "vide"): line 11: calendar: calendar "inconnu" is not defined`,
			`groups[1] (name "vide"): line 10: devices: a group needs devices, sites, communes or epcis, or default: true`,
			`groups[2] (name "autre"): line 15: program: program "absent" is not defined`,
			`groups[2] (name "autre"): line 13: communes: "02408" is already in group "laon"`,
			`groups[2] (name "autre"): line 14: epcis: "20004349" is not an EPCI SIREN code (9 digits, e.g. "200043495"; quote it in YAML)`,
			`groups[4] (name "defaut2"): line 17: default: group "defaut" is already the default group`,
		}},
		{"duplicate-name", []string{
			`programs[2] (name "nuit"): line 4: name: duplicate program name, first defined at testdata/duplicate-name.bad.yaml: line 2`,
		}},
		{"bad-decrees", []string{
			`decrees[0] (name "Laon"): line 4: from: "23h" is not a time HH:MM (00:00–23:59)`,
			`decrees[1] (name "Laon bis"): line 7: communes: commune "02408" already has decree "Laon"`,
			`decrees[1] (name "Laon bis"): line 9: to: the switch-off must end at another time than it starts (00:00)`,
			`categories[0] (category "eclairage"): line 11: category: "eclairage" is not one of voirie, batiment, patrimoine, parking`,
			`categories[1] (category "parking"): line 14: sites: site "armoire-02408-001" is already in category "eclairage"`,
			`categories[1] (category "parking"): line 15: activity_end: "1:00" is not a time HH:MM (00:00–23:59)`,
		}},
		{"top-key", []string{
			`line 2: unknown key "programmes" (want programs, calendars, groups, decrees, categories, tariff_eur_kwh)`,
		}},
		{"not-a-list", []string{`programs: line 2: must be a list`}},
		{"tariff", []string{`line 2: tariff_eur_kwh: -0.2 must be a price of 0 or more`}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "testdata/" + tt.name + ".bad.yaml"
			seen[path] = true
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePlan(path, data)
			want := path + ": " + strings.Join(tt.err, "\n"+path+": ")
			if err == nil {
				t.Fatalf("parsed %d programs, want error\n%s", len(p.Programs), want)
			}
			if err.Error() != want {
				t.Fatalf("error:\n got %s\nwant %s", err, want)
			}
			if !errors.Is(err, hv.ErrInvalid) || !errors.Is(err, ErrInvalid) {
				t.Error("error does not match hv.ErrInvalid and ErrInvalid")
			}
		})
	}
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	for _, f := range files {
		if !seen[f] {
			t.Errorf("%s has no case in TestLoadPlanBad", f)
		}
	}
}

// TestLoadPlanFiles checks several files load as one plan: lists concatenated in file order, references
// across files, the tariff of the last file that sets it, names unique across files.
func TestLoadPlanFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml":     {Data: []byte("programs:\n  - {name: nuit, start: sunset, end: sunrise}\ntariff_eur_kwh: 0.15\n")},
		"b.yaml":     {Data: []byte("calendars:\n  - {name: std, default: nuit}\ngroups:\n  - {name: tout, default: true, calendar: std}\ntariff_eur_kwh: 0.25\n")},
		"c.yaml":     {Data: []byte("programs:\n  - {name: fete, start: sunset, end: sunrise}\n")},
		"dup.yaml":   {Data: []byte("# another night\nprograms:\n  - {name: nuit, start: dusk, end: dawn}\n")},
		"sub/x.yaml": {Data: []byte("nonsense: true\n")},
	}
	p, err := LoadPlan(fsys, "a.yaml", "b.yaml", "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range p.Programs {
		names = append(names, d.Name)
	}
	if got := strings.Join(names, ","); got != "nuit,fete" {
		t.Errorf("programs %s, want nuit,fete", got)
	}
	if p.TariffEURPerKWh != 0.25 {
		t.Errorf("tariff %v, want 0.25 (b.yaml, the last that sets it)", p.TariffEURPerKWh)
	}
	if g, ok := p.Group("tout"); !ok || !g.Default {
		t.Errorf("group tout: %+v, %v", g, ok)
	}

	_, err = LoadPlan(fsys, "a.yaml", "dup.yaml")
	want := `dup.yaml: programs[0] (name "nuit"): line 3: name: duplicate program name, first defined at a.yaml: line 2`
	if err == nil || err.Error() != want {
		t.Errorf("duplicate across files:\n got %v\nwant %s", err, want)
	}

	// No names: every *.yaml at the top, in name order (dup.yaml clashes with a.yaml; sub/ is not read).
	_, err = LoadPlan(fsys)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("every file: %v, want %s", err, want)
	}
	if _, err := LoadPlan(fsys, "missing.yaml"); err == nil {
		t.Error("a missing file loaded")
	}
}

// TestMaxErrors checks a load reports at most 20 problems and counts the rest.
func TestMaxErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("programs:\n")
	for range 25 {
		b.WriteString("  - {name: nuit, start: midi, end: sunrise}\n")
	}
	_, err := ParsePlan("many.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 21 {
		t.Fatalf("%d lines, want 20 problems and a count", len(lines))
	}
	// 25 bad starts and 24 duplicate names: 49 problems.
	if last := lines[20]; last != "… and 29 more problems" {
		t.Errorf("last line %q", last)
	}
}

// TestValidate checks a plan built in Go (an API edit): the errors name the entry and the key, with no file.
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		plan Plan
		err  string
	}{
		{"valid", Plan{Programs: []ProgramDef{{Name: "nuit", Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}, Level: 100}}}, ""},
		{"empty", Plan{}, ""},
		{"bad name", Plan{Programs: []ProgramDef{{Name: "nuit d'été", Start: Event{Sun: SunSunset}, End: Event{At: "06:00"}, Level: 100}}},
			`programs[0] (name "nuit d'été"): name: "nuit d'été": use letters, digits and - _ . only, starting with a letter or digit`},
		{"sun and at", Plan{Programs: []ProgramDef{{Name: "n", Start: Event{Sun: SunSunset, At: "18:00"}, End: Event{Sun: SunSunrise}, Level: 100}}},
			`programs[0] (name "n"): start: set sun or at, not both`},
		{"start at sunrise", Plan{Programs: []ProgramDef{{Name: "n", Start: Event{Sun: SunSunrise}, End: Event{Sun: SunSunrise}, Level: 100}}},
			`programs[0] (name "n"): start.sun: "sunrise" is not one of sunset, dusk`},
		{"level 0 is taken as written", Plan{Programs: []ProgramDef{{Name: "n", Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}}}},
			`programs[0] (name "n"): level: every level of the program is 0: set extinction: true to keep the lights off`},
		{"lux level 0", Plan{Programs: []ProgramDef{{Name: "n", Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}, Level: 50, Lux: &LuxDef{Below: 10}}}},
			`programs[0] (name "n"): lux.level: 0 is not in (0, 100]`},
		{"duplicate", Plan{Calendars: []Calendar{{Name: "c", Default: "n"}, {Name: "c", Default: "n"}},
			Programs: []ProgramDef{{Name: "n", Extinction: true}}},
			`calendars[1] (name "c"): name: duplicate calendar name, first defined at calendars[0] (name "c")`},
		{"negative tariff", Plan{TariffEURPerKWh: -1}, `tariff_eur_kwh: -1 must be a price of 0 or more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Fatalf("error:\n got %v\nwant %s", err, tt.err)
			}
			if !errors.Is(err, hv.ErrInvalid) {
				t.Error("error does not match hv.ErrInvalid")
			}
		})
	}
}

// TestDefaults checks the defaults of absent keys, in YAML and JSON, and that an explicit value is kept.
func TestDefaults(t *testing.T) {
	p := mustParse(t, `
programs:
  - {name: defaut, start: sunset, end: sunrise}
  - name: matin
    start: sunset
    end: sunrise
    level: 0
    steps: [{at: "05:00", level: 100}]
    lux: {below: 20, level: 50, window: 0s}
  - name: garde
    start: {sun: dusk, offset: -10m}
    end: {sun: dawn}
    lux: {below: 20}
`)
	tests := []struct {
		name       string
		level      float64
		luxLevel   float64
		luxWindow  time.Duration
		start, end string
		hasLux     bool
	}{
		{name: "defaut", level: 100, start: "sunset", end: "sunrise"},
		{name: "matin", level: 0, hasLux: true, luxLevel: 50, luxWindow: 0, start: "sunset", end: "sunrise"},
		{name: "garde", level: 100, hasLux: true, luxLevel: 100, luxWindow: time.Hour, start: "dusk-10m0s", end: "dawn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := p.Program(tt.name)
			if !ok {
				t.Fatal("missing")
			}
			if d.Level != tt.level {
				t.Errorf("level %v, want %v", d.Level, tt.level)
			}
			if got := d.Start.String(); got != tt.start {
				t.Errorf("start %s, want %s", got, tt.start)
			}
			if got := d.End.String(); got != tt.end {
				t.Errorf("end %s, want %s", got, tt.end)
			}
			if (d.Lux != nil) != tt.hasLux {
				t.Fatalf("lux %+v", d.Lux)
			}
			if d.Lux != nil && (d.Lux.Level != tt.luxLevel || d.Lux.Window != tt.luxWindow) {
				t.Errorf("lux %+v, want level %v window %s", d.Lux, tt.luxLevel, tt.luxWindow)
			}
		})
	}

	var d ProgramDef
	if err := json.Unmarshal([]byte(`{"name":"api","start":{"sun":"sunset"},"end":{"sun":"sunrise"},"lux":{"below":10}}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Level != 100 || d.Lux.Level != 100 || d.Lux.Window != time.Hour {
		t.Errorf("json defaults: level %v lux %+v", d.Level, d.Lux)
	}
	if err := json.Unmarshal([]byte(`{"name":"api","level":0,"lux":{"below":10,"level":30,"window":0}}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Level != 0 || d.Lux.Level != 30 || d.Lux.Window != 0 {
		t.Errorf("json explicit values: level %v lux %+v", d.Level, d.Lux)
	}
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Event
		err  bool
	}{
		{"sun", "sunset", Event{Sun: SunSunset}, false},
		{"positive offset", "sunset+30m", Event{Sun: SunSunset, Offset: 30 * time.Minute}, false},
		{"negative offset", "sunrise-1h15m", Event{Sun: SunSunrise, Offset: -75 * time.Minute}, false},
		{"time", "22:30", Event{At: "22:30"}, false},
		{"blank", " ", Event{}, false},
		{"bad offset", "dusk+10 min", Event{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if !tt.err && tt.in != " " {
				if back, _ := ParseEvent(got.String()); back != got {
					t.Errorf("String %q reads back as %+v", got.String(), back)
				}
			}
		})
	}
}

const editPlan = `
programs:
  - {name: nuit, start: sunset, end: sunrise}
  - {name: fete, start: sunset, end: sunrise}
  - {name: libre, start: dusk, end: dawn}
calendars:
  - name: std
    default: nuit
    rules: [{name: "Fête nationale", dates: ["07-14"], program: fete}]
groups:
  - {name: tout, default: true, calendar: std}
`

func TestWithProgram(t *testing.T) {
	p := mustParse(t, editPlan)
	def := ProgramDef{Name: "nuit", Start: Event{Sun: SunSunset}, End: Event{At: "06:00"}, Level: 80,
		Steps: []LevelStep{{At: Event{At: "23:00"}, Level: 30}}}
	q, err := p.WithProgram(def)
	if err != nil {
		t.Fatal(err)
	}
	def.Steps[0].Level = 99 // the caller's slice is not the plan's
	if got, _ := q.Program("nuit"); got.Level != 80 || got.Steps[0].Level != 30 || got.End.At != "06:00" {
		t.Errorf("replaced program %+v", got)
	}
	if got, _ := p.Program("nuit"); got.Level != 100 || len(got.Steps) != 0 {
		t.Errorf("receiver changed: %+v", got)
	}
	if len(q.Programs) != 3 {
		t.Errorf("%d programs after a replacement, want 3", len(q.Programs))
	}

	r, err := q.WithProgram(ProgramDef{Name: "nouveau", Extinction: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Program("nouveau"); !ok || len(r.Programs) != 4 || len(q.Programs) != 3 {
		t.Errorf("added: %d programs (receiver %d)", len(r.Programs), len(q.Programs))
	}

	_, err = p.WithProgram(ProgramDef{Name: "nuit", Start: Event{Sun: "midi"}, End: Event{Sun: SunSunrise}, Level: 100})
	want := `program "nuit": programs[0] (name "nuit"): start.sun: "midi" is not one of sunset, dusk`
	if err == nil || err.Error() != want {
		t.Errorf("invalid edit:\n got %v\nwant %s", err, want)
	}
	if !errors.Is(err, hv.ErrInvalid) {
		t.Error("invalid edit does not match hv.ErrInvalid")
	}
	if got, _ := p.Program("nuit"); got.Start.Sun != SunSunset {
		t.Error("receiver changed by a refused edit")
	}
}

func TestWithoutProgram(t *testing.T) {
	p := mustParse(t, editPlan)
	tests := []struct {
		name    string
		program string
		err     string
	}{
		{"unused", "libre", ""},
		{"calendar default", "nuit", `remove program "nuit": invalid: still used by calendar "std" (default)`},
		{"calendar rule", "fete", `remove program "fete": invalid: still used by calendar "std" (rule "Fête nationale")`},
		{"unknown", "aucun", `remove program "aucun": invalid: no such program`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := p.WithoutProgram(tt.program)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := q.Program(tt.program); ok {
				t.Error("still there")
			}
			if _, ok := p.Program(tt.program); !ok || len(p.Programs) != 3 {
				t.Error("receiver changed")
			}
		})
	}
	g := mustParse(t, editPlan+"  - {name: fixe, devices: [ctrl-1], program: libre}\n")
	if _, err := g.WithoutProgram("libre"); err == nil || !strings.Contains(err.Error(), `group "fixe"`) {
		t.Errorf("program of a group removed: %v", err)
	}
}

// TestGroupOf checks membership goes to the most specific group.
func TestGroupOf(t *testing.T) {
	p := mustParse(t, `
programs: [{name: nuit, start: sunset, end: sunrise}]
groups:
  - {name: par-appareil, devices: [ctrl-1], program: nuit}
  - {name: par-armoire, sites: [armoire-1], program: nuit}
  - {name: par-commune, communes: ["02408"], program: nuit}
  - {name: par-epci, epcis: ["200043495"], program: nuit}
  - {name: reste, default: true, program: nuit}
`)
	laon := &hv.Site{ID: "armoire-1", Commune: "02408", EPCI: "200043495"}
	tests := []struct {
		name string
		dev  hv.Device
		site *hv.Site
		want string // "" for nil
	}{
		{"device first", hv.Device{ID: "ctrl-1", Site: "armoire-1", Kind: hv.DeviceLightingController}, laon, "par-appareil"},
		{"then site", hv.Device{ID: "ctrl-2", Site: "armoire-1", Kind: hv.DeviceLightingController}, laon, "par-armoire"},
		{"site from the device", hv.Device{ID: "ctrl-2", Site: "armoire-1", Kind: hv.DeviceLightingController}, nil, "par-armoire"},
		{"then commune", hv.Device{ID: "ctrl-3", Site: "armoire-2", Kind: hv.DeviceLightingController},
			&hv.Site{ID: "armoire-2", Commune: "02408", EPCI: "200043495"}, "par-commune"},
		{"then epci", hv.Device{ID: "ctrl-4", Site: "armoire-3", Kind: hv.DeviceLightingController},
			&hv.Site{ID: "armoire-3", Commune: "02014", EPCI: "200043495"}, "par-epci"},
		{"then default", hv.Device{ID: "ctrl-5", Site: "armoire-4", Kind: hv.DeviceLightingController},
			&hv.Site{ID: "armoire-4", Commune: "02691", EPCI: "200071892"}, "reste"},
		{"not a controller", hv.Device{ID: "ctrl-1", Site: "armoire-1", Kind: hv.DeviceMeter}, laon, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := p.GroupOf(&tt.dev, tt.site)
			got := ""
			if g != nil {
				got = g.Name
			}
			if got != tt.want {
				t.Errorf("group %q, want %q", got, tt.want)
			}
		})
	}
	noDefault := mustParse(t, "programs: [{name: nuit, start: sunset, end: sunrise}]\ngroups: [{name: a, communes: [\"02408\"], program: nuit}]\n")
	if g := noDefault.GroupOf(&hv.Device{ID: "x", Kind: hv.DeviceLightingController}, &hv.Site{Commune: "02691"}); g != nil {
		t.Errorf("no default group: got %s", g.Name)
	}
	if g := (&Plan{}).GroupOf(&hv.Device{ID: "x", Kind: hv.DeviceLightingController}, nil); g != nil {
		t.Error("a plan never validated found a group")
	}
}

func TestDecreeAndCategory(t *testing.T) {
	p := mustParse(t, `
decrees:
  - {name: Laon, communes: ["02408", "02014"], from: "23:00", to: "05:00"}
categories:
  - {category: patrimoine, sites: [armoire-cathedrale], activity_end: "23:00"}
  - {category: parking, sites: [armoire-gare, armoire-hopital]}
`)
	if d := p.DecreeFor("02014"); d == nil || d.Name != "Laon" {
		t.Errorf("decree of 02014: %+v", d)
	}
	if d := p.DecreeFor("02691"); d != nil {
		t.Errorf("decree of 02691: %+v", d)
	}
	tests := []struct{ site, want, end string }{
		{"armoire-cathedrale", CategoryPatrimoine, "23:00"},
		{"armoire-hopital", CategoryParking, ""},
		{"armoire-rue", CategoryVoirie, ""},
	}
	for _, tt := range tests {
		t.Run(tt.site, func(t *testing.T) {
			if c := p.CategoryOf(tt.site); c.Category != tt.want || c.ActivityEnd != tt.end {
				t.Errorf("category %+v, want %s %s", c, tt.want, tt.end)
			}
		})
	}
}
