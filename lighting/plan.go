package lighting

import (
	"time"

	"github.com/useda02/hyperviseur/lighting/sun"
)

// Plan is the lighting configuration (configs/lighting/*.yaml, and programs edited through the API): the
// programs, the calendars that choose a program per night, the groups of controllers that follow a calendar,
// the local decrees and the tariff. It is immutable once loaded; an edit builds a new Plan.
type Plan struct {
	Programs  []ProgramDef `yaml:"programs" json:"programs"`
	Calendars []Calendar   `yaml:"calendars" json:"calendars"`
	Groups    []Group      `yaml:"groups" json:"groups"`
	// Decrees are the communes' local switch-off orders (arrêtés municipaux), checked by the compliance report.
	Decrees []Decree `yaml:"decrees" json:"decrees"`
	// Categories classify lighting sites under the arrêté du 27 décembre 2018 (voirie when unlisted).
	Categories []SiteCategory `yaml:"categories" json:"categories"`
	// TariffEURPerKWh prices the savings.
	TariffEURPerKWh float64 `yaml:"tariff_eur_kwh" json:"tariff_eur_kwh"`

	programs  map[string]int // name → index in Programs
	calendars map[string]int
	index     *planIndex // groups, decrees and categories by key; built by Validate (load.go)
}

// Event is a time of the night: a sun event with an offset ("sunset", "sunrise", "dusk", "dawn"), or a fixed
// local time "HH:MM" (Europe/Paris). Exactly one of Sun and At is set.
type Event struct {
	Sun    string        `yaml:"sun,omitempty" json:"sun,omitempty"`
	Offset time.Duration `yaml:"offset,omitempty" json:"offset,omitempty"`
	At     string        `yaml:"at,omitempty" json:"at,omitempty"`
}

// ProgramDef is a control program as configured (TALQ control program): lights on between Start and End at
// Level, with fixed-time level steps in between, ramps, a presence boost and a luminosity guard. Fixed times
// from 12:00 belong to the evening of the night's date, before 12:00 to the next morning.
type ProgramDef struct {
	Name  string `yaml:"name" json:"name"`
	Label string `yaml:"label,omitempty" json:"label,omitempty"` // French, for the UI
	// Extinction: the lights stay off the whole night (summer switch-off); Start, End, Steps are ignored.
	Extinction bool          `yaml:"extinction,omitempty" json:"extinction,omitempty"`
	Start      Event         `yaml:"start" json:"start"`                     // switch-on
	End        Event         `yaml:"end" json:"end"`                         // switch-off, the next morning
	Level      float64       `yaml:"level" json:"level"`                     // from Start until the first step; default 100
	Steps      []LevelStep   `yaml:"steps,omitempty" json:"steps,omitempty"` // by time of night
	Ramp       time.Duration `yaml:"ramp,omitempty" json:"ramp,omitempty"`   // each level change spread over Ramp
	Presence   *PresenceDef  `yaml:"presence,omitempty" json:"presence,omitempty"`
	Lux        *LuxDef       `yaml:"lux,omitempty" json:"lux,omitempty"`
}

// LevelStep is a level from a time of night ("HH:MM" or a sun event) until the next step or End.
type LevelStep struct {
	At    Event   `yaml:"at" json:"at"`
	Level float64 `yaml:"level" json:"level"`
}

// PresenceDef is a presence boost: while the program runs below Level between Start and End, a detection
// raises the level to Level for Hold.
type PresenceDef struct {
	Level float64       `yaml:"level" json:"level"`
	Hold  time.Duration `yaml:"hold" json:"hold"`
}

// LuxDef is a luminosity guard: within Window before Start and after End, a light sensor reading below Below
// lux switches the lights on at Level (default 100).
type LuxDef struct {
	Below  float64       `yaml:"below" json:"below"`
	Level  float64       `yaml:"level,omitempty" json:"level,omitempty"`
	Window time.Duration `yaml:"window,omitempty" json:"window,omitempty"` // default 1h
}

// Calendar chooses the program of each night: the first rule that matches the night's date (the evening's
// local date), else Default.
type Calendar struct {
	Name    string         `yaml:"name" json:"name"`
	Default string         `yaml:"default" json:"default"`
	Rules   []CalendarRule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// CalendarRule matches dates by any combination of its criteria (all that are set must hold): weekdays
// ("lundi"…"dimanche"), dates ("MM-DD"), a yearly period From–To ("MM-DD", inclusive, may wrap the new
// year), French public holidays and their eves.
type CalendarRule struct {
	Name           string   `yaml:"name" json:"name"` // French, shown in previews: "14 juillet", "Noël"
	Program        string   `yaml:"program" json:"program"`
	Weekdays       []string `yaml:"weekdays,omitempty" json:"weekdays,omitempty"`
	Dates          []string `yaml:"dates,omitempty" json:"dates,omitempty"`
	From           string   `yaml:"from,omitempty" json:"from,omitempty"`
	To             string   `yaml:"to,omitempty" json:"to,omitempty"`
	PublicHolidays bool     `yaml:"public_holidays,omitempty" json:"public_holidays,omitempty"`
	HolidayEves    bool     `yaml:"holiday_eves,omitempty" json:"holiday_eves,omitempty"` // the night before a holiday
}

// Group is a set of controllers following one calendar (or one program). Membership goes to the most
// specific group: by device, then by cabinet (site), then commune, then EPCI, then the Default group.
type Group struct {
	Name     string   `yaml:"name" json:"name"`
	Label    string   `yaml:"label,omitempty" json:"label,omitempty"`
	Calendar string   `yaml:"calendar,omitempty" json:"calendar,omitempty"`
	Program  string   `yaml:"program,omitempty" json:"program,omitempty"` // instead of a calendar
	Devices  []string `yaml:"devices,omitempty" json:"devices,omitempty"`
	Sites    []string `yaml:"sites,omitempty" json:"sites,omitempty"`
	Communes []string `yaml:"communes,omitempty" json:"communes,omitempty"`
	EPCIs    []string `yaml:"epcis,omitempty" json:"epcis,omitempty"`
	Default  bool     `yaml:"default,omitempty" json:"default,omitempty"`
}

// Decree is a local switch-off order: public lighting off from From to To ("HH:MM", across midnight) in its
// communes.
type Decree struct {
	Name     string   `yaml:"name" json:"name"`
	Communes []string `yaml:"communes" json:"communes"`
	From     string   `yaml:"from" json:"from"`
	To       string   `yaml:"to" json:"to"`
}

// Arrêté du 27 décembre 2018 categories of lighting a site may be classified in.
const (
	CategoryVoirie     = "voirie"     // public roads: the local decree applies
	CategoryBatiment   = "batiment"   // non-residential building lighting: off by 01:00 or 1 h after activity
	CategoryPatrimoine = "patrimoine" // heritage lighting: off by 01:00 or 1 h after activity
	CategoryParking    = "parking"    // car parks: off 2 h after activity
)

// SiteCategory classifies lighting sites (cabinets) under the arrêté; ActivityEnd ("HH:MM") is when the
// activity the lighting serves ends, when known.
type SiteCategory struct {
	Category    string   `yaml:"category" json:"category"`
	Sites       []string `yaml:"sites" json:"sites"`
	ActivityEnd string   `yaml:"activity_end,omitempty" json:"activity_end,omitempty"`
}

// Night is one resolved night of a group: the program the calendar chose and its timeline over the night's
// day, from 12:00 on Date to 12:00 the next day (Europe/Paris), with the sun times used.
type Night struct {
	Date    time.Time `json:"date"`    // the evening's local date, 00:00 Europe/Paris
	Program string    `json:"program"` // ProgramDef.Name
	Rule    string    `json:"rule"`    // the calendar rule that chose it; "" for the calendar's default
	Sun     sun.Day   `json:"-"`       // the evening's sun times (sunset, dusk)
	SunNext sun.Day   `json:"-"`       // the next morning's (dawn, sunrise)
	On      time.Time `json:"on"`      // switch-on; zero for an extinction night
	Off     time.Time `json:"off"`     // switch-off, the next morning; zero for an extinction night
	From    time.Time `json:"from"`    // 12:00 on Date
	Until   time.Time `json:"until"`   // 12:00 the next day
	Steps   []Step    `json:"steps"`   // the first at From; sorted; levels after ramps
	Boost   *Boost    `json:"boost,omitempty"`
	Lux     *Lux      `json:"lux,omitempty"`
}
