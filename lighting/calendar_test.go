package lighting

import (
	"testing"
	"time"

	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/lighting/sun"
)

// day is a local date in Paris at 00:00.
func day(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.ParseInLocation(time.DateOnly, s, sun.Paris())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEaster(t *testing.T) {
	tests := []struct {
		year int
		want string
	}{
		{1818, "1818-03-22"}, // the earliest possible date
		{1943, "1943-04-25"}, // the latest
		{2000, "2000-04-23"},
		{2019, "2019-04-21"},
		{2024, "2024-03-31"},
		{2025, "2025-04-20"},
		{2026, "2026-04-05"},
		{2027, "2027-03-28"},
		{2038, "2038-04-25"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Easter(tt.year).Format(time.DateOnly); got != tt.want {
				t.Errorf("Easter %d = %s, want %s", tt.year, got, tt.want)
			}
		})
	}
}

func TestPublicHolidays(t *testing.T) {
	for _, year := range []int{2024, 2025, 2026, 2027, 2038} {
		if n := len(PublicHolidays(year)); n != 11 {
			t.Errorf("%d: %d holidays, want 11", year, n)
		}
	}
	h := PublicHolidays(2027)
	tests := []struct{ date, name string }{
		{"2027-01-01", "Jour de l'an"},
		{"2027-03-29", "Lundi de Pâques"},
		{"2027-05-01", "Fête du Travail"},
		{"2027-05-06", "Ascension"},
		{"2027-05-08", "Victoire 1945"},
		{"2027-05-17", "Lundi de Pentecôte"},
		{"2027-07-14", "Fête nationale"},
		{"2027-08-15", "Assomption"},
		{"2027-11-01", "Toussaint"},
		{"2027-11-11", "Armistice 1918"},
		{"2027-12-25", "Noël"},
	}
	for _, tt := range tests {
		t.Run(tt.date, func(t *testing.T) {
			if h[tt.date] != tt.name {
				t.Errorf("%s: %q, want %q", tt.date, h[tt.date], tt.name)
			}
			// isHoliday, which rules use, agrees with the map.
			if !isHoliday(nightDate(day(t, tt.date))) {
				t.Error("isHoliday false")
			}
			if name, ok := PublicHoliday(day(t, tt.date).Add(20 * time.Hour)); !ok || name != tt.name {
				t.Errorf("PublicHoliday %q %v", name, ok)
			}
		})
	}
	for d := day(t, "2027-01-01"); d.Year() == 2027; d = d.AddDate(0, 0, 1) {
		_, inMap := h[d.Format(time.DateOnly)]
		if isHoliday(nightDate(d)) != inMap {
			t.Errorf("%s: isHoliday %v, in PublicHolidays %v", d.Format(time.DateOnly), !inMap, inMap)
		}
	}
}

func TestRuleMatches(t *testing.T) {
	tests := []struct {
		name string
		rule CalendarRule
		date string
		want bool
	}{
		{"weekday", CalendarRule{Weekdays: []string{"vendredi", "samedi"}}, "2027-01-15", true}, // a Friday
		{"other weekday", CalendarRule{Weekdays: []string{"vendredi", "samedi"}}, "2027-01-17", false},
		{"date", CalendarRule{Dates: []string{"07-13", "07-14"}}, "2027-07-13", true},
		{"other date", CalendarRule{Dates: []string{"07-13", "07-14"}}, "2027-07-15", false},
		{"period", CalendarRule{From: "06-01", To: "08-15"}, "2027-08-15", true},
		{"before period", CalendarRule{From: "06-01", To: "08-15"}, "2027-05-31", false},
		{"wrap: first day", CalendarRule{From: "12-20", To: "01-02"}, "2027-12-20", true},
		{"wrap: new year's eve", CalendarRule{From: "12-20", To: "01-02"}, "2027-12-31", true},
		{"wrap: new year", CalendarRule{From: "12-20", To: "01-02"}, "2028-01-01", true},
		{"wrap: last day", CalendarRule{From: "12-20", To: "01-02"}, "2028-01-02", true},
		{"wrap: after", CalendarRule{From: "12-20", To: "01-02"}, "2028-01-03", false},
		{"wrap: before", CalendarRule{From: "12-20", To: "01-02"}, "2027-12-19", false},
		{"single-day period", CalendarRule{From: "02-29", To: "02-29"}, "2028-02-29", true},
		{"holiday", CalendarRule{PublicHolidays: true}, "2027-05-06", true},
		{"not a holiday", CalendarRule{PublicHolidays: true}, "2027-05-05", false},
		{"holiday eve", CalendarRule{HolidayEves: true}, "2027-05-05", true}, // the night before Ascension
		{"holiday is not its own eve", CalendarRule{HolidayEves: true}, "2027-05-06", false},
		{"eve across the year", CalendarRule{HolidayEves: true}, "2027-12-31", true},
		{"eve of Easter Monday", CalendarRule{HolidayEves: true}, "2027-03-28", true},
		{"holidays or eves", CalendarRule{PublicHolidays: true, HolidayEves: true}, "2027-05-06", true},
		{"holidays or eves: eve", CalendarRule{PublicHolidays: true, HolidayEves: true}, "2027-05-05", true},
		{"all criteria hold", CalendarRule{Weekdays: []string{"mercredi"}, PublicHolidays: true}, "2027-07-14", true},
		{"one criterion fails", CalendarRule{Weekdays: []string{"jeudi"}, PublicHolidays: true}, "2027-07-14", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.Matches(day(t, tt.date)); got != tt.want {
				t.Errorf("%s: %v, want %v", tt.date, got, tt.want)
			}
		})
	}
}

// TestDateOfTheNight checks a rule reads the evening's local date: an instant after midnight UTC that is
// still the evening before in Paris, or a UTC midnight that is already 01:00 in Paris.
func TestDateOfTheNight(t *testing.T) {
	r := CalendarRule{Dates: []string{"07-14"}}
	if !r.Matches(time.Date(2027, 7, 14, 21, 30, 0, 0, time.UTC)) { // 23:30 in Paris on the 14th
		t.Error("14 July 23:30 Paris not matched")
	}
	if r.Matches(time.Date(2027, 7, 14, 22, 30, 0, 0, time.UTC)) { // 00:30 on the 15th in Paris
		t.Error("15 July 00:30 Paris matched 07-14")
	}
}

// TestStandardCalendar checks the rule precedence of the shipped calendar, first match wins.
func TestStandardCalendar(t *testing.T) {
	p, err := LoadPlan(configs.Lighting(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, ok := p.Group("laon")
	if !ok {
		t.Fatal("no group laon")
	}
	tests := []struct {
		date, program, rule string
	}{
		{"2027-01-13", "coeur-de-nuit", ""},                             // a Wednesday
		{"2027-01-15", "coeur-de-nuit-weekend", "Week-end"},             // a Friday
		{"2027-01-17", "coeur-de-nuit", ""},                             // a Sunday
		{"2027-07-13", "fete", "Fête nationale"},                        // also a holiday eve: the date wins
		{"2027-07-14", "fete", "Fête nationale"},                        // a Wednesday
		{"2027-07-16", "coeur-de-nuit-weekend", "Week-end"},             // a Friday
		{"2027-12-19", "coeur-de-nuit", ""},                             // a Sunday
		{"2027-12-24", "fete", "Fêtes de fin d'année"},                  // a Friday and Christmas Eve
		{"2027-12-31", "fete", "Fêtes de fin d'année"},                  // eve of 1 January
		{"2028-01-02", "fete", "Fêtes de fin d'année"},                  // a Sunday
		{"2028-01-03", "coeur-de-nuit", ""},                             // a Monday
		{"2027-05-05", "coeur-de-nuit-weekend", "Veille de jour férié"}, // a Wednesday, eve of Ascension
		{"2027-04-30", "coeur-de-nuit-weekend", "Veille de jour férié"}, // a Friday, eve of 1 May: first rule
		{"2027-05-06", "coeur-de-nuit", ""},                             // Ascension itself
		{"2027-05-16", "coeur-de-nuit-weekend", "Veille de jour férié"}, // Whit Sunday
		{"2027-11-10", "coeur-de-nuit-weekend", "Veille de jour férié"}, // eve of 11 November
	}
	for _, tt := range tests {
		t.Run(tt.date, func(t *testing.T) {
			d, rule := p.ProgramOn(g, day(t, tt.date))
			if d.Name != tt.program || rule != tt.rule {
				t.Errorf("%s: %s (%q), want %s (%q)", tt.date, d.Name, rule, tt.program, tt.rule)
			}
		})
	}
}

func TestProgramOn(t *testing.T) {
	p := mustParse(t, `
programs:
  - {name: nuit, start: sunset, end: sunrise}
  - {name: fete, start: sunset, end: sunrise}
calendars:
  - {name: std, default: nuit, rules: [{name: "Noël", dates: ["12-24"], program: fete}]}
groups:
  - {name: fixe, communes: ["02408"], program: nuit}
  - {name: cal, default: true, calendar: std}
`)
	fixe, _ := p.Group("fixe")
	cal, _ := p.Group("cal")
	tests := []struct {
		name          string
		g             *Group
		date          string
		program, rule string
	}{
		{"a group's own program, whatever the date", fixe, "2027-12-24", "nuit", ""},
		{"a rule", cal, "2027-12-24", "fete", "Noël"},
		{"the default", cal, "2027-12-23", "nuit", ""},
		{"no group", nil, "2027-12-24", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, rule := p.ProgramOn(tt.g, day(t, tt.date))
			if d.Name != tt.program || rule != tt.rule {
				t.Errorf("%s (%q), want %s (%q)", d.Name, rule, tt.program, tt.rule)
			}
		})
	}
}
