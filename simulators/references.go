package simulators

import (
	"maps"
	"slices"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/simulators/model"
)

// SiteReference is what a simulated building subject to the décret tertiaire declared on OPERAT for its
// reference year.
type SiteReference struct {
	Site string
	Year int
	KWh  map[hv.Fluid]float64 // electricity and heat in kWh, gas in kWh PCS
	DJU  float64              // heating degree days of the reference year, base 18 °C
	// SavedPct is the cut the building has made since (drawn), for tests and the curious.
	SavedPct float64
}

// References simulates the reference year each building subject to the décret tertiaire (the registry's
// tertiaire flag and reference_year) declared: its meters' consumption over that Paris calendar year as the
// building's model gives it, hour by hour, raised by the savings the building has made since — insulation,
// boiler, relamping: drawn from its id, 5 to 40 % —, so that today's measured consumption lands on either side
// of the décret's trajectory. Gas is converted at gasKWhPerM3 (kWh PCS per m³, as the service is configured).
// The degree days are the weather model's at base 18 °C.
func (r *Runner) References(gasKWhPerM3 float64) []SiteReference {
	bySite := map[string][]*simDevice{}
	for _, d := range r.devices {
		if d.Kind == hv.DeviceMeter && d.site.Tertiaire && d.site.ReferenceYear != 0 && d.Fluid != hv.Water {
			bySite[d.site.ID] = append(bySite[d.site.ID], d)
		}
	}
	paris := model.Paris()
	outdoor := map[int][]model.Outdoor{} // per reference year, hour by hour
	dju := map[int]float64{}
	var out []SiteReference
	for _, id := range slices.Sorted(maps.Keys(bySite)) {
		devs := bySite[id]
		year := devs[0].site.ReferenceYear
		start, end := time.Date(year, 1, 1, 0, 0, 0, 0, paris), time.Date(year+1, 1, 1, 0, 0, 0, 0, paris)
		hours, ok := outdoor[year]
		if !ok {
			for t := start; t.Before(end); t = t.Add(time.Hour) {
				hours = append(hours, r.weather.Outdoor(t.Add(30*time.Minute)))
			}
			for day := start; day.Before(end); day = day.AddDate(0, 0, 1) {
				dju[year] += r.weather.DegreeDays(day, 18)
			}
			outdoor[year] = hours
		}
		saved := 0.05 + 0.35*unitOf(hash("reference/"+id))
		ref := SiteReference{Site: id, Year: year, KWh: map[hv.Fluid]float64{}, DJU: dju[year], SavedPct: saved * 100}
		for _, d := range devs {
			var sum float64 // the rate integrated over hours: Wh or m³
			t := start
			for _, o := range hours {
				sum += r.cleanRate(d, t.Add(30*time.Minute), o)
				t = t.Add(time.Hour)
			}
			kwh := sum / 1000
			if d.Fluid == hv.Gas {
				kwh = sum * gasKWhPerM3
			}
			ref.KWh[d.Fluid] += kwh / (1 - saved)
		}
		out = append(out, ref)
	}
	return out
}

// unitOf maps a hash to [0, 1).
func unitOf(h uint64) float64 { return float64(h>>11) / (1 << 53) }
