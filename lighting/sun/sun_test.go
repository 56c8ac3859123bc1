package sun

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tolerance is the accuracy goal against an ephemeris.
const tolerance = 60 * time.Second

type place struct {
	Code string  `json:"code"`
	Name string  `json:"nom"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
}

// aisneCentroids reads the commune centroids the service itself uses, so the test covers the real inputs.
func aisneCentroids(t *testing.T, codes ...string) []place {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "configs", "aisne-territory.json"))
	if err != nil {
		t.Fatalf("read territory: %v", err)
	}
	var territory struct {
		Communes []place `json:"communes"`
	}
	if err := json.Unmarshal(raw, &territory); err != nil {
		t.Fatalf("decode territory: %v", err)
	}
	byCode := make(map[string]place, len(territory.Communes))
	for _, c := range territory.Communes {
		byCode[c.Code] = c
	}
	out := make([]place, 0, len(codes))
	for _, code := range codes {
		c, ok := byCode[code]
		if !ok {
			t.Fatalf("commune %s not in territory", code)
		}
		out = append(out, c)
	}
	return out
}

type eventStats struct {
	n         int
	sum, bias time.Duration // of absolute and signed differences
	max       time.Duration
	maxDate   string
}

func (s *eventStats) add(diff time.Duration, date string) {
	s.n++
	s.bias += diff
	if diff < 0 {
		diff = -diff
	}
	s.sum += diff
	if diff > s.max {
		s.max, s.maxDate = diff, date
	}
}

func (s *eventStats) String() string {
	if s.n == 0 {
		return "no events"
	}
	return fmt.Sprintf("max %5.1fs (%s)  mean |Δ| %4.1fs  mean Δ %+5.1fs  n=%d",
		s.max.Seconds(), s.maxDate, (s.sum / time.Duration(s.n)).Seconds(),
		(s.bias / time.Duration(s.n)).Seconds(), s.n)
}

// compareYear checks every event of every day of year at p against the reference ephemeris, within tol.
func compareYear(t *testing.T, p place, year int, loc *time.Location, tol time.Duration) map[string]*eventStats {
	t.Helper()
	stats := map[string]*eventStats{"dawn": {}, "sunrise": {}, "sunset": {}, "dusk": {}}
	days := Range(time.Date(year, 1, 1, 0, 0, 0, 0, loc), 366, p.Lat, p.Lon, loc)
	for _, got := range days {
		y, m, d := got.Date.Date()
		if y != year {
			break
		}
		want := referenceDay(y, m, d, p.Lat, p.Lon, loc)
		date := got.Date.Format(time.DateOnly)
		for _, ev := range []struct {
			name      string
			got, want time.Time
		}{
			{"dawn", got.Dawn, want.Dawn},
			{"sunrise", got.Sunrise, want.Sunrise},
			{"sunset", got.Sunset, want.Sunset},
			{"dusk", got.Dusk, want.Dusk},
		} {
			if ev.got.IsZero() != ev.want.IsZero() {
				t.Errorf("%s %s %s: got %v, reference %v", p.Name, date, ev.name, ev.got, ev.want)
				continue
			}
			if ev.got.IsZero() {
				continue
			}
			diff := ev.got.Sub(ev.want)
			if diff > tol || diff < -tol {
				t.Errorf("%s %s %s: got %s, reference %s (Δ %v)", p.Name, date, ev.name,
					ev.got.Format(time.RFC3339), ev.want.Format(time.RFC3339Nano), diff)
			}
			stats[ev.name].add(diff, date)
		}
	}
	return stats
}

// TestAisneYearAgainstAlmanac is the proof: every day of 2027 at the centroids of Laon,
// Saint-Quentin and Château-Thierry, all four events within 60 s of the independent reference in
// reference_test.go. Run with -v to see the accuracy table.
func TestAisneYearAgainstAlmanac(t *testing.T) {
	for _, p := range aisneCentroids(t, "02408", "02691", "02168") {
		t.Run(p.Name, func(t *testing.T) {
			stats := compareYear(t, p, 2027, Paris(), tolerance)
			for _, ev := range []string{"dawn", "sunrise", "sunset", "dusk"} {
				if stats[ev].n != 365 {
					t.Errorf("%s: %d days compared, want 365", ev, stats[ev].n)
				}
				t.Logf("%s (%s, %.5f N %.5f E) %-7s %s", p.Name, p.Code, p.Lat, p.Lon, ev, stats[ev])
			}
		})
	}
}

// TestElsewhereAgainstAlmanac guards the signs of latitude and longitude and other zones, which the Aisne
// alone would not exercise.
func TestElsewhereAgainstAlmanac(t *testing.T) {
	for _, tc := range []struct {
		p    place
		zone string
	}{
		{place{Name: "Sydney", Lat: -33.8688, Lon: 151.2093}, "Australia/Sydney"},
		{place{Name: "New York", Lat: 40.7128, Lon: -74.0060}, "America/New_York"},
		{place{Name: "Quito", Lat: -0.1807, Lon: -78.4678}, "America/Guayaquil"},
		{place{Name: "Helsinki", Lat: 60.1699, Lon: 24.9384}, "Europe/Helsinki"},
	} {
		t.Run(tc.p.Name, func(t *testing.T) {
			loc, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Fatalf("load %s: %v", tc.zone, err)
			}
			stats := compareYear(t, tc.p, 2027, loc, tolerance)
			for _, ev := range []string{"dawn", "sunrise", "sunset", "dusk"} {
				t.Logf("%-8s %-7s %s", tc.p.Name, ev, stats[ev])
			}
		})
	}
}

// TestPublishedTimes checks a few times published to the minute by third parties. They only prove the
// right minute (rounding alone is up to 30 s, and the sources do not give their exact coordinates); the year
// against the reference ephemeris proves the seconds.
func TestPublishedTimes(t *testing.T) {
	const parisLat, parisLon = 48.8566, 2.3522 // Paris, Hôtel de Ville
	paris := Paris()
	tests := []struct {
		name     string
		source   string
		lat, lon float64
		loc      *time.Location
		date     string
		event    string // sunrise or sunset
		want     string // local hh:mm as published
	}{
		{
			name:   "Paris winter solstice 2025 sunrise",
			source: "https://particle.news/story/winter-solstice-arrives-today-at-403-pm-in-paris-marking-years-shortest-day",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2025-12-21", event: "sunrise", want: "08:41",
		},
		{
			name:   "Paris winter solstice 2025 sunset",
			source: "same article: \"the sun rose at 8:41 and set at 16:56\"",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2025-12-21", event: "sunset", want: "16:56",
		},
		{
			name:   "Paris 26 December 2025 sunrise",
			source: "same article: \"sunrise shifts to 8:43 and sunset to 16:59\"",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2025-12-26", event: "sunrise", want: "08:43",
		},
		{
			name:   "Paris 26 December 2025 sunset",
			source: "same article",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2025-12-26", event: "sunset", want: "16:59",
		},
		{
			name:   "Paris 24 June 2023 sunrise",
			source: "https://pariswerewolves.blogspot.com/2023/06/16-hours-of-daylight.html (\"the sun rose at 5:48 AM\")",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2023-06-24", event: "sunrise", want: "05:48",
		},
		{
			name:   "Paris 24 June 2023 sunset",
			source: "same post (\"will set at 9:58 PM\")",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2023-06-24", event: "sunset", want: "21:58",
		},
		{
			name:   "Paris 18 December 2014 sunrise",
			source: "https://pratique.fr/actu/journees-continuent-raccourcir-soleil-couche-plus-tard-101188.html (\"le lever à 8h40\")",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2014-12-18", event: "sunrise", want: "08:40",
		},
		{
			name:   "Paris 18 December 2014 sunset",
			source: "same article (\"coucher du soleil est prévu à 16h54 à Paris\")",
			lat:    parisLat, lon: parisLon, loc: paris, date: "2014-12-18", event: "sunset", want: "16:54",
		},
		{
			// Local mean time at longitude 0 is UT.
			name:   "latitude 50 N, 1 January 2002",
			source: "http://aa.quae.nl/en/antwoorden/zonpositie-tabel.html, Table 1, column +50",
			lat:    50, lon: 0, loc: time.UTC, date: "2002-01-01", event: "sunrise", want: "07:59",
		},
		{
			name:   "latitude 48 N, 1 January 2002",
			source: "same table, column +48",
			lat:    48, lon: 0, loc: time.UTC, date: "2002-01-01", event: "sunrise", want: "07:50",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			date, err := time.ParseInLocation(time.DateOnly, tc.date, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			want, err := time.ParseInLocation(time.DateOnly+" 15:04", tc.date+" "+tc.want, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			d := Compute(date, tc.lat, tc.lon, tc.loc)
			got := d.Sunrise
			if tc.event == "sunset" {
				got = d.Sunset
			}
			diff := got.Sub(want)
			if diff > tolerance || diff < -tolerance {
				t.Errorf("%s: got %s, published %s (%s)", tc.event, got.In(tc.loc).Format("15:04:05"), tc.want, tc.source)
			}
			t.Logf("%s: computed %s, published %s, Δ %+.0fs", tc.event, got.In(tc.loc).Format("15:04:05"), tc.want, diff.Seconds())
		})
	}
}

// TestDSTChanges checks that the clock changes of 2027 (28 March, 31 October) shift local times by one
// hour but leave the UTC instants continuous, and that Date is local midnight of the asked date.
func TestDSTChanges(t *testing.T) {
	laon := aisneCentroids(t, "02408")[0]
	paris := Paris()
	for _, tc := range []struct {
		name      string
		from      time.Time
		change    int           // index of the day the clocks change
		localJump time.Duration // change of UTC offset that day
	}{
		{"spring forward", time.Date(2027, 3, 25, 0, 0, 0, 0, paris), 3, time.Hour},
		{"fall back", time.Date(2027, 10, 28, 0, 0, 0, 0, paris), 3, -time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			days := Range(tc.from, 7, laon.Lat, laon.Lon, paris)
			for i, d := range days {
				want := time.Date(tc.from.Year(), tc.from.Month(), tc.from.Day()+i, 0, 0, 0, 0, paris)
				if !d.Date.Equal(want) || d.Date.Location() != paris {
					t.Errorf("day %d: Date %v, want %v", i, d.Date, want)
				}
				if h, m, s := d.Date.Clock(); h != 0 || m != 0 || s != 0 {
					t.Errorf("day %d: Date %v is not local midnight", i, d.Date)
				}
				if i == 0 {
					continue
				}
				prev := days[i-1]
				for _, ev := range []struct {
					name      string
					prev, cur time.Time
				}{
					{"dawn", prev.Dawn, d.Dawn},
					{"sunrise", prev.Sunrise, d.Sunrise},
					{"sunset", prev.Sunset, d.Sunset},
					{"dusk", prev.Dusk, d.Dusk},
				} {
					// Consecutive events are about a day apart in UTC, give or take the ≤ 2 min daily drift.
					step := ev.cur.Sub(ev.prev) - 24*time.Hour
					if step > 3*time.Minute || step < -3*time.Minute {
						t.Errorf("%s %s: UTC step %v from the day before", d.Date.Format(time.DateOnly), ev.name, step)
					}
					// Read on the wall clock, the same events jump by the offset change on the day it happens.
					wall := wallClock(ev.cur.In(paris)) - wallClock(ev.prev.In(paris))
					wantJump := time.Duration(0)
					if i == tc.change {
						wantJump = tc.localJump
					}
					if d := wall - wantJump; d > 3*time.Minute || d < -3*time.Minute {
						t.Errorf("%s %s: local clock moved %v, want %v ± 3 min", ev.cur.Format(time.DateOnly), ev.name, wall, wantJump)
					}
				}
			}
			// The chosen day must really be the change, or the jumps above were tested on the wrong day.
			_, before := days[tc.change-1].Sunrise.In(paris).Zone()
			_, after := days[tc.change].Sunrise.In(paris).Zone()
			if time.Duration(after-before)*time.Second != tc.localJump {
				t.Errorf("%s: offset %d → %d s, want change %v",
					days[tc.change].Date.Format(time.DateOnly), before, after, tc.localJump)
			}
		})
	}
}

func wallClock(t time.Time) time.Duration {
	h, m, s := t.Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second
}

func TestComputeReadsDateInLocation(t *testing.T) {
	laon := aisneCentroids(t, "02408")[0]
	paris := Paris()
	want := Compute(time.Date(2027, 7, 14, 0, 0, 0, 0, paris), laon.Lat, laon.Lon, paris)
	for _, tc := range []struct {
		name string
		date time.Time
	}{
		{"local noon", time.Date(2027, 7, 14, 12, 0, 0, 0, paris)},
		{"last local second", time.Date(2027, 7, 14, 23, 59, 59, 0, paris)},
		{"UTC evening before, already the 14th in Paris", time.Date(2027, 7, 13, 22, 30, 0, 0, time.UTC)},
		{"nil location means Paris", time.Date(2027, 7, 14, 6, 0, 0, 0, paris)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := paris
			if strings.HasPrefix(tc.name, "nil") {
				loc = nil
			}
			if got := Compute(tc.date, laon.Lat, laon.Lon, loc); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestRange(t *testing.T) {
	laon := aisneCentroids(t, "02408")[0]
	paris := Paris()
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, paris)
	days := Range(from, 365, laon.Lat, laon.Lon, paris)
	if len(days) != 365 {
		t.Fatalf("got %d days, want 365", len(days))
	}
	for i, d := range days {
		if want := Compute(from.AddDate(0, 0, i), laon.Lat, laon.Lon, paris); d != want {
			t.Fatalf("day %d: Range %+v, Compute %+v", i, d, want)
		}
	}
	if last := days[364].Date.Format(time.DateOnly); last != "2027-12-31" {
		t.Errorf("last day %s, want 2027-12-31", last)
	}
	for _, n := range []int{0, -1} {
		if got := Range(from, n, laon.Lat, laon.Lon, paris); len(got) != 0 {
			t.Errorf("Range(%d days) = %d days, want none", n, len(got))
		}
	}
}

func TestEventOrderAndDayLength(t *testing.T) {
	// Sanity of the whole year in the Aisne: dawn < sunrise < sunset < dusk, and day length within the
	// département's bounds (about 8 h at the winter solstice, 16 h 20 at the summer one).
	laon := aisneCentroids(t, "02408")[0]
	for _, d := range Range(time.Date(2027, 1, 1, 0, 0, 0, 0, Paris()), 365, laon.Lat, laon.Lon, Paris()) {
		if !(d.Dawn.Before(d.Sunrise) && d.Sunrise.Before(d.Sunset) && d.Sunset.Before(d.Dusk)) {
			t.Fatalf("%s: events out of order: %+v", d.Date.Format(time.DateOnly), d)
		}
		if l := d.Sunset.Sub(d.Sunrise); l < 7*time.Hour+50*time.Minute || l > 16*time.Hour+30*time.Minute {
			t.Errorf("%s: day length %v", d.Date.Format(time.DateOnly), l)
		}
		if d.Sunrise.Nanosecond() != 0 || d.Sunrise.Location() != time.UTC {
			t.Fatalf("%s: sunrise %v not a whole UTC second", d.Date.Format(time.DateOnly), d.Sunrise)
		}
	}
}

func TestPolar(t *testing.T) {
	oslo, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		t.Fatal(err)
	}
	const tromsoLat, tromsoLon = 69.6492, 18.9553
	tests := []struct {
		name                        string
		date                        time.Time
		lat, lon                    float64
		sunrise, sunset, dawn, dusk bool // whether the event happens
	}{
		// Midnight sun: the sun never sets, let alone reaches −6°.
		{"Tromsø midsummer", time.Date(2027, 6, 21, 0, 0, 0, 0, oslo), tromsoLat, tromsoLon, false, false, false, false},
		// Polar night: the sun peaks at about −3°, so there is civil twilight but no sunrise.
		{"Tromsø midwinter", time.Date(2027, 12, 21, 0, 0, 0, 0, oslo), tromsoLat, tromsoLon, false, false, true, true},
		{"North Pole", time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), 90, 0, false, false, false, false},
		{"latitude out of range", time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), 91, 0, false, false, false, false},
		{"NaN longitude", time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), 49, math.NaN(), false, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Compute(tc.date, tc.lat, tc.lon, tc.date.Location())
			for _, ev := range []struct {
				name string
				at   time.Time
				want bool
			}{
				{"sunrise", d.Sunrise, tc.sunrise}, {"sunset", d.Sunset, tc.sunset},
				{"dawn", d.Dawn, tc.dawn}, {"dusk", d.Dusk, tc.dusk},
			} {
				if !ev.at.IsZero() != ev.want {
					t.Errorf("%s: got %v, want happening=%v", ev.name, ev.at, ev.want)
				}
			}
			if d.Date.IsZero() {
				t.Errorf("Date not set")
			}
			j := d.JSON()
			if !tc.sunrise && j.Sunrise != "" {
				t.Errorf("JSON sunrise %q, want empty", j.Sunrise)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	paris := Paris()
	d := Day{
		Date:    time.Date(2027, 3, 28, 0, 0, 0, 0, paris),
		Dawn:    time.Date(2027, 3, 28, 4, 49, 3, 0, time.UTC),
		Sunrise: time.Date(2027, 3, 28, 5, 21, 0, 0, time.UTC),
		Sunset:  time.Date(2027, 3, 28, 18, 4, 59, 0, time.UTC),
	}
	raw, err := json.Marshal(d.JSON())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"date":"2027-03-28","sunrise":"2027-03-28T05:21:00Z","sunset":"2027-03-28T18:04:59Z",` +
		`"dawn":"2027-03-28T04:49:03Z","dusk":""}`
	if string(raw) != want {
		t.Errorf("got  %s\nwant %s", raw, want)
	}
	// Instants are written in UTC whatever location they carry.
	d.Sunrise = d.Sunrise.In(paris)
	if got := d.JSON().Sunrise; got != "2027-03-28T05:21:00Z" {
		t.Errorf("sunrise in Paris time rendered %q", got)
	}
}

func TestParis(t *testing.T) {
	if got := Paris().String(); got != "Europe/Paris" {
		t.Errorf("Paris() = %s", got)
	}
	if _, off := time.Date(2027, 7, 1, 12, 0, 0, 0, Paris()).Zone(); off != 2*3600 {
		t.Errorf("summer offset %d s, want 7200", off)
	}
}

func BenchmarkCompute(b *testing.B) {
	paris := Paris()
	date := time.Date(2027, 3, 28, 0, 0, 0, 0, paris)
	for b.Loop() {
		Compute(date, 49.56789, 3.62117, paris)
	}
}

func BenchmarkRange365(b *testing.B) {
	paris := Paris()
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, paris)
	for b.Loop() {
		Range(from, 365, 49.56789, 3.62117, paris)
	}
}
