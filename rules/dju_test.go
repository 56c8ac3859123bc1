package rules

import (
	"errors"
	"math"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/simulators/model"
)

// TestDegreeDaysMatchModel: from the simulated climate's 10-minute temperatures, DegreeDays gives the
// simulator's own DJU, DST days included.
func TestDegreeDaysMatchModel(t *testing.T) {
	w := model.NewWeather(7)
	from := time.Date(2025, 3, 25, 0, 0, 0, 0, parisLoc()) // through the DST change of 30 March
	to := from.AddDate(0, 0, 10)
	var pts []hv.Point
	for at := from; at.Before(to); at = at.Add(10 * time.Minute) {
		pts = append(pts, hv.Point{Time: at.UnixMilli(), Value: w.Temperature(at)})
	}
	dd := DegreeDays(pts, DefaultDJUBase, nil)
	if len(dd) != 10 {
		t.Fatalf("got %d days, want 10", len(dd))
	}
	for _, d := range dd {
		if want := w.DegreeDays(d.Day, DefaultDJUBase); math.Abs(d.Value-want) > 1e-9 {
			t.Errorf("%s: got %v DJU, want %v", d.Day.Format(time.DateOnly), d.Value, want)
		}
		if d.Day.Format(time.DateOnly) == "2025-03-30" && d.Samples != 23*6 {
			t.Errorf("DST day: %d samples, want 138", d.Samples)
		}
	}
	// A day with too few samples is left out; a warm day counts 0.
	few := []hv.Point{{Time: from.UnixMilli(), Value: 5}, {Time: from.Add(time.Hour).UnixMilli(), Value: 6}}
	if dd := DegreeDays(few, 18, nil); len(dd) != 0 {
		t.Errorf("two samples: got %v", dd)
	}
	var warm []hv.Point
	for h := range 24 {
		warm = append(warm, hv.Point{Time: from.Add(time.Duration(h) * time.Hour).UnixMilli(), Value: 20 + float64(h%3)})
	}
	if dd := DegreeDays(warm, 18, nil); len(dd) != 1 || dd[0].Value != 0 || dd[0].Min != 20 || dd[0].Max != 22 {
		t.Errorf("warm day: got %+v", dd)
	}
}

func TestFitDegreeDays(t *testing.T) {
	x := []float64{0, 2, 5, 8, 12, 15}
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = 40 + 6.5*v
	}
	m, err := FitDegreeDays(x, y)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.C-40) > 1e-9 || math.Abs(m.M-6.5) > 1e-9 || math.Abs(m.R2-1) > 1e-12 || m.CVRMSE > 1e-9 || m.N != 6 {
		t.Errorf("exact line: got %+v", m)
	}
	if p := m.Predict(7, 30); math.Abs(p-(7*40+6.5*30)) > 1e-9 {
		t.Errorf("predict: got %v", p)
	}
	// Noise lowers R² and raises CV(RMSE).
	y[1], y[4] = y[1]+30, y[4]-30
	m, _ = FitDegreeDays(x, y)
	if m.R2 >= 0.99 || m.CVRMSE <= 0.05 {
		t.Errorf("noisy: got %+v", m)
	}
	for _, bad := range [][2][]float64{{{1, 2}, {3, 4}}, {{5, 5, 5}, {1, 2, 3}}, {{1, 2, 3}, {1, 2}}} {
		if _, err := FitDegreeDays(bad[0], bad[1]); !errors.Is(err, ErrPoorFit) {
			t.Errorf("%v: got %v, want ErrPoorFit", bad, err)
		}
	}
}

func TestNearestStation(t *testing.T) {
	reg := testRegistry(t)
	st, ok := NearestStation(reg, regSite(t, "gymnase-soissons"))
	if !ok || st.ID != "meteo-laon" {
		t.Fatalf("got %v, %v", st.ID, ok)
	}
}
