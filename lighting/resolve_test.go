package lighting

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/lighting/sun"
)

// Laon, where the resolve tests put their cabinet.
const laonLat, laonLon = 49.564, 3.620

// stepsText renders steps one per line, "15:04Z level" in UTC with the date when it is not the first's, and
// the flags: easy to read in a failure and to write in a table.
func stepsText(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&b, "%s %g", s.At.UTC().Format("01-02 15:04:05Z"), s.Level)
		if s.Boost {
			b.WriteString(" boost")
		}
		if s.Lux {
			b.WriteString(" lux")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// utcText renders a UTC instant as stepsText does.
func utcText(t time.Time) string { return t.UTC().Format("01-02 15:04:05Z") }

// resolve resolves a program over the night of date at Laon, failing the test on error.
func resolve(t *testing.T, d ProgramDef, date string) Night {
	t.Helper()
	n, err := d.Night(day(t, date), laonLat, laonLon)
	if err != nil {
		t.Fatalf("resolve %s: %v", date, err)
	}
	return n
}

// checkSteps compares steps with the expected lines of stepsText.
func checkSteps(t *testing.T, got []Step, want ...string) {
	t.Helper()
	if g, w := stepsText(got), strings.Join(want, "\n")+"\n"; g != w {
		t.Errorf("steps:\n%s\nwant:\n%s", g, w)
	}
}

// nightProgram is a validated one-night contract program, to read the level at any instant.
func nightProgram(t *testing.T, nights ...Night) Program {
	t.Helper()
	p, err := ProgramFrom("ctrl-test", 1, nights...)
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	return p
}

// coeurDeNuit is the default plan's usual night without the ramp.
var coeurDeNuit = ProgramDef{
	Name: "coeur-de-nuit", Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}, Level: 100,
	Steps: []LevelStep{
		{At: Event{At: "22:00"}, Level: 50},
		{At: Event{At: "23:00"}, Level: 0},
		{At: Event{At: "05:00"}, Level: 100},
	},
}

// TestWinterNight resolves a January night at Laon: switch-on at sunset exactly, the evening steps, the steps
// after midnight, switch-off at the next day's sunrise.
func TestWinterNight(t *testing.T) {
	n := resolve(t, coeurDeNuit, "2027-01-13")
	today := sun.Compute(day(t, "2027-01-13"), laonLat, laonLon, sun.Paris())
	tomorrow := sun.Compute(day(t, "2027-01-14"), laonLat, laonLon, sun.Paris())
	if !n.On.Equal(today.Sunset) || !n.Off.Equal(tomorrow.Sunrise) {
		t.Fatalf("on %s off %s, want sunset %s and the next sunrise %s", n.On, n.Off, today.Sunset, tomorrow.Sunrise)
	}
	if !n.Sun.Sunset.Equal(today.Sunset) || !n.SunNext.Sunrise.Equal(tomorrow.Sunrise) {
		t.Error("Sun and SunNext are not the evening's and the next morning's")
	}
	if n.Program != "coeur-de-nuit" || n.Date.Format(time.DateOnly) != "2027-01-13" || n.Date.Location() != sun.Paris() {
		t.Errorf("program %s date %s", n.Program, n.Date)
	}
	if utcText(n.From) != "01-13 11:00:00Z" || utcText(n.Until) != "01-14 11:00:00Z" {
		t.Errorf("from %s until %s", n.From, n.Until)
	}
	checkSteps(t, n.Steps,
		"01-13 11:00:00Z 0",
		utcText(today.Sunset)+" 100",
		"01-13 21:00:00Z 50",  // 22:00 CET
		"01-13 22:00:00Z 0",   // 23:00 CET
		"01-14 04:00:00Z 100", // 05:00 CET, past midnight
		utcText(tomorrow.Sunrise)+" 0",
	)
	// Sunset at Laon in mid-January is a little after 17:10 CET.
	if s := n.On.In(sun.Paris()).Format("15:04"); s < "17:05" || s > "17:20" {
		t.Errorf("sunset %s: not a January evening at Laon", s)
	}
	if n.Boost != nil || n.Lux != nil || n.Rule != "" {
		t.Errorf("boost %v lux %v rule %q", n.Boost, n.Lux, n.Rule)
	}
}

// TestDSTNights checks the nights of the clock changes: 23 and 25 hours long, fixed times at their UTC
// instants, and the level just before and after them.
func TestDSTNights(t *testing.T) {
	tests := []struct {
		name        string
		date        string
		span        time.Duration
		from, until string
		fixed       map[string]string // local step time → its UTC instant
	}{
		{"spring forward", "2027-03-27", 23 * time.Hour, "03-27 11:00:00Z", "03-28 10:00:00Z",
			map[string]string{"22:00": "03-27 21:00:00Z", "23:00": "03-27 22:00:00Z", "05:00": "03-28 03:00:00Z"}},
		{"fall back", "2027-10-30", 25 * time.Hour, "10-30 10:00:00Z", "10-31 11:00:00Z",
			map[string]string{"22:00": "10-30 20:00:00Z", "23:00": "10-30 21:00:00Z", "05:00": "10-31 04:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := resolve(t, coeurDeNuit, tt.date)
			if got := n.Until.Sub(n.From); got != tt.span {
				t.Errorf("night of %s", got)
			}
			if utcText(n.From) != tt.from || utcText(n.Until) != tt.until {
				t.Errorf("from %s until %s, want %s and %s", utcText(n.From), utcText(n.Until), tt.from, tt.until)
			}
			levels := map[string]float64{"22:00": 50, "23:00": 0, "05:00": 100}
			p := nightProgram(t, n)
			for local, utc := range tt.fixed {
				var s *Step
				for i := range n.Steps {
					if utcText(n.Steps[i].At) == utc {
						s = &n.Steps[i]
					}
				}
				if s == nil || s.Level != levels[local] {
					t.Errorf("%s local: no step %g at %s in\n%s", local, levels[local], utc, stepsText(n.Steps))
					continue
				}
				before, _ := p.LevelAt(s.At.Add(-time.Second))
				after, _ := p.LevelAt(s.At)
				if after != levels[local] || before == after {
					t.Errorf("%s local: level %g just before, %g at", local, before, after)
				}
			}
			if l, ok := p.LevelAt(n.Until.Add(-time.Second)); !ok || l != 0 {
				t.Errorf("last second of the night: %g %v", l, ok)
			}
			if _, ok := p.LevelAt(n.Until); ok {
				t.Error("the program runs past Until")
			}
		})
	}
}

// TestClockChangeTimes pins how fixed times inside the clock changes resolve (time.Date's normalisation).
func TestClockChangeTimes(t *testing.T) {
	d := ProgramDef{Name: "n", Start: Event{At: "20:00"}, End: Event{At: "06:00"}, Level: 100,
		Steps: []LevelStep{{At: Event{At: "02:30"}, Level: 30}}}
	tests := []struct{ date, want string }{
		{"2027-03-27", "03-28 01:30:00Z"}, // 02:30 does not exist: 03:30 CEST
		{"2027-10-30", "10-31 01:30:00Z"}, // 02:30 happens twice: the second, 02:30 CET
		{"2027-01-13", "01-14 01:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.date, func(t *testing.T) {
			n := resolve(t, d, tt.date)
			if len(n.Steps) != 4 || utcText(n.Steps[2].At) != tt.want {
				t.Errorf("steps\n%s\nwant the 02:30 step at %s", stepsText(n.Steps), tt.want)
			}
		})
	}
}

// TestSteps checks how steps fall in the night: before the switch-on, after the switch-off, sun-relative,
// at the same instant, fixed switch times.
func TestSteps(t *testing.T) {
	jan := sun.Compute(day(t, "2027-01-13"), laonLat, laonLon, sun.Paris())
	janNext := sun.Compute(day(t, "2027-01-14"), laonLat, laonLon, sun.Paris())
	tests := []struct {
		name string
		def  ProgramDef
		want []string
	}{
		{"a step before the switch-on sets the level at it", ProgramDef{
			Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}, Level: 100,
			Steps: []LevelStep{{At: Event{At: "16:00"}, Level: 60}, {At: Event{At: "22:00"}, Level: 30}}},
			[]string{"01-13 11:00:00Z 0", utcText(jan.Sunset) + " 60", "01-13 21:00:00Z 30", utcText(janNext.Sunrise) + " 0"}},
		{"a step after the switch-off is dropped", ProgramDef{
			Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}, Level: 100,
			Steps: []LevelStep{{At: Event{At: "23:00"}, Level: 50}, {At: Event{At: "10:00"}, Level: 80}}},
			[]string{"01-13 11:00:00Z 0", utcText(jan.Sunset) + " 100", "01-13 22:00:00Z 50", utcText(janNext.Sunrise) + " 0"}},
		{"sun-relative events", ProgramDef{
			Start: Event{Sun: SunDusk, Offset: -10 * time.Minute}, End: Event{Sun: SunDawn, Offset: 15 * time.Minute}, Level: 100,
			Steps: []LevelStep{{At: Event{Sun: SunSunset, Offset: 2 * time.Hour}, Level: 70}, {At: Event{Sun: SunSunrise, Offset: -time.Hour}, Level: 90}}},
			[]string{"01-13 11:00:00Z 0", utcText(jan.Dusk.Add(-10*time.Minute)) + " 100", utcText(jan.Sunset.Add(2*time.Hour)) + " 70",
				utcText(janNext.Sunrise.Add(-time.Hour)) + " 90", utcText(janNext.Dawn.Add(15*time.Minute)) + " 0"}},
		{"steps at the same instant: the last listed wins", ProgramDef{
			Start: Event{At: "18:00"}, End: Event{At: "07:00"}, Level: 100,
			Steps: []LevelStep{{At: Event{At: "20:00"}, Level: 40}, {At: Event{Sun: SunSunset, Offset: time.Date(2027, 1, 13, 19, 0, 0, 0, time.UTC).Sub(jan.Sunset)}, Level: 10}}},
			[]string{"01-13 11:00:00Z 0", "01-13 17:00:00Z 100", "01-13 19:00:00Z 10", "01-14 06:00:00Z 0"}},
		{"fixed switch times, level 0 then up", ProgramDef{
			Start: Event{At: "19:00"}, End: Event{At: "06:30"}, Level: 0,
			Steps: []LevelStep{{At: Event{At: "05:30"}, Level: 100}}},
			[]string{"01-13 11:00:00Z 0", "01-14 04:30:00Z 100", "01-14 05:30:00Z 0"}},
		{"a start before noon is the next morning's", ProgramDef{
			Start: Event{At: "05:00"}, End: Event{Sun: SunSunrise}, Level: 100},
			[]string{"01-13 11:00:00Z 0", "01-14 04:00:00Z 100", utcText(janNext.Sunrise) + " 0"}},
		{"a switch-off past noon is cut at the end of the night", ProgramDef{
			Start: Event{At: "12:00"}, End: Event{Sun: SunSunrise, Offset: 4 * time.Hour}, Level: 100},
			[]string{"01-13 11:00:00Z 100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.def.Name = "test"
			n := resolve(t, tt.def, "2027-01-13")
			checkSteps(t, n.Steps, tt.want...)
		})
	}
}

func TestRamp(t *testing.T) {
	base := ProgramDef{Name: "rampe", Start: Event{At: "18:00"}, End: Event{At: "07:00"}, Level: 100}
	tests := []struct {
		name  string
		ramp  time.Duration
		steps []LevelStep
		want  []string
	}{
		{"5 minutes: one sub-step a minute, starting at the change", 5 * time.Minute,
			[]LevelStep{{At: Event{At: "23:00"}, Level: 50}},
			[]string{
				"01-13 11:00:00Z 0",
				"01-13 17:00:00Z 20", "01-13 17:01:00Z 40", "01-13 17:02:00Z 60", "01-13 17:03:00Z 80", "01-13 17:04:00Z 100",
				"01-13 22:00:00Z 90", "01-13 22:01:00Z 80", "01-13 22:02:00Z 70", "01-13 22:03:00Z 60", "01-13 22:04:00Z 50",
				"01-14 06:00:00Z 40", "01-14 06:01:00Z 30", "01-14 06:02:00Z 20", "01-14 06:03:00Z 10", "01-14 06:04:00Z 0",
			}},
		{"30 minutes: at most 10 sub-steps", 30 * time.Minute, nil,
			[]string{
				"01-13 11:00:00Z 0",
				"01-13 17:00:00Z 10", "01-13 17:03:00Z 20", "01-13 17:06:00Z 30", "01-13 17:09:00Z 40", "01-13 17:12:00Z 50",
				"01-13 17:15:00Z 60", "01-13 17:18:00Z 70", "01-13 17:21:00Z 80", "01-13 17:24:00Z 90", "01-13 17:27:00Z 100",
				"01-14 06:00:00Z 90", "01-14 06:03:00Z 80", "01-14 06:06:00Z 70", "01-14 06:09:00Z 60", "01-14 06:12:00Z 50",
				"01-14 06:15:00Z 40", "01-14 06:18:00Z 30", "01-14 06:21:00Z 20", "01-14 06:24:00Z 10", "01-14 06:27:00Z 0",
			}},
		{"cut by the next change, which starts from where it got to", 5 * time.Minute,
			[]LevelStep{{At: Event{At: "23:00"}, Level: 0}, {At: Event{At: "23:02"}, Level: 100}},
			[]string{
				"01-13 11:00:00Z 0",
				"01-13 17:00:00Z 20", "01-13 17:01:00Z 40", "01-13 17:02:00Z 60", "01-13 17:03:00Z 80", "01-13 17:04:00Z 100",
				"01-13 22:00:00Z 80", "01-13 22:01:00Z 60",
				"01-13 22:02:00Z 68", "01-13 22:03:00Z 76", "01-13 22:04:00Z 84", "01-13 22:05:00Z 92", "01-13 22:06:00Z 100",
				"01-14 06:00:00Z 80", "01-14 06:01:00Z 60", "01-14 06:02:00Z 40", "01-14 06:03:00Z 20", "01-14 06:04:00Z 0",
			}},
		{"under 2 minutes: a plain switch", 90 * time.Second, nil,
			[]string{"01-13 11:00:00Z 0", "01-13 17:00:00Z 100", "01-14 06:00:00Z 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base
			d.Ramp, d.Steps = tt.ramp, tt.steps
			if err := (&Plan{Programs: []ProgramDef{d}}).Validate(); err != nil {
				t.Fatal(err)
			}
			checkSteps(t, resolve(t, d, "2027-01-13").Steps, tt.want...)
		})
	}
}

func TestBoostAndLux(t *testing.T) {
	d := ProgramDef{Name: "gradation", Start: Event{At: "18:00"}, End: Event{At: "07:00"}, Level: 100,
		Steps:    []LevelStep{{At: Event{At: "22:00"}, Level: 40}, {At: Event{At: "05:00"}, Level: 80}},
		Presence: &PresenceDef{Level: 80, Hold: 3 * time.Minute},
		Lux:      &LuxDef{Below: 15, Level: 100, Window: time.Hour}}
	n := resolve(t, d, "2027-01-13")
	checkSteps(t, n.Steps,
		"01-13 11:00:00Z 0",
		"01-13 16:00:00Z 0 lux", // split at On − 1h
		"01-13 17:00:00Z 100",   // at the boost level: not marked
		"01-13 21:00:00Z 40 boost",
		"01-14 04:00:00Z 80",
		"01-14 06:00:00Z 0 lux",
		"01-14 07:00:00Z 0", // split at Off + 1h
	)
	if n.Boost == nil || *n.Boost != (Boost{Level: 80, HoldS: 180}) {
		t.Errorf("boost %+v", n.Boost)
	}
	if n.Lux == nil || *n.Lux != (Lux{Below: 15, Level: 100}) {
		t.Errorf("lux %+v", n.Lux)
	}
	p := nightProgram(t, n)
	if p.Boost == nil || p.Lux == nil {
		t.Fatal("the contract program lost boost or lux")
	}
	for _, c := range []struct {
		at          string
		level       float64
		boost, lux  bool
		description string
	}{
		{"01-13 15:59:59Z", 0, false, false, "before the lux window"},
		{"01-13 16:30:00Z", 0, false, true, "in the evening lux window"},
		{"01-13 21:30:00Z", 40, true, false, "dimmed: boost"},
		{"01-14 06:30:00Z", 0, false, true, "in the morning lux window"},
		{"01-14 07:00:00Z", 0, false, false, "after it"},
	} {
		tm, _ := time.Parse("2006-01-02 15:04:05Z", "2027-"+c.at)
		s, ok := p.StepAt(tm)
		if !ok || s.Level != c.level || s.Boost != c.boost || s.Lux != c.lux {
			t.Errorf("%s (%s): %+v %v", c.at, c.description, s, ok)
		}
	}

	// A window reaching past the night's bounds is cut at them; window 0 guards nothing.
	d.Start, d.End, d.Lux.Window = Event{At: "13:00"}, Event{At: "10:30"}, 3*time.Hour
	checkSteps(t, resolve(t, d, "2027-01-13").Steps,
		"01-13 11:00:00Z 0 lux",
		"01-13 12:00:00Z 100",
		"01-13 21:00:00Z 40 boost",
		"01-14 04:00:00Z 80",
		"01-14 09:30:00Z 0 lux",
	)
	d.Lux.Window = 0
	if n := resolve(t, d, "2027-01-13"); n.Lux != nil {
		t.Errorf("window 0: lux %+v", n.Lux)
	}
}

func TestExtinction(t *testing.T) {
	n := resolve(t, ProgramDef{Name: "ete", Extinction: true}, "2027-07-20")
	if !n.On.IsZero() || !n.Off.IsZero() || n.Boost != nil || n.Lux != nil {
		t.Errorf("on %s off %s boost %v lux %v", n.On, n.Off, n.Boost, n.Lux)
	}
	checkSteps(t, n.Steps, "07-20 10:00:00Z 0")
	if n.Sun.Sunset.IsZero() {
		t.Error("the sun times are not filled")
	}
	p := nightProgram(t, n)
	if l, ok := p.LevelAt(n.From.Add(12 * time.Hour)); !ok || l != 0 {
		t.Errorf("midnight: %g %v", l, ok)
	}
}

func TestNightErrors(t *testing.T) {
	tests := []struct {
		name     string
		def      ProgramDef
		date     string
		lat, lon float64
		err      string
	}{
		{"switch-off before switch-on", ProgramDef{Name: "n", Start: Event{Sun: SunSunset}, End: Event{At: "16:00"}, Level: 100},
			"2027-01-13", laonLat, laonLon, `program "n", night of 2027-01-13: invalid: switch-off 2027-01-13T15:00:00Z is not after switch-on`},
		{"polar night", ProgramDef{Name: "n", Start: Event{Sun: SunSunset}, End: Event{Sun: SunSunrise}, Level: 100},
			"2027-12-21", 80, 15, `program "n", night of 2027-12-21: invalid: start: no sunset that day at this latitude (polar day or night)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.def.Night(day(t, tt.date), tt.lat, tt.lon)
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Fatalf("error %v, want %s…", err, tt.err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("error does not match ErrInvalid")
			}
		})
	}
}

// TestPlanNight resolves through a group: the calendar's choice and rule.
func TestPlanNight(t *testing.T) {
	p := mustParse(t, `
programs:
  - {name: nuit, start: sunset, end: sunrise, steps: [{at: "23:00", level: 0}, {at: "05:00", level: 100}]}
  - {name: fete, start: sunset, end: sunrise}
calendars:
  - {name: std, default: nuit, rules: [{name: "Fête nationale", dates: ["07-14"], program: fete}]}
groups:
  - {name: tout, default: true, calendar: std}
`)
	g, _ := p.Group("tout")
	n, err := p.Night(g, day(t, "2027-07-14"), laonLat, laonLon)
	if err != nil {
		t.Fatal(err)
	}
	if n.Program != "fete" || n.Rule != "Fête nationale" || len(n.Steps) != 3 {
		t.Errorf("14 July: %s %q\n%s", n.Program, n.Rule, stepsText(n.Steps))
	}
	n, err = p.Night(g, day(t, "2027-07-15"), laonLat, laonLon)
	if err != nil {
		t.Fatal(err)
	}
	if n.Program != "nuit" || n.Rule != "" || len(n.Steps) != 5 {
		t.Errorf("15 July: %s %q\n%s", n.Program, n.Rule, stepsText(n.Steps))
	}
	if _, err := p.Night(nil, day(t, "2027-07-15"), laonLat, laonLon); err == nil {
		t.Error("no group: no error")
	}
}

func TestProgramFrom(t *testing.T) {
	d := coeurDeNuit
	d.Presence = &PresenceDef{Level: 100, Hold: time.Minute}
	first := resolve(t, d, "2027-03-27")
	second := resolve(t, d, "2027-03-28")
	third := resolve(t, d, "2027-03-29")

	p, err := ProgramFrom("ctrl-1", 7, first, second)
	if err != nil {
		t.Fatal(err)
	}
	if p.Device != "ctrl-1" || p.Version != 7 || !p.Steps[0].At.Equal(first.From) || !p.Until.Equal(second.Until) {
		t.Errorf("program %s v%d from %s until %s", p.Device, p.Version, p.Steps[0].At, p.Until)
	}
	if p.Boost == nil || p.Boost.HoldS != 60 {
		t.Errorf("boost %+v", p.Boost)
	}
	// The seam at noon: night 1's switch-off step (0) and night 2's first step (0) merge.
	if want := len(first.Steps) + len(second.Steps) - 1; len(p.Steps) != want {
		t.Errorf("%d steps, want %d:\n%s", len(p.Steps), want, stepsText(p.Steps))
	}
	seam := first.Until
	for _, c := range []struct {
		t     time.Time
		level float64
	}{
		{seam.Add(-time.Second), 0},
		{seam, 0},
		{second.On.Add(-time.Second), 0},
		{second.On, 100},
		{first.Off.Add(-time.Second), 100},
		{time.Date(2027, 3, 28, 21, 30, 0, 0, time.UTC), 0}, // 23:30 CEST on the second night
	} {
		if l, ok := p.LevelAt(c.t); !ok || l != c.level {
			t.Errorf("level at %s: %g %v, want %g", utcText(c.t), l, ok, c.level)
		}
	}

	_, err = ProgramFrom("ctrl-1", 8, first, third)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "night 1 (2027-03-29T10:00:00Z) does not start where night 0 ends (2027-03-28T10:00:00Z)") {
		t.Errorf("non-consecutive nights: %v", err)
	}
	if _, err := ProgramFrom("ctrl-1", 9); err == nil {
		t.Error("no nights: no error")
	}
	if _, err := ProgramFrom("", 9, first); err == nil {
		t.Error("no device: no error (the program must be validated)")
	}
}

// TestDefaultPlanYear resolves every program of the shipped plan for every night of a year at Laon: each
// night resolves, its steps are sorted within [From, Until), and a week of nights makes a valid program.
func TestDefaultPlanYear(t *testing.T) {
	p, err := LoadPlan(configs.Lighting(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.Programs {
		t.Run(d.Name, func(t *testing.T) {
			var week []Night
			for date := day(t, "2027-01-01"); date.Year() == 2027; date = date.AddDate(0, 0, 1) {
				n, err := d.Night(date, laonLat, laonLon)
				if err != nil {
					t.Fatalf("%s: %v", date.Format(time.DateOnly), err)
				}
				if !n.Steps[0].At.Equal(n.From) || !n.Steps[len(n.Steps)-1].At.Before(n.Until) {
					t.Fatalf("%s: steps outside the night:\n%s", date.Format(time.DateOnly), stepsText(n.Steps))
				}
				if len(week) == 7 {
					if _, err := ProgramFrom("ctrl-test", 1, week...); err != nil {
						t.Fatalf("week to %s: %v", date.Format(time.DateOnly), err)
					}
					week = week[:0]
				}
				week = append(week, n)
			}
		})
	}
}
