package hyperviseur

import (
	"fmt"
	"strings"
	"testing"
)

func TestAggregate(t *testing.T) {
	// Two 10 s windows; an index that resets inside the second one.
	pts := []Point{{1000, 5}, {4000, 7}, {9000, 10}, {12000, 12}, {15000, 2}, {19000, 4}}
	tests := []struct {
		agg  Agg
		want string
	}{
		{AggMean, "[{0 7.333333333333333} {10000 6}]"},
		{AggSum, "[{0 22} {10000 18}]"},
		{AggMin, "[{0 5} {10000 2}]"},
		{AggMax, "[{0 10} {10000 12}]"},
		{AggLast, "[{0 10} {10000 4}]"},
		{AggCount, "[{0 3} {10000 3}]"},
		// 7-5 + 10-7 = 5; then 12-10 (the rise ending in this window) + 2 (reset: the new value) + 4-2 = 6.
		{AggIncrease, "[{0 5} {10000 6}]"},
		{AggNone, "[{0 7.333333333333333} {10000 6}]"}, // with a window, no aggregate means mean
	}
	for _, tt := range tests {
		t.Run(string(tt.agg), func(t *testing.T) {
			if got := fmt.Sprint(Aggregate(pts, 10000, tt.agg)); got != tt.want {
				t.Errorf("Aggregate(%s) = %s, want %s", tt.agg, got, tt.want)
			}
		})
	}
	// Windows of an increase add up to the increase of the whole range.
	whole := Aggregate(pts, 1_000_000, AggIncrease)
	if len(whole) != 1 || whole[0].Value != 11 {
		t.Errorf("whole-range increase = %v, want 11 = 5 + 6", whole)
	}
	// Negative times fall in the window that holds them, labelled by its start.
	if got := fmt.Sprint(Aggregate([]Point{{-1, 1}, {0, 2}}, 1000, AggSum)); got != "[{-1000 1} {0 2}]" {
		t.Errorf("negative times: %s", got)
	}
}

func TestMetricNames(t *testing.T) {
	if !EnergyKWh.Cumulative() || PowerW.Cumulative() {
		t.Error("energy_kwh must be an index and power_w not")
	}
	if m, ok := Metric("volume_m3_delta").DeltaOf(); !ok || m != VolumeM3 || Metric("volume_m3_delta").Unit() != "m3" {
		t.Errorf("volume_m3_delta: DeltaOf = %q %v", m, ok)
	}
	if _, ok := Metric("power_w_delta").DeltaOf(); ok {
		t.Error("power_w is not an index: power_w_delta must not be a delta series")
	}
	for _, m := range []Metric{"energy_kwh", "heat_kwh_delta", "counter_event"} {
		if !m.Known() {
			t.Errorf("%s should be known", m)
		}
	}
	if Metric("rssi").Known() {
		t.Error("rssi is not a metric")
	}
}

func TestQueryValidate(t *testing.T) {
	ok := Query{Metric: PowerW, From: 0, To: 1000}
	tests := []struct {
		name string
		edit func(*Query)
		want string
	}{
		{"valid raw", func(*Query) {}, ""},
		{"unknown metric", func(q *Query) { q.Metric = "rssi" }, `metric "rssi"`},
		{"empty range", func(q *Query) { q.To = q.From }, "to must be after from"},
		{"agg without every", func(q *Query) { q.Agg = AggSum }, "agg: invalid: needs every"},
		{"window under a second", func(q *Query) { q.Every = 10 }, "at least 1s"},
		{"unknown agg", func(q *Query) { q.Every, q.Agg = 1000, "median" }, `agg "median"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ok
			tt.edit(&q)
			err := q.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
