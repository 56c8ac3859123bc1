package lighting

import (
	"time"

	"github.com/useda02/hyperviseur/lighting/sun"
)

// frenchWeekdays are the weekday names calendar rules use.
var frenchWeekdays = map[string]time.Weekday{
	"lundi": time.Monday, "mardi": time.Tuesday, "mercredi": time.Wednesday, "jeudi": time.Thursday,
	"vendredi": time.Friday, "samedi": time.Saturday, "dimanche": time.Sunday,
}

// validMonthDay reports whether s is a date "MM-DD" of some year (02-29 included).
func validMonthDay(s string) bool {
	if len(s) != 5 || s[2] != '-' {
		return false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	m := int(s[0]-'0')*10 + int(s[1]-'0')
	d := int(s[3]-'0')*10 + int(s[4]-'0')
	if m < 1 || m > 12 || d < 1 {
		return false
	}
	// 2024 is a leap year: every MM-DD that exists in some year exists in it.
	return d <= time.Date(2024, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Easter is Easter Sunday of a Gregorian year, at 00:00 UTC (a calendar date), by the anonymous Gregorian
// algorithm (Meeus, Jones, Butcher).
func Easter(year int) time.Time {
	a := year % 19             // position in the 19-year Metonic cycle
	b, c := year/100, year%100 // century, year within it
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3              // the lunar correction
	h := (19*a + b - d - g + 15) % 30 // epact: days from the equinox to the paschal full moon, roughly
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7 // days from the full moon to the next Sunday
	m := (a + 11*h + 22*l) / 451      // the two exceptions of the Gregorian rule
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
}

// PublicHolidays returns the eleven French public holidays (jours fériés of metropolitan France, without the
// Alsace-Moselle extras) of a year, by date "YYYY-MM-DD" with their French names.
func PublicHolidays(year int) map[string]string {
	easter := Easter(year)
	day := func(m time.Month, d int) string {
		return time.Date(year, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	fromEaster := func(days int) string { return easter.AddDate(0, 0, days).Format(time.DateOnly) }
	return map[string]string{
		day(time.January, 1):   "Jour de l'an",
		fromEaster(1):          "Lundi de Pâques",
		day(time.May, 1):       "Fête du Travail",
		day(time.May, 8):       "Victoire 1945",
		fromEaster(39):         "Ascension",
		fromEaster(50):         "Lundi de Pentecôte",
		day(time.July, 14):     "Fête nationale",
		day(time.August, 15):   "Assomption",
		day(time.November, 1):  "Toussaint",
		day(time.November, 11): "Armistice 1918",
		day(time.December, 25): "Noël",
	}
}

// PublicHoliday returns the French name of the public holiday on the local date of t in Paris, if it is one.
func PublicHoliday(t time.Time) (string, bool) {
	p := t.In(sun.Paris())
	name, ok := PublicHolidays(p.Year())[p.Format(time.DateOnly)]
	return name, ok
}

// isHoliday reports whether a date (at 00:00 UTC, as nightDate gives) is a public holiday, as PublicHolidays
// lists them, without building the map.
func isHoliday(d time.Time) bool {
	switch d.Format("01-02") {
	case "01-01", "05-01", "05-08", "07-14", "08-15", "11-01", "11-11", "12-25":
		return true
	}
	// Both dates are at 00:00 UTC: the difference is whole days.
	switch d.Sub(Easter(d.Year())) / (24 * time.Hour) {
	case 1, 39, 50: // Monday, Ascension Thursday, Whit Monday
		return true
	}
	return false
}

// nightDate is the local date (Paris) of t at 00:00 UTC, so calendar arithmetic ignores DST.
func nightDate(t time.Time) time.Time {
	y, m, d := t.In(sun.Paris()).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Matches reports whether the rule applies to the night starting the evening of date (read in Paris). Every
// criterion that is set must hold: one of the weekdays, one of the dates, within From–To (inclusive; a period
// with From after To wraps the new year). PublicHolidays and HolidayEves are one criterion when both are set:
// the night is a holiday's or a holiday's eve's (the night before a holiday).
func (r CalendarRule) Matches(date time.Time) bool {
	d := nightDate(date)
	md := d.Format("01-02")
	if len(r.Weekdays) > 0 {
		found := false
		for _, w := range r.Weekdays {
			if wd, ok := frenchWeekdays[w]; ok && wd == d.Weekday() {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(r.Dates) > 0 {
		found := false
		for _, x := range r.Dates {
			if x == md {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if r.From != "" && r.To != "" {
		// MM-DD strings order like the dates they name within a year.
		in := r.From <= md && md <= r.To
		if r.From > r.To {
			in = md >= r.From || md <= r.To
		}
		if !in {
			return false
		}
	}
	if r.PublicHolidays || r.HolidayEves {
		if !(r.PublicHolidays && isHoliday(d) || r.HolidayEves && isHoliday(d.AddDate(0, 0, 1))) {
			return false
		}
	}
	return true
}

// Choose returns the program of the night starting the evening of date (read in Paris) and the name of the
// rule that chose it: the first rule that matches, else the calendar's default with rule "".
func (c Calendar) Choose(date time.Time) (program, rule string) {
	for _, r := range c.Rules {
		if r.Matches(date) {
			return r.Program, r.Name
		}
	}
	return c.Default, ""
}

// ProgramOn returns the program a group runs the night starting the evening of date (read in Paris) and the
// calendar rule that chose it ("" for the calendar's default, or for a group with a program of its own). The
// plan must have been validated; a nil group, or a name the plan does not define, gives a zero ProgramDef.
func (p *Plan) ProgramOn(g *Group, date time.Time) (ProgramDef, string) {
	if g == nil {
		return ProgramDef{}, ""
	}
	if g.Program != "" {
		d, _ := p.Program(g.Program)
		return d, ""
	}
	cal, ok := p.Calendar(g.Calendar)
	if !ok {
		return ProgramDef{}, ""
	}
	name, rule := cal.Choose(date)
	d, _ := p.Program(name)
	return d, rule
}
