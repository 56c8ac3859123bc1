// Package storetest is the conformance suite every hyperviseur.Store engine passes, so that a query gives the
// same answer whichever engine holds the data. The fixtures are small and the expected numbers are written
// out by hand next to them.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Run runs the suite. open must return a fresh, empty store for each call; Run closes it.
func Run(t *testing.T, open func(t *testing.T) hv.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s hv.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Filters", testFilters},
		{"Aggregates", testAggregates},
		{"Increase", testIncrease},
		{"WindowAlignment", testWindowAlignment},
		{"HalfOpenRange", testHalfOpenRange},
		{"Duplicates", testDuplicates},
		{"SameTimeOtherValue", testSameTimeOtherValue},
		{"InvalidReadingsSkipped", testInvalidSkipped},
		{"QueryValidation", testQueryValidation},
		{"Last", testLast},
		{"LargeBatch", testLargeBatch},
		{"SpecialCharacters", testSpecialCharacters},
		{"Ping", testPing},
		{"Backfill", testBackfill},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// T0 is the base time of the fixtures: 2024-03-01T00:00:00Z, a UTC midnight (and so a multiple of every
// window of a day or less).
var T0 = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

const (
	minute = int64(time.Minute / time.Millisecond)
	hour   = int64(time.Hour / time.Millisecond)
	day    = 24 * hour
)

// tolerance for float comparisons: values go through text encodings (line protocol, CSV) in some engines.
const tolerance = 1e-9

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func write(t *testing.T, s hv.Store, rs ...hv.Reading) {
	t.Helper()
	if err := s.Write(ctx(t), rs); err != nil {
		t.Fatalf("write %d readings: %v", len(rs), err)
	}
}

func query(t *testing.T, s hv.Store, q hv.Query) []hv.Series {
	t.Helper()
	out, err := s.Query(ctx(t), q)
	if err != nil {
		t.Fatalf("query %+v: %v", q, err)
	}
	return out
}

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= tolerance*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func pointsString(ps []hv.Point) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "(T0%+dms %g) ", p.Time-T0, p.Value)
	}
	return b.String()
}

// points is the points of the only series of ss.
func points(t *testing.T, ss []hv.Series) []hv.Point {
	t.Helper()
	if len(ss) != 1 {
		t.Fatalf("got %d series %q, want 1", len(ss), devices(ss))
	}
	return ss[0].Points
}

func checkPoints(t *testing.T, what string, got, want []hv.Point) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Time == want[i].Time && near(got[i].Value, want[i].Value)
	}
	if !ok {
		t.Errorf("%s:\n got  %s\n want %s", what, pointsString(got), pointsString(want))
	}
}

// pt is a point; a helper keeps the fixtures short without unkeyed literals.
func pt(t int64, v float64) hv.Point { return hv.Point{Time: t, Value: v} }

func devices(ss []hv.Series) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Device
	}
	return out
}

func meter(dev string, m hv.Metric, at int64, v float64) hv.Reading {
	return hv.Reading{Device: dev, Metric: m, Time: at, Value: v}
}

func testRoundTrip(t *testing.T, s hv.Store) {
	m1 := hv.Reading{Device: "m1", Site: "mairie-laon", Commune: "02408", EPCI: "200043495", Fluid: hv.Electricity}
	var rs []hv.Reading
	for i, v := range []float64{100, 101.5, 103.25} {
		r := m1
		r.Metric, r.Time, r.Value = hv.EnergyKWh, T0+int64(i)*10*minute, v
		rs = append(rs, r)
	}
	d := m1
	d.Metric, d.Time, d.Value = hv.EnergyKWh.Delta(), T0+10*minute, 1.5
	t1 := hv.Reading{Device: "th1", Metric: hv.TemperatureC, Time: T0 + 5*minute, Value: -3.75, Site: "ecole",
		Commune: "02691", EPCI: "200071942", Fluid: hv.Weather}
	rs = append(rs, d, t1)
	write(t, s, rs...)

	got := query(t, s, hv.Query{Metric: hv.EnergyKWh, From: T0, To: T0 + hour})
	want := hv.Series{Device: "m1", Metric: hv.EnergyKWh, Unit: "kWh", Site: "mairie-laon", Commune: "02408",
		EPCI: "200043495", Fluid: hv.Electricity}
	if len(got) != 1 {
		t.Fatalf("energy_kwh: got %d series %v, want 1", len(got), devices(got))
	}
	checkLabels(t, got[0], want)
	checkPoints(t, "energy_kwh points", points(t, got),
		[]hv.Point{pt(T0, 100), pt(T0+10*minute, 101.5), pt(T0+20*minute, 103.25)})

	got = query(t, s, hv.Query{Metric: hv.EnergyKWh.Delta(), From: T0, To: T0 + hour})
	want.Metric = hv.EnergyKWh.Delta()
	if len(got) != 1 {
		t.Fatalf("energy_kwh_delta: got %d series, want 1", len(got))
	}
	checkLabels(t, got[0], want) // a delta has its index's unit
	checkPoints(t, "energy_kwh_delta points", points(t, got), []hv.Point{pt(T0+10*minute, 1.5)})

	got = query(t, s, hv.Query{Metric: hv.TemperatureC, From: T0, To: T0 + hour})
	if len(got) != 1 {
		t.Fatalf("temperature_c: got %d series, want 1", len(got))
	}
	checkLabels(t, got[0], hv.Series{Device: "th1", Metric: hv.TemperatureC, Unit: "Cel", Site: "ecole",
		Commune: "02691", EPCI: "200071942", Fluid: hv.Weather})
	checkPoints(t, "temperature_c points", points(t, got), []hv.Point{pt(T0+5*minute, -3.75)})

	if got := query(t, s, hv.Query{Metric: hv.PowerW, From: T0, To: T0 + hour}); len(got) != 0 {
		t.Errorf("power_w was never written, got %d series", len(got))
	}
	if got := query(t, s, hv.Query{Metric: hv.EnergyKWh, From: T0 + hour, To: T0 + 2*hour}); len(got) != 0 {
		t.Errorf("energy_kwh outside the written range: got %d series %v", len(got), got)
	}
}

func checkLabels(t *testing.T, got, want hv.Series) {
	t.Helper()
	got.Points, want.Points = nil, nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("series labels:\n got  %+v\n want %+v", got, want)
	}
}

func testFilters(t *testing.T, s hv.Store) {
	regs := []hv.Reading{
		{Device: "a1", Site: "S1", Commune: "C1", EPCI: "E1", Fluid: hv.Electricity},
		{Device: "a2", Site: "S2", Commune: "C1", EPCI: "E1", Fluid: hv.Gas},
		{Device: "a3", Site: "S3", Commune: "C2", EPCI: "E2", Fluid: hv.Electricity},
		{Device: "u1"}, // unregistered: no site, commune, EPCI nor fluid
	}
	var rs []hv.Reading
	for i, r := range regs {
		r.Metric, r.Time, r.Value = hv.PowerW, T0+int64(i)*minute, float64(10*(i+1))
		rs = append(rs, r)
	}
	// another metric of a1 must never show up in a power_w query
	rs = append(rs, hv.Reading{Device: "a1", Site: "S1", Commune: "C1", EPCI: "E1", Fluid: hv.Electricity,
		Metric: hv.VoltageV, Time: T0, Value: 230})
	write(t, s, rs...)

	tests := []struct {
		name string
		q    hv.Query
		want []string
	}{
		{"no filter", hv.Query{}, []string{"a1", "a2", "a3", "u1"}},
		{"one device", hv.Query{Devices: []string{"a2"}}, []string{"a2"}},
		{"two devices", hv.Query{Devices: []string{"a3", "a1"}}, []string{"a1", "a3"}},
		{"unknown device", hv.Query{Devices: []string{"nope"}}, nil},
		{"device prefix is not a match", hv.Query{Devices: []string{"a"}}, nil},
		{"one site", hv.Query{Sites: []string{"S2"}}, []string{"a2"}},
		{"two sites", hv.Query{Sites: []string{"S1", "S3"}}, []string{"a1", "a3"}},
		{"commune", hv.Query{Communes: []string{"C1"}}, []string{"a1", "a2"}},
		{"epci", hv.Query{EPCIs: []string{"E2"}}, []string{"a3"}},
		{"fluid", hv.Query{Fluids: []hv.Fluid{hv.Electricity}}, []string{"a1", "a3"}},
		{"fluid gas", hv.Query{Fluids: []hv.Fluid{hv.Gas}}, []string{"a2"}},
		{"commune and fluid", hv.Query{Communes: []string{"C1"}, Fluids: []hv.Fluid{hv.Electricity}},
			[]string{"a1"}},
		{"two EPCIs and a fluid", hv.Query{EPCIs: []string{"E1", "E2"}, Fluids: []hv.Fluid{hv.Gas}},
			[]string{"a2"}},
		{"devices and site", hv.Query{Devices: []string{"a1", "u1"}, Sites: []string{"S1"}}, []string{"a1"}},
		{"site and other epci", hv.Query{Sites: []string{"S1"}, EPCIs: []string{"E2"}}, nil},
		{"empty site is the unregistered device", hv.Query{Sites: []string{""}}, []string{"u1"}},
		{"empty or S3", hv.Query{Sites: []string{"", "S3"}}, []string{"a3", "u1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Metric, q.From, q.To = hv.PowerW, T0, T0+hour
			got := query(t, s, q)
			if !slices.Equal(devices(got), tc.want) {
				t.Fatalf("devices: got %v, want %v", devices(got), tc.want)
			}
			for _, se := range got {
				var r hv.Reading
				for _, reg := range regs {
					if reg.Device == se.Device {
						r = reg
					}
				}
				checkLabels(t, se, hv.Series{Device: r.Device, Metric: hv.PowerW, Unit: "W", Site: r.Site,
					Commune: r.Commune, EPCI: r.EPCI, Fluid: r.Fluid})
				if len(se.Points) != 1 {
					t.Errorf("%s: %d points, want 1", se.Device, len(se.Points))
				}
			}
		})
	}
}

func testAggregates(t *testing.T, s hv.Store) {
	// window [T0, T0+1h): 10 20 30 40; [T0+1h, T0+2h): 5 7; [T0+2h, T0+3h): nothing; [T0+3h, T0+4h): -2.5
	write(t, s,
		meter("agg", hv.PowerW, T0, 10),
		meter("agg", hv.PowerW, T0+15*minute, 20),
		meter("agg", hv.PowerW, T0+30*minute, 30),
		meter("agg", hv.PowerW, T0+45*minute, 40),
		meter("agg", hv.PowerW, T0+hour, 5),
		meter("agg", hv.PowerW, T0+90*minute, 7),
		meter("agg", hv.PowerW, T0+3*hour+10*minute, -2.5),
	)
	w0, w1, w3 := T0, T0+hour, T0+3*hour
	tests := []struct {
		name string
		agg  hv.Agg
		want []hv.Point
	}{
		{"mean", hv.AggMean, []hv.Point{pt(w0, 25), pt(w1, 6), pt(w3, -2.5)}},
		{"default is mean", hv.AggNone, []hv.Point{pt(w0, 25), pt(w1, 6), pt(w3, -2.5)}},
		{"sum", hv.AggSum, []hv.Point{pt(w0, 100), pt(w1, 12), pt(w3, -2.5)}},
		{"min", hv.AggMin, []hv.Point{pt(w0, 10), pt(w1, 5), pt(w3, -2.5)}},
		{"max", hv.AggMax, []hv.Point{pt(w0, 40), pt(w1, 7), pt(w3, -2.5)}},
		{"last", hv.AggLast, []hv.Point{pt(w0, 40), pt(w1, 7), pt(w3, -2.5)}},
		{"count", hv.AggCount, []hv.Point{pt(w0, 4), pt(w1, 2), pt(w3, 1)}},
		// rises ending in each window: w0 10+10+10 = 30; w1 40→5 went down so counts the new value 5, then
		// 5→7 counts 2: 7; w3 7→-2.5 went down: counts -2.5
		{"increase", hv.AggIncrease, []hv.Point{pt(w0, 30), pt(w1, 7), pt(w3, -2.5)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := query(t, s, hv.Query{Metric: hv.PowerW, From: T0, To: T0 + 4*hour, Every: hour, Agg: tc.agg})
			if len(got) != 1 {
				t.Fatalf("got %d series, want 1", len(got))
			}
			checkLabels(t, got[0], hv.Series{Device: "agg", Metric: hv.PowerW, Unit: "W"})
			checkPoints(t, tc.name, points(t, got), tc.want)
		})
	}
}

func testIncrease(t *testing.T, s hv.Store) {
	// An index with a meter reset inside the second hour:
	//   T0 1000, +20m 1002, +40m 1005        rises 2, 3                                → hour 0: 5
	//   +1h 1006, +1h20 3 (reset), +1h40 4   rises 1, 3 (a reset counts the new value), 1 → hour 1: 5
	//   +2h10 10                             rise 6                                    → hour 2: 6
	// whole range: 16.
	e := func(at int64, v float64) hv.Reading {
		return hv.Reading{Device: "meter", Metric: hv.EnergyKWh, Time: at, Value: v, Site: "s", Fluid: hv.Electricity}
	}
	write(t, s, e(T0, 1000), e(T0+20*minute, 1002), e(T0+40*minute, 1005), e(T0+hour, 1006),
		e(T0+80*minute, 3), e(T0+100*minute, 4), e(T0+130*minute, 10))

	q := hv.Query{Metric: hv.EnergyKWh, From: T0, To: T0 + 3*hour, Every: hour, Agg: hv.AggIncrease}
	got := query(t, s, q)
	if len(got) != 1 {
		t.Fatalf("got %d series, want 1", len(got))
	}
	checkPoints(t, "hourly increase", points(t, got), []hv.Point{pt(T0, 5), pt(T0+hour, 5), pt(T0+2*hour, 6)})
	var sum float64
	for _, p := range got[0].Points {
		sum += p.Value
	}

	q.Every = day
	whole := query(t, s, q)
	if len(whole) != 1 {
		t.Fatalf("daily: got %d series, want 1", len(whole))
	}
	checkPoints(t, "daily increase", points(t, whole), []hv.Point{pt(T0, 16)})
	if len(whole[0].Points) == 1 && !near(sum, whole[0].Points[0].Value) {
		t.Errorf("hourly increases add up to %g, the whole range to %g", sum, whole[0].Points[0].Value)
	}

	// 30-minute windows: [0,30) 2; [30,60) 3; [60,90) 1+3; [90,120) 1; [120,150) 6 → also 16 in all
	q.Every = 30 * minute
	got = query(t, s, q)
	checkPoints(t, "half-hourly increase", points(t, got),
		[]hv.Point{pt(T0, 2), pt(T0+30*minute, 3), pt(T0+hour, 4), pt(T0+90*minute, 1), pt(T0+2*hour, 6)})
}

func testWindowAlignment(t *testing.T, s hv.Store) {
	p := func(at int64, v float64) hv.Reading { return meter("w", hv.PowerW, at, v) }
	write(t, s,
		p(T0+10*minute, 1000), // before From
		p(T0+40*minute, 1), p(T0+50*minute, 3),
		p(T0+65*minute, 5),
		p(T0+140*minute, 7),
		p(T0+150*minute, 1000), // at To: excluded
	)
	// From and To are not on window boundaries; windows are still aligned on the epoch and labelled by their
	// start, even the first one, which starts before From.
	got := query(t, s, hv.Query{Metric: hv.PowerW, From: T0 + 30*minute, To: T0 + 150*minute, Every: hour,
		Agg: hv.AggSum})
	if len(got) != 1 {
		t.Fatalf("got %d series, want 1", len(got))
	}
	checkPoints(t, "hourly sums", points(t, got), []hv.Point{pt(T0, 4), pt(T0+hour, 5), pt(T0+2*hour, 7)})

	// 7-minute windows do not divide an hour: T0 is 300 000 ms (5 min) past the start of its window, since
	// T0 = 4069645 × 420 000 + 300 000. Windows thus start at T0-5m+7k min: T0+40m falls in the window
	// starting at T0+37m, T0+50m in T0+44m, T0+65m starts a window itself, T0+140m is in T0+135m.
	if T0%(7*minute) != 5*minute {
		t.Fatalf("fixture: T0 mod 7 min = %d", T0%(7*minute))
	}
	got = query(t, s, hv.Query{Metric: hv.PowerW, From: T0 + 30*minute, To: T0 + 150*minute, Every: 7 * minute,
		Agg: hv.AggMax})
	checkPoints(t, "7-minute maxima", points(t, got), []hv.Point{
		pt(T0+37*minute, 1), pt(T0+44*minute, 3), pt(T0+65*minute, 5), pt(T0+135*minute, 7)})

	// Daily windows start at UTC midnight: T0+23h and T0+25h are on two days.
	write(t, s, p(T0+23*hour, 2), p(T0+25*hour, 9))
	got = query(t, s, hv.Query{Metric: hv.PowerW, From: T0 + 20*hour, To: T0 + 30*hour, Every: day,
		Agg: hv.AggCount})
	checkPoints(t, "daily counts", points(t, got), []hv.Point{pt(T0, 1), pt(T0+day, 1)})
}

func testHalfOpenRange(t *testing.T, s hv.Store) {
	from, to := T0+hour, T0+2*hour
	write(t, s, meter("h", hv.PowerW, from-1, 1), meter("h", hv.PowerW, from, 2),
		meter("h", hv.PowerW, to-1, 3), meter("h", hv.PowerW, to, 4))
	got := query(t, s, hv.Query{Metric: hv.PowerW, From: from, To: to})
	if len(got) != 1 {
		t.Fatalf("got %d series, want 1", len(got))
	}
	checkPoints(t, "raw [from, to)", got[0].Points, []hv.Point{pt(from, 2), pt(to-1, 3)})
	got = query(t, s, hv.Query{Metric: hv.PowerW, From: from, To: to, Every: day, Agg: hv.AggCount})
	checkPoints(t, "count over [from, to)", got[0].Points, []hv.Point{pt(T0, 2)})
	got = query(t, s, hv.Query{Metric: hv.PowerW, From: from, To: to, Every: day, Agg: hv.AggSum})
	checkPoints(t, "sum over [from, to)", got[0].Points, []hv.Point{pt(T0, 5)})
}

func testDuplicates(t *testing.T, s hv.Store) {
	batch := []hv.Reading{
		meter("d", hv.EnergyKWh, T0, 1), meter("d", hv.EnergyKWh, T0+minute, 2), meter("d", hv.EnergyKWh, T0+2*minute, 3),
	}
	write(t, s, batch...)
	write(t, s, batch...)                                 // the whole batch again (a spool replay)
	write(t, s, batch[0])                                 // an old sample again
	write(t, s, meter("d", hv.EnergyKWh, T0+3*minute, 4), // a batch holding the same reading twice
		meter("d", hv.EnergyKWh, T0+3*minute, 4))
	got := query(t, s, hv.Query{Metric: hv.EnergyKWh, From: T0, To: T0 + hour})
	if len(got) != 1 {
		t.Fatalf("got %d series, want 1", len(got))
	}
	checkPoints(t, "points", points(t, got),
		[]hv.Point{pt(T0, 1), pt(T0+minute, 2), pt(T0+2*minute, 3), pt(T0+3*minute, 4)})
	got = query(t, s, hv.Query{Metric: hv.EnergyKWh, From: T0, To: T0 + hour, Every: hour, Agg: hv.AggCount})
	checkPoints(t, "count", points(t, got), []hv.Point{pt(T0, 4)})
}

// testSameTimeOtherValue: engines differ (tsdb refuses the second value with ErrInvalid, InfluxDB keeps the
// last write), but either way a time holds one value, one of the two written.
func testSameTimeOtherValue(t *testing.T, s hv.Store) {
	write(t, s, meter("c", hv.PowerW, T0, 1))
	err := s.Write(ctx(t), []hv.Reading{meter("c", hv.PowerW, T0, 2), meter("c", hv.PowerW, T0+minute, 3)})
	if err != nil && !errors.Is(err, hv.ErrInvalid) {
		t.Fatalf("write of a conflicting value: %v, want nil or an error wrapping ErrInvalid", err)
	}
	got := query(t, s, hv.Query{Metric: hv.PowerW, From: T0, To: T0 + hour})
	if len(got) != 1 || len(got[0].Points) != 2 {
		t.Fatalf("got %v, want one series of 2 points", got)
	}
	if v := got[0].Points[0].Value; v != 1 && v != 2 {
		t.Errorf("value at T0 = %g, want 1 or 2", v)
	}
	if p := got[0].Points[1]; p.Time != T0+minute || p.Value != 3 {
		t.Errorf("the other reading of the batch: got %+v, want 3 at T0+1m", p)
	}
}

func testInvalidSkipped(t *testing.T, s hv.Store) {
	err := s.Write(ctx(t), []hv.Reading{
		meter("ok", hv.PowerW, T0, 1),
		meter("ok", hv.PowerW, T0+minute, math.NaN()),
		meter("ok", hv.PowerW, T0+2*minute, math.Inf(1)),
		meter("", hv.PowerW, T0, 5),
		meter("ok", hv.Metric("no_such_metric"), T0, 6),
		meter("ok", hv.PowerW, T0+3*minute, 4),
	})
	if !errors.Is(err, hv.ErrInvalid) {
		t.Fatalf("write with invalid readings: %v, want an error wrapping ErrInvalid", err)
	}
	if errors.Is(err, hv.ErrUnavailable) {
		t.Errorf("invalid readings must not look retryable: %v", err)
	}
	got := query(t, s, hv.Query{Metric: hv.PowerW, From: T0, To: T0 + hour})
	if len(got) != 1 {
		t.Fatalf("got %d series %v, want 1", len(got), devices(got))
	}
	checkPoints(t, "the valid readings", points(t, got), []hv.Point{pt(T0, 1), pt(T0+3*minute, 4)})
	if err := s.Write(ctx(t), nil); err != nil {
		t.Errorf("empty write: %v", err)
	}
}

func testQueryValidation(t *testing.T, s hv.Store) {
	for _, q := range []hv.Query{
		{Metric: hv.PowerW, From: T0, To: T0},
		{Metric: "bogus", From: T0, To: T0 + 1},
		{Metric: hv.PowerW, From: T0, To: T0 + hour, Agg: hv.AggSum},
		{Metric: hv.PowerW, From: T0, To: T0 + hour, Every: 10},
	} {
		if _, err := s.Query(ctx(t), q); !errors.Is(err, hv.ErrInvalid) {
			t.Errorf("query %+v: %v, want ErrInvalid", q, err)
		}
	}
}

func testLast(t *testing.T, s hv.Store) {
	// Last looks at [since, now], so these fixtures are near the real clock.
	base := time.Now().Add(-2*time.Hour).UnixMilli() / 1000 * 1000
	d1 := hv.Reading{Device: "d1", Site: "S1", Commune: "C1", EPCI: "E1", Fluid: hv.Electricity}
	d2 := hv.Reading{Device: "d2", Site: "S2", Fluid: hv.Water}
	at := func(r hv.Reading, m hv.Metric, t int64, v float64) hv.Reading {
		r.Metric, r.Time, r.Value = m, t, v
		return r
	}
	write(t, s,
		at(d1, hv.EnergyKWh, base, 10), at(d1, hv.EnergyKWh, base+20*minute, 20),
		at(d2, hv.EnergyKWh, base+5*minute, 5),
		at(d2, hv.VolumeM3, base+7*minute, 7),
		at(d1, hv.PowerW, base+30*minute, 900), // not asked for
		hv.Reading{Device: "u", Metric: hv.VolumeM3, Time: base + 8*minute, Value: 8},
	)
	// written last: a future sample may only come after the others in tsdb's head
	write(t, s, at(d1, hv.EnergyKWh, time.Now().Add(time.Hour).UnixMilli(), 999)) // after now: not the newest

	got, err := s.Last(ctx(t), []hv.Metric{hv.EnergyKWh, hv.VolumeM3}, base)
	if err != nil {
		t.Fatal(err)
	}
	want := []hv.Reading{
		at(d1, hv.EnergyKWh, base+20*minute, 20),
		at(d2, hv.EnergyKWh, base+5*minute, 5),
		at(d2, hv.VolumeM3, base+7*minute, 7),
		{Device: "u", Metric: hv.VolumeM3, Time: base + 8*minute, Value: 8},
	}
	checkReadings(t, "Last since base", got, want)

	got, err = s.Last(ctx(t), []hv.Metric{hv.EnergyKWh, hv.VolumeM3}, base+6*minute)
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, "Last since base+6m", got, []hv.Reading{want[0], want[2], want[3]})

	got, err = s.Last(ctx(t), []hv.Metric{hv.Presence}, base)
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, "Last of a metric never written", got, nil)
}

func checkReadings(t *testing.T, what string, got, want []hv.Reading) {
	t.Helper()
	sortReadings := func(rs []hv.Reading) {
		slices.SortFunc(rs, func(a, b hv.Reading) int {
			if c := strings.Compare(a.Device, b.Device); c != 0 {
				return c
			}
			return strings.Compare(string(a.Metric), string(b.Metric))
		})
	}
	got, want = slices.Clone(got), slices.Clone(want)
	sortReadings(got)
	sortReadings(want)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = near(g.Value, w.Value)
		g.Value, w.Value = 0, 0
		ok = ok && g == w
	}
	if !ok {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func testLargeBatch(t *testing.T, s hv.Store) {
	// 200 devices × 100 readings a minute apart; device i's reading j is worth i + j/4.
	const devs, per = 200, 100
	rs := make([]hv.Reading, 0, devs*per)
	for j := range per {
		for i := range devs {
			rs = append(rs, hv.Reading{Device: fmt.Sprintf("lum-%03d", i), Metric: hv.LevelPct,
				Time: T0 + int64(j)*minute, Value: float64(i) + float64(j)/4, Site: fmt.Sprintf("cab-%02d", i%20),
				Fluid: hv.Electricity})
		}
	}
	write(t, s, rs...)

	got := query(t, s, hv.Query{Metric: hv.LevelPct, From: T0, To: T0 + day})
	if len(got) != devs {
		t.Fatalf("got %d series, want %d", len(got), devs)
	}
	n := 0
	for _, se := range got {
		n += len(se.Points)
	}
	if n != devs*per {
		t.Errorf("raw points: %d, want %d", n, devs*per)
	}
	// device lum-007: 100 points, values 7 + j/4: sum = 700 + (0+…+99)/4 = 700 + 4950/4 = 1937.5
	if se := got[7]; se.Device != "lum-007" || len(se.Points) != per || se.Site != "cab-07" {
		t.Errorf("series 7: %s site %s with %d points", se.Device, se.Site, len(se.Points))
	} else if se.Points[99].Time != T0+99*minute || !near(se.Points[99].Value, 7+99.0/4) {
		t.Errorf("lum-007 last point: %+v", se.Points[99])
	}

	got = query(t, s, hv.Query{Metric: hv.LevelPct, From: T0, To: T0 + day, Every: day, Agg: hv.AggCount})
	n = 0
	for _, se := range got {
		if len(se.Points) != 1 {
			t.Fatalf("%s: %d daily counts, want 1", se.Device, len(se.Points))
		}
		n += int(se.Points[0].Value)
	}
	if n != devs*per {
		t.Errorf("counted points: %d, want %d", n, devs*per)
	}
	got = query(t, s, hv.Query{Metric: hv.LevelPct, From: T0, To: T0 + day, Devices: []string{"lum-007"},
		Every: day, Agg: hv.AggSum})
	if len(got) != 1 {
		t.Fatalf("lum-007: %d series", len(got))
	}
	checkPoints(t, "lum-007 daily sum", points(t, got), []hv.Point{pt(T0, 1937.5)})
}

func testSpecialCharacters(t *testing.T, s hv.Store) {
	cases := []hv.Reading{
		{Device: "dev with spaces", Site: "Mairie de Laon", Commune: "02408"},
		{Device: "a,b", Site: "x,y=z"},
		{Device: "a=b", Site: "k=v"},
		{Device: `a"b\c`, Site: `s"\` + "x"},
		{Device: `back\,slash`, Site: `\ lead`},
		{Device: "École Jean-Macé", Site: "Château-Thierry — gymnase", Commune: "02168"},
		{Device: "m.*", Site: "(a|b)"},
		{Device: "mxx", Site: "ab"},
		{Device: "flux${x}", Site: "$"},
		{Device: "quote'single", Site: "#comment"},
	}
	var rs []hv.Reading
	for i, r := range cases {
		r.Metric, r.Time, r.Value, r.Fluid = hv.PowerW, T0+int64(i)*minute, float64(i+1), hv.Heat
		rs = append(rs, r)
	}
	write(t, s, rs...)

	all := query(t, s, hv.Query{Metric: hv.PowerW, From: T0, To: T0 + hour})
	if len(all) != len(cases) {
		t.Fatalf("got %d series %q, want %d", len(all), devices(all), len(cases))
	}
	for i, r := range rs {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			want := hv.Series{Device: r.Device, Metric: hv.PowerW, Unit: "W", Site: r.Site, Commune: r.Commune,
				Fluid: hv.Heat}
			for _, q := range []hv.Query{
				{Devices: []string{r.Device}},
				{Sites: []string{r.Site}},
				{Devices: []string{r.Device, "nope"}},
				{Sites: []string{"nope", r.Site}},
			} {
				q.Metric, q.From, q.To = hv.PowerW, T0, T0+hour
				got := query(t, s, q)
				if len(got) != 1 {
					t.Errorf("%+v: got %d series %q, want 1", q, len(got), devices(got))
					continue
				}
				checkLabels(t, got[0], want)
				checkPoints(t, r.Device, points(t, got), []hv.Point{pt(r.Time, r.Value)})
			}
		})
	}
}

func testPing(t *testing.T, s hv.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// MeterLoad makes the readings of a fleet of electricity meters reporting every 10 minutes (ten meters to a
// site), batch after batch: both engines' write benchmarks use it, so their figures compare.
type MeterLoad struct {
	devs, sites []string
	next        int
	ts          int64
}

// NewMeterLoad prepares meters meters whose first readings fall 10 minutes after start (Unix ms).
func NewMeterLoad(meters int, start int64) *MeterLoad {
	m := &MeterLoad{devs: make([]string, meters), sites: make([]string, meters), ts: start}
	for i := range m.devs {
		m.devs[i], m.sites[i] = fmt.Sprintf("meter-%05d", i), fmt.Sprintf("site-%03d", i/10)
	}
	return m
}

// Fill overwrites rs with the next readings of the fleet.
func (m *MeterLoad) Fill(rs []hv.Reading) {
	for i := range rs {
		d := m.next % len(m.devs)
		if d == 0 {
			m.ts += 600_000
		}
		rs[i] = hv.Reading{Device: m.devs[d], Metric: hv.EnergyKWh, Time: m.ts, Value: float64(m.next),
			Site: m.sites[d], Commune: "02408", EPCI: "200043495", Fluid: hv.Electricity}
		m.next++
	}
}

// testBackfill: 75 days of hourly history written through hyperviseur.Backfill (the engine's Backfiller, or
// Write) behind a live reading already stored: every point is queryable, Last sees the history's newest
// readings and the live one, and live writes carry on after it.
func testBackfill(t *testing.T, s hv.Store) {
	const nDevices, days = 6, 75
	live := meter("live", hv.EnergyKWh, T0, 1000)
	if err := s.Write(ctx(t), []hv.Reading{live}); err != nil {
		t.Fatal(err)
	}
	from, to := T0-days*day, T0
	var (
		mu      sync.Mutex
		windows [][2]int64
	)
	err := hv.Backfill(ctx(t), s, from, to, func(_ context.Context, wFrom, wTo int64, worker, workers int, emit func([]hv.Reading) error) error {
		if worker == 0 {
			mu.Lock()
			windows = append(windows, [2]int64{wFrom, wTo})
			mu.Unlock()
		}
		for d := worker; d < nDevices; d += workers {
			var rs []hv.Reading
			for at := wFrom; at < wTo; at += hour {
				r := meter(fmt.Sprintf("h%d", d), hv.EnergyKWh, at, float64((at-from)/hour))
				r.Site, r.EPCI = "site", "200043495"
				rs = append(rs, r)
			}
			if err := emit(rs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	slices.SortFunc(windows, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	if len(windows) == 0 || windows[0][0] != from || windows[len(windows)-1][1] != to {
		t.Fatalf("windows %v do not cover [%d, %d)", windows, from, to)
	}
	for i := 1; i < len(windows); i++ {
		if windows[i][0] != windows[i-1][1] {
			t.Fatalf("windows %v are not consecutive", windows)
		}
	}
	got := query(t, s, hv.Query{Metric: hv.EnergyKWh, From: from, To: to, EPCIs: []string{"200043495"}})
	if len(got) != nDevices {
		t.Fatalf("%d series backfilled, want %d: %q", len(got), nDevices, devices(got))
	}
	for _, sr := range got {
		ps := sr.Points
		if len(ps) != days*24 || ps[0].Time != from || ps[0].Value != 0 || ps[len(ps)-1].Time != to-hour ||
			ps[len(ps)-1].Value != days*24-1 {
			t.Fatalf("%s: %d points, first %v, last %v; want %d hourly points from 0", sr.Device, len(ps), ps[0],
				ps[len(ps)-1], days*24)
		}
	}
	last, err := s.Last(ctx(t), []hv.Metric{hv.EnergyKWh}, from)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != nDevices+1 || last[0].Device != "h0" || last[0].Time != to-hour || last[nDevices].Device != "live" ||
		last[nDevices].Time != T0 {
		t.Fatalf("last after backfill: %+v", last)
	}
	next := meter("h0", hv.EnergyKWh, T0+minute, days*24)
	if err := s.Write(ctx(t), []hv.Reading{next}); err != nil {
		t.Fatalf("live write after the backfill: %v", err)
	}
	if ps := points(t, query(t, s, hv.Query{Metric: hv.EnergyKWh, From: T0, To: T0 + hour, Devices: []string{"h0"}})); len(ps) != 1 {
		t.Fatalf("live point after the backfill: %v", ps)
	}
}
