package fleet

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	hv "github.com/useda02/hyperviseur"
)

// Stats counts what a fleet holds, for the YAML header, the CLI and the benchmarks' notes.
type Stats struct {
	Communes   int
	Population int // inhabitants of the communes covered

	Sites        int
	SitesByKind  map[hv.SiteKind]int
	SitesByUsage map[string]int // buildings only: mairie, école…
	Tertiaire    int            // buildings subject to the décret tertiaire
	SurfaceM2    float64        // of all buildings

	Devices         int
	DevicesByKind   map[hv.DeviceKind]int
	MetersByFluid   map[hv.Fluid]int
	DevicesByFormat map[string]int

	Cabinets      int
	Luminaires    int
	LEDLuminaires int
	LightingW     float64 // nominal power of all lamps at full level
	Presence      int     // cabinets with presence detection
}

// Stats counts the fleet.
func (f *Fleet) Stats() Stats {
	s := Stats{
		Communes:        len(f.communes),
		Sites:           len(f.Sites),
		SitesByKind:     map[hv.SiteKind]int{},
		SitesByUsage:    map[string]int{},
		Devices:         len(f.Devices),
		DevicesByKind:   map[hv.DeviceKind]int{},
		MetersByFluid:   map[hv.Fluid]int{},
		DevicesByFormat: map[string]int{},
	}
	for _, c := range f.communes {
		s.Population += c.Population
	}
	for _, site := range f.Sites {
		s.SitesByKind[site.Kind]++
		if site.Kind == hv.SiteBuilding {
			s.SitesByUsage[site.Usage]++
			s.SurfaceM2 += site.SurfaceM2
			if site.Tertiaire {
				s.Tertiaire++
			}
		}
	}
	for _, d := range f.Devices {
		s.DevicesByKind[d.Kind]++
		s.DevicesByFormat[d.Format]++
		switch d.Kind {
		case hv.DeviceMeter:
			s.MetersByFluid[d.Fluid]++
		case hv.DeviceLightingController:
			s.Cabinets++
			s.Luminaires += d.Luminaires
			s.LightingW += d.NominalW
			if d.LED {
				s.LEDLuminaires += d.Luminaires
			}
			if d.Presence {
				s.Presence++
			}
		}
	}
	return s
}

// String writes the counts on a few lines, in a fixed order.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "communes: %d, population %d\n", s.Communes, s.Population)
	fmt.Fprintf(&b, "sites: %d (%s)\n", s.Sites, counts(s.SitesByKind, []hv.SiteKind{hv.SiteBuilding, hv.SiteLightingCabinet, hv.SiteWeatherStation}))
	fmt.Fprintf(&b, "buildings: %s; %d under the décret tertiaire; %.0f m²\n",
		counts(s.SitesByUsage, usages()), s.Tertiaire, s.SurfaceM2)
	fmt.Fprintf(&b, "devices: %d (%s)\n", s.Devices, counts(s.DevicesByKind, []hv.DeviceKind{hv.DeviceMeter, hv.DeviceLightingController, hv.DeviceWeather}))
	fmt.Fprintf(&b, "meters: %s\n", counts(s.MetersByFluid, []hv.Fluid{hv.Electricity, hv.Gas, hv.Water, hv.Heat}))
	fmt.Fprintf(&b, "formats: %s\n", counts(s.DevicesByFormat, Formats()))
	led := 0.0
	if s.Luminaires > 0 {
		led = 100 * float64(s.LEDLuminaires) / float64(s.Luminaires)
	}
	fmt.Fprintf(&b, "lighting: %d luminaires (%.0f %% LED) on %d cabinets (%d with presence detection), %.0f kW nominal\n",
		s.Luminaires, led, s.Cabinets, s.Presence, s.LightingW/1000)
	return b.String()
}

func usages() []string {
	out := make([]string, len(buildingTypes))
	for i, bt := range buildingTypes {
		out[i] = bt.usage
	}
	return out
}

// counts writes "a 3, b 4" in the given order, then any other key sorted, so nothing is hidden.
func counts[K ~string](m map[K]int, order []K) string {
	var parts []string
	seen := map[K]bool{}
	for _, k := range order {
		seen[k] = true
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !seen[k] {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}
