package lighting

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// at is a Paris wall-clock time in January 2027 (CET).
func at(day, h, m int) time.Time { return time.Date(2027, 1, day, h, m, 0, 0, paris) }

// night is a program across midnight: 100 % at dusk, 50 % at 23:00, off 01:00–05:00, 100 % until sunrise.
func night() Program {
	return Program{Device: "ctrl-1", Version: 7, Until: at(13, 8, 40), Steps: []Step{
		{At: at(12, 17, 20), Level: 100},
		{At: at(12, 23, 0), Level: 50},
		{At: at(13, 1, 0), Level: 0},
		{At: at(13, 5, 0), Level: 100},
	}}
}

func TestProgramValidate(t *testing.T) {
	with := func(f func(p *Program)) Program {
		p := night()
		p.Steps = append([]Step(nil), p.Steps...)
		f(&p)
		return p
	}
	cases := []struct {
		name string
		p    Program
		want string // substring of the error; "" for valid
	}{
		{"valid", night(), ""},
		{"one step", with(func(p *Program) { p.Steps = p.Steps[:1]; p.Until = at(12, 18, 0) }), ""},
		{"no device", with(func(p *Program) { p.Device = "" }), "no device"},
		{"zero version", with(func(p *Program) { p.Version = 0 }), "version"},
		{"negative version", with(func(p *Program) { p.Version = -3 }), "version"},
		{"no steps", with(func(p *Program) { p.Steps = nil }), "no steps"},
		{"too many steps", with(func(p *Program) { p.Steps = make([]Step, MaxSteps+1) }), "at most"},
		{"level above 100", with(func(p *Program) { p.Steps[1].Level = 100.5 }), "level"},
		{"negative level", with(func(p *Program) { p.Steps[2].Level = -1 }), "level"},
		{"NaN level", with(func(p *Program) { p.Steps[0].Level = math.NaN() }), "level"},
		{"unsorted", with(func(p *Program) { p.Steps[1], p.Steps[2] = p.Steps[2], p.Steps[1] }), "sorted"},
		{"duplicate time", with(func(p *Program) { p.Steps[2].At = p.Steps[1].At }), "sorted"},
		{"step without time", with(func(p *Program) { p.Steps[0].At = time.Time{} }), "no time"},
		{"until before last step", with(func(p *Program) { p.Until = at(13, 4, 0) }), "until"},
		{"until at last step", with(func(p *Program) { p.Until = p.Steps[3].At }), "until"},
		{"no until", with(func(p *Program) { p.Until = time.Time{} }), "until"},
	}
	for _, c := range cases {
		checkValidate(t, c.name, c.p.Validate(), c.want)
	}
}

func TestProgramLevelAtAcrossMidnight(t *testing.T) {
	p := night()
	cases := []struct {
		t     time.Time
		level float64
		ok    bool
	}{
		{at(12, 17, 19), 0, false}, // before the first step: failsafe
		{at(12, 17, 20), 100, true},
		{at(12, 22, 59), 100, true},
		{at(12, 23, 0), 50, true},
		{at(12, 23, 59), 50, true},
		{at(13, 0, 0), 50, true}, // midnight: the level of 23:00 holds
		{at(13, 0, 59), 50, true},
		{at(13, 1, 0), 0, true},
		{at(13, 4, 59), 0, true},
		{at(13, 5, 0), 100, true},
		{at(13, 8, 39), 100, true},
		{at(13, 8, 40), 0, false}, // Until is exclusive
		{at(14, 2, 0), 0, false},
		{at(13, 1, 30).UTC(), 0, true}, // the zone of t does not matter
	}
	for _, c := range cases {
		if l, ok := p.LevelAt(c.t); l != c.level || ok != c.ok {
			t.Errorf("LevelAt(%s) = %v, %v; want %v, %v", c.t.Format(time.RFC3339), l, ok, c.level, c.ok)
		}
	}
	if _, ok := (Program{}).LevelAt(at(12, 20, 0)); ok {
		t.Error("an empty program has a level")
	}
}

func TestProgramJSONRoundTrip(t *testing.T) {
	b, err := json.Marshal(night())
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProgram(b)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := p.LevelAt(at(13, 2, 0)); !ok || l != 0 || p.Version != 7 || len(p.Steps) != 4 {
		t.Errorf("round trip gave %+v", p)
	}
	if _, err := ParseProgram([]byte(`{"device":"x","version":1,"steps":[{"at":"2027-01-12T20:00:00Z","level":120}],"until":"2027-01-13T07:00:00Z"}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("level 120 accepted: %v", err)
	}
	if _, err := ParseProgram([]byte(`not json`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbage accepted: %v", err)
	}
}

func TestCommandValidate(t *testing.T) {
	until := at(12, 21, 30)
	cases := []struct {
		name string
		c    CommandMsg
		want string
	}{
		{"valid", CommandMsg{ID: "c1", Level: 30, Until: until}, ""},
		{"level 0", CommandMsg{ID: "c1", Level: 0, Until: until}, ""},
		{"level 100", CommandMsg{ID: "c1", Level: 100, Until: until}, ""},
		{"empty id", CommandMsg{Level: 30, Until: until}, "no id"},
		{"long id", CommandMsg{ID: strings.Repeat("x", MaxIDLen+1), Level: 30, Until: until}, "id longer"},
		{"level above 100", CommandMsg{ID: "c1", Level: 101, Until: until}, "level"},
		{"negative level", CommandMsg{ID: "c1", Level: -0.1, Until: until}, "level"},
		{"NaN level", CommandMsg{ID: "c1", Level: math.NaN(), Until: until}, "level"},
		{"no until", CommandMsg{ID: "c1", Level: 30}, "until"},
	}
	for _, c := range cases {
		checkValidate(t, c.name, c.c.Validate(), c.want)
	}
}

func TestParseCommandKeepsTheID(t *testing.T) {
	for payload, id := range map[string]string{
		`{"id":"c9","level":"high","until":"2027-01-12T21:30:00Z"}`: "c9", // wrong type: id recovered
		`{"id":"c9","level":150,"until":"2027-01-12T21:30:00Z"}`:    "c9", // out of range
		`{"level":50`: "", // truncated
		`[1,2]`:       "",
	} {
		c, err := ParseCommand([]byte(payload))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%v)", payload, err)
		}
		if c.ID != id {
			t.Errorf("%s: id %q, want %q", payload, c.ID, id)
		}
	}
}

func TestTopics(t *testing.T) {
	if ProgramTopic("d1") != "hv/d1/program" || CommandTopic("d1") != "hv/d1/cmd" || AckTopic("d1") != "hv/d1/ack" {
		t.Error("topics do not follow DESIGN.md")
	}
	for topic, want := range map[string][2]string{
		"hv/d1/program": {"d1", "program"}, "hv/d1/cmd": {"d1", "cmd"}, "hv/d1/ack": {"d1", "ack"},
	} {
		if d, k, ok := DeviceOf(topic); !ok || d != want[0] || k != want[1] {
			t.Errorf("DeviceOf(%s) = %s, %s, %v", topic, d, k, ok)
		}
	}
	for _, topic := range []string{"hv/lp", "hv//cmd", "x/d1/cmd", "hv/d1/cmd/x"} {
		if _, _, ok := DeviceOf(topic); ok {
			t.Errorf("DeviceOf(%s) ok", topic)
		}
	}
}

// checkValidate checks a Validate result: nil when want is empty, else ErrInvalid mentioning want.
func checkValidate(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v", name, err)
	case want != "" && err == nil:
		t.Errorf("%s: valid, want an error about %q", name, want)
	case want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: error %q, want ErrInvalid mentioning %q", name, err, want)
	}
}
