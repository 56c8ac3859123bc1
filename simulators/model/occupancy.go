package model

import (
	"strings"
	"time"
)

// Building usages, as hyperviseur.Site.Usage spells them. Occupancy also accepts them without accents, in
// any case, with '_' or '-' for spaces, and a few synonyms (groupe scolaire, bibliothèque, salle
// polyvalente, centre aquatique…).
const (
	UsageMairie        = "mairie"
	UsageEcole         = "école"
	UsageCollege       = "collège"
	UsageGymnase       = "gymnase"
	UsageSalleDesFetes = "salle des fêtes"
	UsageMediatheque   = "médiathèque"
	UsagePiscine       = "piscine"
)

// Usages lists the building usages the models know.
func Usages() []string {
	return []string{UsageMairie, UsageEcole, UsageCollege, UsageGymnase, UsageSalleDesFetes,
		UsageMediatheque, UsagePiscine}
}

type usage uint8

const (
	uMairie usage = iota // also the default: an unknown usage behaves like offices
	uEcole
	uCollege
	uGymnase
	uSalle
	uMediatheque
	uPiscine
)

// usageOf maps a usage string to its model; exact spellings take the fast path since it runs per sample.
func usageOf(s string) usage {
	switch s {
	case UsageMairie:
		return uMairie
	case UsageEcole:
		return uEcole
	case UsageCollege:
		return uCollege
	case UsageGymnase:
		return uGymnase
	case UsageSalleDesFetes:
		return uSalle
	case UsageMediatheque:
		return uMediatheque
	case UsagePiscine:
		return uPiscine
	}
	n := normalise(s)
	switch {
	case strings.HasPrefix(n, "ecole"), strings.Contains(n, "scolaire"), strings.Contains(n, "maternelle"),
		strings.Contains(n, "elementaire"):
		return uEcole
	case strings.HasPrefix(n, "college"):
		return uCollege
	case strings.HasPrefix(n, "gymnase"), strings.Contains(n, "sport"):
		return uGymnase
	case strings.HasPrefix(n, "salle des fetes"), strings.HasPrefix(n, "salle polyvalente"),
		strings.HasPrefix(n, "foyer"):
		return uSalle
	case strings.HasPrefix(n, "mediatheque"), strings.HasPrefix(n, "bibliotheque"):
		return uMediatheque
	case strings.HasPrefix(n, "piscine"), strings.Contains(n, "aquatique"):
		return uPiscine
	}
	return uMairie
}

var accents = strings.NewReplacer("é", "e", "è", "e", "ê", "e", "ë", "e", "à", "a", "â", "a", "î", "i",
	"ï", "i", "ô", "o", "ù", "u", "û", "u", "ç", "c", "_", " ", "-", " ")

func normalise(s string) string {
	return strings.Join(strings.Fields(accents.Replace(strings.ToLower(s))), " ")
}

// knot is one point of a day profile: occupancy v at h hours past local midnight.
type knot struct{ h, v float64 }

// profile is a day of occupancy, linear between knots: ramps of a quarter hour stand for people arriving and
// leaving, so loads do not jump by the whole building at once.
type profile []knot

func (p profile) at(h float64) float64 {
	for i := 1; i < len(p); i++ {
		if h <= p[i].h {
			a, b := p[i-1], p[i]
			if b.h == a.h {
				return b.v
			}
			f := (h - a.h) / (b.h - a.h)
			return a.v*(1-f) + b.v*f // a convex combination: never outside [a.v, b.v] by rounding
		}
	}
	return p[len(p)-1].v
}

// prof builds a profile from (hour, value) pairs; it must start at 0 and end at 24.
func prof(hv ...float64) profile {
	p := make(profile, 0, len(hv)/2)
	for i := 0; i+1 < len(hv); i += 2 {
		p = append(p, knot{hv[i], hv[i+1]})
	}
	return p
}

var closed = prof(0, 0, 24, 0)

// Day profiles. Values are the expected fraction of the building in use (people, lit rooms, equipment),
// not a headcount. Sources: usual opening hours of Aisne mairies and médiathèques, the 4-day school week
// (Mon, Tue, Thu, Fri 8:30-16:30, périscolaire garderie around it) chosen by most Aisne communes, collège
// timetables (Wednesday morning classes), club use of gymnases and salles des fêtes.
var (
	mairieWeekday  = prof(0, 0, 8, 0, 8.5, 1, 12, 1, 12.25, 0.3, 13.25, 0.3, 13.5, 1, 17.5, 1, 18, 0.1, 18.5, 0, 24, 0)
	mairieSaturday = prof(0, 0, 8.75, 0, 9, 0.5, 12, 0.5, 12.25, 0, 24, 0)

	ecoleDay = prof(0, 0, 7.5, 0, 8, 0.3, 8.5, 1, 11.75, 1, 12, 0.6, 13.25, 0.6, 13.5, 1, 16.5, 1, 16.75, 0.3,
		18, 0.3, 18.5, 0, 24, 0)

	collegeDay = prof(0, 0, 7.25, 0, 7.75, 0.5, 8, 1, 12, 1, 12.25, 0.8, 13.25, 0.8, 13.5, 1, 17, 1, 17.5, 0.2,
		18.5, 0, 24, 0)
	collegeWednesday = prof(0, 0, 7.25, 0, 7.75, 0.5, 8, 1, 12, 1, 12.5, 0.2, 13, 0.1, 17, 0.1, 17.5, 0, 24, 0)
	collegeHoliday   = prof(0, 0, 8.5, 0, 9, 0.05, 16.5, 0.05, 17, 0, 24, 0) // administration only

	gymTermDay = prof(0, 0, 8.25, 0, 8.5, 0.7, 12, 0.7, 12.25, 0.2, 13.25, 0.2, 13.5, 0.7, 16.5, 0.7, 17, 0.3,
		17.5, 0.8, 22, 0.8, 22.5, 0, 24, 0)
	gymTermWednesday = prof(0, 0, 8.25, 0, 8.5, 0.7, 12, 0.7, 12.25, 0.2, 13.25, 0.2, 13.5, 0.8, 22, 0.8,
		22.5, 0, 24, 0)
	gymHolidayDay = prof(0, 0, 17.5, 0, 18, 0.5, 22, 0.5, 22.5, 0, 24, 0) // clubs in the evening
	gymSaturday   = prof(0, 0, 8.75, 0, 9, 0.7, 18, 0.7, 18.5, 0.3, 22, 0.3, 22.5, 0, 24, 0)
	gymSunday     = prof(0, 0, 8.75, 0, 9, 0.5, 12.5, 0.5, 13, 0, 24, 0)

	salleTueThu    = prof(0, 0, 17.75, 0, 18, 0.3, 22, 0.3, 22.25, 0, 24, 0) // associations
	salleWednesday = prof(0, 0, 13.75, 0, 14, 0.2, 17, 0.2, 17.25, 0, 24, 0)
	salleFriday    = prof(0, 0, 18.75, 0, 19, 0.3, 23.5, 0.3, 24, 0)
	// Saturday's party runs past midnight: Sunday starts where Saturday ends.
	salleSaturday = prof(0, 0, 9.75, 0, 10, 0.2, 14, 0.2, 15, 0.7, 24, 0.7)
	salleSunday   = prof(0, 0.7, 2, 0.7, 2.5, 0, 10.75, 0, 11, 0.5, 18, 0.5, 18.5, 0.1, 20, 0, 24, 0)

	mediaDay       = prof(0, 0, 8.75, 0, 9, 0.2, 13.5, 0.2, 13.75, 0.6, 18, 0.6, 18.25, 0, 24, 0)
	mediaWednesday = prof(0, 0, 8.75, 0, 9, 0.2, 10, 0.7, 12, 0.7, 12.25, 0.2, 13.5, 0.2, 13.75, 0.8, 18, 0.8,
		18.25, 0, 24, 0)
	mediaSaturday = prof(0, 0, 9.25, 0, 9.5, 0.2, 10, 0.8, 17, 0.8, 17.25, 0, 24, 0)

	piscineTermDay = prof(0, 0, 6.75, 0, 7, 0.2, 8.5, 0.7, 11.75, 0.7, 12, 0.8, 13.5, 0.8, 13.75, 0.7, 16.5, 0.7,
		17, 0.8, 20.5, 0.8, 21, 0.1, 21.5, 0, 24, 0)
	piscineHolidayDay = prof(0, 0, 9.25, 0, 9.5, 0.8, 19, 0.8, 19.5, 0, 24, 0)
	piscineSaturday   = prof(0, 0, 8.75, 0, 9, 0.6, 19, 0.6, 19.5, 0, 24, 0)
	piscineSunday     = prof(0, 0, 8.25, 0, 8.5, 0.8, 13, 0.8, 13.25, 0, 24, 0)
)

// Occupancy returns the expected fraction in use, in [0, 1], of a building of the given usage at t (Paris
// wall-clock time): office hours for a mairie, the 4-day week for an école (empty on Wednesday, weekends,
// zone B school holidays), Wednesday morning classes for a collège, school + clubs for a gymnase, evenings
// and weekends for a salle des fêtes, Tuesday to Saturday for a médiathèque, long daily hours for a
// piscine. Every building is closed on public holidays. An unknown usage behaves like a mairie.
func Occupancy(usage string, t time.Time) float64 {
	d, sec := local(t)
	return occupancyAt(usageOf(usage), d, float64(sec)/3600)
}

func occupancyAt(u usage, d day, h float64) float64 {
	k := calendarOf(d)
	if k.public != 0 {
		return 0
	}
	return dayProfile(u, d.weekday(), k.school, d).at(h)
}

func dayProfile(u usage, wd time.Weekday, school uint8, d day) profile {
	holiday := school != 0
	switch u {
	case uEcole:
		if holiday || wd == time.Wednesday || wd == time.Saturday || wd == time.Sunday {
			return closed
		}
		return ecoleDay
	case uCollege:
		switch {
		case wd == time.Saturday || wd == time.Sunday:
			return closed
		case holiday:
			return collegeHoliday
		case wd == time.Wednesday:
			return collegeWednesday
		}
		return collegeDay
	case uGymnase:
		switch {
		case school == shEte:
			return closed
		case wd == time.Saturday:
			return gymSaturday
		case wd == time.Sunday:
			return gymSunday
		case holiday:
			return gymHolidayDay
		case wd == time.Wednesday:
			return gymTermWednesday
		}
		return gymTermDay
	case uSalle:
		switch wd {
		case time.Tuesday, time.Thursday:
			return salleTueThu
		case time.Wednesday:
			return salleWednesday
		case time.Friday:
			return salleFriday
		case time.Saturday:
			return salleSaturday
		case time.Sunday:
			return salleSunday
		}
		return closed
	case uMediatheque:
		switch wd {
		case time.Tuesday, time.Thursday, time.Friday:
			return mediaDay
		case time.Wednesday:
			return mediaWednesday
		case time.Saturday:
			return mediaSaturday
		}
		return closed
	case uPiscine:
		switch {
		case wd == time.Saturday:
			return piscineSaturday
		case wd == time.Sunday:
			return piscineSunday
		case holiday:
			return piscineHolidayDay
		}
		return piscineTermDay
	}
	switch wd {
	case time.Saturday:
		return mairieSaturday
	case time.Sunday:
		return closed
	}
	if _, m, _ := d.civil(); m == time.August {
		return mairieAugust
	}
	return mairieWeekday
}

// mairieAugust: a third of the staff is on leave in August.
var mairieAugust = scaled(mairieWeekday, 0.7)

func scaled(p profile, f float64) profile {
	out := make(profile, len(p))
	for i, k := range p {
		out[i] = knot{k.h, k.v * f}
	}
	return out
}
