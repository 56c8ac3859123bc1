package simulators

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// TestLightingReportsOnFleet runs the Pays de Laon's 123 controllers for a week of July 2027 (the 13 and 14
// July festive nights included) on the default plan's programs, stores their 5-minute reports as ingest
// would, and checks the savings and compliance reports against the readings themselves:
//   - energy used per night is the sum of the stored deltas in the night's window, recomputed here;
//   - the full-power reference is each controller's nominal power from sunset to sunrise at its cabinet;
//   - Laon's decree (off 00:30–05:00) is broken exactly on the festive nights, by every Laon cabinet.
func TestLightingReportsOnFleet(t *testing.T) {
	full, reg := laonFleet(t)
	var ctrls []fleet.Device
	for _, d := range full.Devices {
		if d.Kind == hv.DeviceLightingController {
			ctrls = append(ctrls, d)
		}
	}
	f := &fleet.Fleet{Sites: full.Sites, Profiles: full.Profiles, Devices: ctrls}
	paris := model.Paris()
	first := time.Date(2027, 7, 10, 0, 0, 0, 0, paris) // the first night's evening date
	const nights = 7
	start := first.Add(12 * time.Hour)
	end := first.AddDate(0, 0, nights).Add(12 * time.Hour)
	runner := NewRunner(f, 1, start)
	plan, err := lighting.LoadPlan(configs.Lighting(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	store, err := tsdb.Open(t.TempDir(), tsdb.Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	counters := ingest.NewCounters()
	var batch []hv.Reading
	used := map[string][nights]float64{} // device → kWh per night, from the deltas written
	runner.observe = func(device string, at time.Time, vals map[hv.Metric]float64) {
		dev, site, _ := reg.Device(device)
		for _, m := range []hv.Metric{hv.LevelPct, hv.PowerW, hv.EnergyKWh, hv.OperatingHours} {
			rd := hv.Reading{Device: device, Metric: m, Time: at.UnixMilli(), Value: vals[m], Site: site.ID, Commune: site.Commune, EPCI: site.EPCI}
			batch = append(batch, rd)
			if m.Cumulative() {
				n := len(batch)
				batch, _ = counters.Derive(rd, &dev, batch)
				if i := nightIndex(at, first); m == hv.EnergyKWh && len(batch) > n && i >= 0 && i < nights {
					u := used[device]
					u[i] += batch[len(batch)-1].Value
					used[device] = u
				}
			}
		}
	}
	ctx := context.Background()
	for at := start; !at.After(end); at = at.Add(5 * time.Minute) {
		if local := at.In(paris); local.Hour() == 12 && local.Minute() == 0 && at.Before(end) {
			for _, d := range ctrls {
				_, site, _ := reg.Device(d.ID)
				p, ok := plan.ProgramAt(d.Device, site, at)
				if !ok {
					t.Fatalf("%s: no program", d.ID)
				}
				p.Version = at.Unix()
				b, _ := json.Marshal(p)
				if _, err := runner.ApplyProgram(d.ID, b, at); err != nil {
					t.Fatal(err)
				}
			}
		}
		runner.Due(at)
		if err := store.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}

	saved, err := lighting.Savings(ctx, store, reg, lighting.PlanGroups(plan), first, first.AddDate(0, 0, nights-1), plan.TariffEURPerKWh)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != nights {
		t.Fatalf("%d nights of savings, want %d", len(saved), nights)
	}
	for i, n := range saved {
		var wantUsed, wantRef float64
		day := first.AddDate(0, 0, i)
		for _, d := range ctrls {
			_, site, _ := reg.Device(d.ID)
			set := sun.Compute(day, site.Lat, site.Lon, paris).Sunset
			rise := sun.Compute(day.AddDate(0, 0, 1), site.Lat, site.Lon, paris).Sunrise
			wantUsed += used[d.ID][i]
			wantRef += d.MaxPowerW / 1.1 * rise.Sub(set).Hours() / 1000
		}
		tot := n.Total
		if tot.Counted != len(ctrls) || math.Abs(tot.UsedKWh-wantUsed) > 0.01 || math.Abs(tot.ReferenceKWh-wantRef) > 0.5 {
			t.Errorf("night %s: counted %d, used %.3f kWh, reference %.3f kWh; want %d, %.3f, %.3f", n.Night, tot.Counted, tot.UsedKWh, tot.ReferenceKWh, len(ctrls), wantUsed, wantRef)
		}
		festive := day.Day() == 13 || day.Day() == 14
		switch {
		case festive && math.Abs(tot.SavedPct) > 2:
			t.Errorf("festive night %s: saved %.1f %%, want ~0 (full light all night)", n.Night, tot.SavedPct)
		case !festive && tot.SavedPct < 30:
			t.Errorf("night %s: saved %.1f %%, want the heart-of-night switch-off's saving", n.Night, tot.SavedPct)
		}
		t.Logf("night %s: %d controllers, lit %.1f h, used %.1f kWh of %.1f kWh full power: saved %.1f kWh (%.1f %%, %.2f €)",
			n.Night, tot.Counted, tot.LitHours, tot.UsedKWh, tot.ReferenceKWh, tot.SavedKWh, tot.SavedPct, tot.SavedEUR)
	}

	rep, err := lighting.Compliance(ctx, store, reg, plan, first, first.AddDate(0, 0, nights-1))
	if err != nil {
		t.Fatal(err)
	}
	laonCabinets := 0
	for _, s := range f.Sites {
		if s.Kind == hv.SiteLightingCabinet && s.Commune == "02408" {
			laonCabinets++
		}
	}
	byNight := map[string]int{}
	for _, v := range rep.Violations {
		if v.Commune != "02408" {
			t.Errorf("violation outside Laon: %+v", v)
		}
		byNight[v.Night]++
	}
	if len(byNight) != 2 || byNight["2027-07-13"] != laonCabinets || byNight["2027-07-14"] != laonCabinets {
		t.Errorf("violations per night %v, want the %d Laon cabinets on 13 and 14 July only", byNight, laonCabinets)
	}
	for _, c := range rep.Communes {
		if c.Commune == "02408" && (c.NightsChecked != nights || c.NightsCompliant != nights-2) {
			t.Errorf("Laon: %+v, want %d nights checked, %d compliant", c, nights, nights-2)
		}
	}
	t.Logf("compliance: %d communes, %d violations (Laon, festive nights), %d cabinet entries not checkable (no decree)",
		len(rep.Communes), len(rep.Violations), len(rep.Unchecked))
}

// nightIndex is the night (counted from first's evening) whose window [12:00 D, 12:00 D+1) holds t.
func nightIndex(t, first time.Time) int {
	return int(math.Round(lighting.NightOf(t).Sub(first).Hours() / 24))
}
