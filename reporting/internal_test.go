package reporting

import (
	"testing"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// TestStationsMatchRules: the analytics' own nearest-station table gives rules.NearestStation's answer for
// every site of the simulated Aisne.
func TestStationsMatchRules(t *testing.T) {
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	_, reg, err := fleet.Load(tr, fleet.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := &Analytics{reg: func() *registry.Registry { return reg }}
	ix := a.index()
	for i, s := range ix.sites {
		if i%7 != 0 { // a seventh of the 3 474 sites: NearestStation scans every device at each call
			continue
		}
		want, _ := rules.NearestStation(reg, s)
		if ix.station[i] != want.ID {
			t.Errorf("%s: station %q, rules say %q", s.ID, ix.station[i], want.ID)
		}
	}
	if a.index() != ix {
		t.Error("index rebuilt for the same registry")
	}
}

func TestDaySeries(t *testing.T) {
	var s daySeries
	s.set(10, 1)
	s.set(13, 4) // grows with zeros
	s.set(8, 2)  // grows at the front
	tests := []struct {
		name   string
		d0, d1 int32
		want   float64
	}{
		{"all", 0, 100, 7},
		{"front", 8, 9, 2},
		{"gap", 9, 10, 0},
		{"middle", 10, 13, 1},
		{"end", 13, 14, 4},
		{"outside", 20, 30, 0},
		{"empty", 12, 11, 0},
	}
	for _, tt := range tests {
		if got := s.sum(tt.d0, tt.d1); got != tt.want {
			t.Errorf("%s: sum [%d, %d) = %v, want %v", tt.name, tt.d0, tt.d1, got, tt.want)
		}
	}
	s.zero(9, 11)
	if got := s.sum(0, 100); got != 6 || !s.covers(8) || s.covers(14) {
		t.Errorf("after zero: %v, %+v", got, s)
	}
}

func TestFluidMetric(t *testing.T) {
	for f, m := range map[hv.Fluid]hv.Metric{hv.Electricity: "energy_kwh_delta", hv.Gas: "volume_m3_delta",
		hv.Water: "volume_m3_delta", hv.Heat: "heat_kwh_delta", hv.Weather: ""} {
		if got := FluidMetric(f); got != m {
			t.Errorf("%s: %q, want %q", f, got, m)
		}
	}
}

func TestDaySeriesRanges(t *testing.T) {
	s := &daySeries{first: 10, vals: []float64{1, 2, 3}}
	for _, c := range []struct {
		d0, d1 int32
		want   float64
	}{{0, 5, 0}, {0, 11, 1}, {11, 12, 2}, {10, 13, 6}, {12, 40, 3}, {13, 40, 0}, {20, 30, 0}, {12, 11, 0}} {
		if got := s.sum(c.d0, c.d1); got != c.want {
			t.Errorf("sum(%d, %d) = %v, want %v", c.d0, c.d1, got, c.want)
		}
	}
	s.zero(20, 30) // beyond the series: nothing to clear, no panic
	if s.sum(0, 100) != 6 {
		t.Error("zero beyond the series changed it")
	}
}
