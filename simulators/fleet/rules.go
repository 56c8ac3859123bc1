package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	hv "github.com/useda02/hyperviseur"
)

// LoRaWAN device profiles of the fleet. Their names differ from those of configs/registry.yaml so both
// registries can be loaded together (a profile defined twice is an error).
const (
	ProfileElectricity = "tic-linky"
	ProfileGas         = "gas-pulse"
	ProfileWater       = "water-pulse"
	ProfileHeat        = "heat-meter"
	ProfileLighting    = "lighting-node"
	ProfileWeather     = "weather-node"
)

// Profiles returns the LoRaWAN profiles of the fleet: codec key → canonical metric, in the unit the codec
// sends. Each metric has one key, so an encoder can invert a profile. The units differ from the canonical
// ones on purpose (Wh, L, kW) to exercise the conversions.
func Profiles() map[string]map[string]hv.KeyMap {
	return map[string]map[string]hv.KeyMap{
		// A TIC (Linky customer port) module: EAST is the total active energy index in Wh; SINSTS is the
		// apparent power, read as active power since the registry has no VA.
		ProfileElectricity: {
			"EAST":   {Metric: hv.EnergyKWh, Unit: "Wh"},
			"SINSTS": {Metric: hv.PowerW, Unit: "W"},
		},
		ProfileGas: {
			"gas_index": {Metric: hv.VolumeM3, Unit: "m3"},
		},
		// An Adeunis-like pulse counter on a water meter, one pulse per litre.
		ProfileWater: {
			"counter_a": {Metric: hv.VolumeM3, Unit: "L"},
		},
		ProfileHeat: {
			"heat_energy": {Metric: hv.HeatKWh, Unit: "kWh"},
			"power":       {Metric: hv.PowerW, Unit: "kW"},
			"volume":      {Metric: hv.VolumeM3, Unit: "m3"},
			"flow":        {Metric: hv.FlowM3h, Unit: "m3/h"},
			"t_supply":    {Metric: hv.TemperatureC, Unit: "Cel"},
		},
		ProfileLighting: {
			"dim_level":     {Metric: hv.LevelPct, Unit: "%"},
			"active_power":  {Metric: hv.PowerW, Unit: "W"},
			"active_energy": {Metric: hv.EnergyKWh, Unit: "Wh"},
			"burning_hours": {Metric: hv.OperatingHours, Unit: "h"},
			"lamp_fail":     {Metric: hv.LampFailure},
			"door":          {Metric: hv.DoorOpen},
			"presence":      {Metric: hv.Presence},
		},
		ProfileWeather: {
			"air_temp": {Metric: hv.TemperatureC, Unit: "Cel"},
		},
	}
}

// Reporting intervals: buildings every 10 min (issue 3), lighting every 5 min; gas and water meters are
// battery pulse counters that report hourly; heat meters every 15 min as district-heating operators read them.
const (
	intervalElectricity = 10 * time.Minute
	intervalGas         = time.Hour
	intervalWater       = time.Hour
	intervalHeat        = 15 * time.Minute
	intervalLighting    = 5 * time.Minute
	intervalWeather     = 10 * time.Minute
)

// heatNetworks are the communes with a district heating network.
var heatNetworks = map[string]bool{"02691": true, "02722": true, "02408": true, "02168": true}

// buildingType is one kind of public building and how many a commune has.
type buildingType struct {
	usage    string // Site.Usage
	slug     string // id prefix
	label    string // name prefix
	numbered bool   // ids carry an ordinal even when there is one
	count    func(pop int) int
	surface  func(pop int) (lo, hi float64)
	wattsM2  float64 // peak electrical density, W/m², before electric heating
}

// buildingTypes are in generation order; see the package documentation for the rationale of the numbers.
var buildingTypes = []buildingType{
	{
		usage: "mairie", slug: "mairie", label: "Mairie", wattsM2: 35,
		count: func(int) int { return 1 },
		surface: func(pop int) (float64, float64) {
			switch {
			case pop < 500:
				return 80, 200
			case pop < 2000:
				return 150, 400
			case pop < 10000:
				return 400, 1200
			}
			return 800, 3000
		},
	},
	{
		usage: "école", slug: "ecole", label: "École", numbered: true, wattsM2: 30,
		count: func(pop int) int {
			if pop < 250 {
				return 0
			}
			return min(max(1, roundInt(float64(pop)/1200)), 40)
		},
		surface: func(pop int) (float64, float64) {
			if pop < 2000 {
				return 400, 1000
			}
			return 600, 3000
		},
	},
	{
		usage: "collège", slug: "college", label: "Collège", numbered: true, wattsM2: 25,
		count: func(pop int) int {
			if pop <= 3000 {
				return 0
			}
			return max(1, roundInt(float64(pop)/7000))
		},
		surface: func(int) (float64, float64) { return 4000, 9000 },
	},
	{
		usage: "gymnase", slug: "gymnase", label: "Gymnase", numbered: true, wattsM2: 25,
		count: func(pop int) int {
			if pop <= 2000 {
				return 0
			}
			return max(1, roundInt(float64(pop)/8000))
		},
		surface: func(int) (float64, float64) { return 800, 2500 },
	},
	{
		usage: "salle des fêtes", slug: "salle-fetes", label: "Salle des fêtes", numbered: true, wattsM2: 45,
		count: func(pop int) int {
			if pop <= 400 {
				return 0
			}
			return 1 + pop/15000
		},
		surface: func(pop int) (float64, float64) {
			if pop < 2000 {
				return 150, 500
			}
			return 400, 1500
		},
	},
	{
		usage: "médiathèque", slug: "mediatheque", label: "Médiathèque", numbered: true, wattsM2: 40,
		count: func(pop int) int {
			if pop <= 3500 {
				return 0
			}
			return max(1, pop/20000)
		},
		surface: func(pop int) (float64, float64) {
			if pop < 10000 {
				return 300, 1000
			}
			return 800, 3000
		},
	},
	{
		usage: "piscine", slug: "piscine", label: "Piscine", numbered: true, wattsM2: 70,
		count: func(pop int) int {
			if pop <= 12000 {
				return 0
			}
			return max(1, pop/25000)
		},
		surface: func(int) (float64, float64) { return 1500, 5000 },
	},
}

// Thresholds of the package documentation.
const (
	tertiaireM2       = 1000 // décret tertiaire: 1 000 m² of tertiary use or more
	gasMinM2          = 200  // below, a boiler room is rare: electric heating
	heatMinM2         = 500  // below, connecting to the heat network rarely pays
	heatShare         = 0.5
	electricHeatingM2 = 50   // W/m² added to the subscribed power of an electrically heated building
	boilerWM2         = 100  // W/m² of boiler power, for an old, poorly insulated stock
	luminairesPerInh  = 0.1  // one luminaire per 10 inhabitants
	minLuminaires     = 4    // even a hamlet lights its crossroads
	cabinetTarget     = 40   // luminaires per cabinet on average; cabinets hold 20–60
	jitterM           = 1000 // sites sit within this distance of the commune's centroid
)

// commune generates one commune's buildings, meters and lighting.
func (g *generator) commune(f *Fleet, c hv.Commune) {
	r := g.rng("commune", c.Code)
	st := g.station[g.nearestStation(c).code]
	of := ofCommune(c.Name)
	for _, bt := range buildingTypes {
		n := bt.count(c.Population)
		for i := 1; i <= n; i++ {
			id := bt.slug + "-" + c.Code
			name := bt.label + " " + of
			if bt.numbered {
				id += fmt.Sprintf("-%d", i)
				if n > 1 {
					name = fmt.Sprintf("%s %d %s", bt.label, i, of)
				}
			}
			g.building(f, r, c, bt, id, name, st)
		}
	}
	g.lighting(f, r, c, of, st)
}

// building draws one building and its meters. Every draw happens whatever the device formats turn out to be,
// so that the mix never shifts the buildings.
func (g *generator) building(f *Fleet, r *rand.Rand, c hv.Commune, bt buildingType, id, name, st string) {
	lo, hi := bt.surface(c.Population)
	s := hv.Site{
		ID: id, Name: name, Kind: hv.SiteBuilding, Usage: bt.usage, Commune: c.Code, EPCI: c.EPCI,
		SurfaceM2: math.Round((lo+r.Float64()*(hi-lo))/10) * 10,
	}
	s.Lat, s.Lon = jitter(r, c.Lat, c.Lon)
	refYear := 2010 + r.IntN(10)
	if s.SurfaceM2 >= tertiaireM2 {
		s.Tertiaire, s.ReferenceYear = true, refYear
	}

	heat := heatNetworks[c.Code] && s.SurfaceM2 >= heatMinM2 && r.Float64() < heatShare
	gas := !heat && s.SurfaceM2 >= gasMinM2 && r.Float64() < gasShare(c.Population)
	w := bt.wattsM2
	if !heat && !gas {
		w += electricHeatingM2
	}
	s.SubscribedKVA = snapKVA(s.SurfaceM2 * w * (1.2 + 0.4*r.Float64()) / 1000)
	heatW := math.Max(20, math.Round(s.SurfaceM2*boilerWM2*(0.8+0.4*r.Float64())/5000)*5) * 1000
	litresGas, litresWater := r.Float64() < 0.3, r.Float64() < 0.5
	f.Sites = append(f.Sites, s)

	elec := Device{Device: hv.Device{
		ID: "elec-" + id, Site: id, Kind: hv.DeviceMeter, Fluid: hv.Electricity, Interval: intervalElectricity,
		MaxPowerW: s.SubscribedKVA * 1000, RegisterMax: 1e5,
	}, Station: st}
	if s.SubscribedKVA > 36 {
		elec.RegisterMax = 1e6
	}
	f.Devices = append(f.Devices, g.device(elec, ProfileElectricity))

	big := 1e5
	if s.SurfaceM2 >= tertiaireM2 {
		big = 1e6
	}
	switch {
	case heat:
		d := Device{Device: hv.Device{
			ID: "chaleur-" + id, Site: id, Kind: hv.DeviceMeter, Fluid: hv.Heat, Interval: intervalHeat,
			MaxPowerW: heatW, RegisterMax: 1e6,
		}, Station: st}
		f.Devices = append(f.Devices, g.device(d, ProfileHeat))
	case gas:
		d := g.device(Device{Device: hv.Device{
			ID: "gaz-" + id, Site: id, Kind: hv.DeviceMeter, Fluid: hv.Gas, Interval: intervalGas,
			MaxPowerW: heatW, RegisterMax: big,
		}, Station: st}, ProfileGas)
		unitHint(&d, litresGas)
		f.Devices = append(f.Devices, d)
	}
	d := g.device(Device{Device: hv.Device{
		ID: "eau-" + id, Site: id, Kind: hv.DeviceMeter, Fluid: hv.Water, Interval: intervalWater, RegisterMax: big,
	}, Station: st}, ProfileWater)
	unitHint(&d, litresWater)
	f.Devices = append(f.Devices, d)
}

// unitHint marks a pulse counter that counts litres. Only flat JSON and line protocol carry no unit (SenML
// has "u", LoRaWAN profiles name theirs), so only they need the hint.
func unitHint(d *Device, litres bool) {
	if litres && (d.Format == FormatFlat || d.Format == FormatLineProtocol) {
		d.Units = map[hv.Metric]string{hv.VolumeM3: "L"}
	}
}

// gasShare is the chance that a building of a commune is on the gas network: many villages of the Aisne
// are not served.
func gasShare(pop int) float64 {
	switch {
	case pop < 500:
		return 0.5
	case pop < 2000:
		return 0.75
	}
	return 0.95
}

// Presence detection: on this share of the LED cabinets of communes of at least this population.
const (
	presenceShare         = 1.0 / 3
	presenceMinPopulation = 2000
)

// ledShare is the share of a commune's cabinets renovated to LED: 35 % at 100 inhabitants, +15 points per
// tenfold; the 80 % cap only matters for a territory with a city larger than Saint-Quentin.
func ledShare(pop int) float64 {
	return math.Min(0.8, 0.35+0.15*math.Log10(math.Max(float64(pop), 100)/100))
}

// lighting draws a commune's cabinets, each with its controller.
func (g *generator) lighting(f *Fleet, r *rand.Rand, c hv.Commune, of, st string) {
	total := max(minLuminaires, roundInt(float64(c.Population)*luminairesPerInh))
	p := ledShare(c.Population)
	for i, n := range cabinetSizes(r, total) {
		num := fmt.Sprintf("%03d", i+1)
		id := "armoire-" + c.Code + "-" + num
		led := r.Float64() < p
		nominal := 0
		for range n {
			if led {
				nominal += 40 + r.IntN(51)
			} else {
				nominal += 100 + r.IntN(51)
			}
		}
		s := hv.Site{
			ID: id, Name: "Armoire d'éclairage public " + num + " " + of, Kind: hv.SiteLightingCabinet,
			Usage: "éclairage public", Commune: c.Code, EPCI: c.EPCI,
			SubscribedKVA: snapKVA(float64(nominal) * 1.2 / 1000),
		}
		s.Lat, s.Lon = jitter(r, c.Lat, c.Lon)
		f.Sites = append(f.Sites, s)
		d := Device{Device: hv.Device{
			ID: "ctrl-" + id, Site: id, Kind: hv.DeviceLightingController, Fluid: hv.Electricity,
			Interval: intervalLighting, MaxPowerW: maxPower(float64(nominal)), RegisterMax: 1e5,
		}, NominalW: float64(nominal), LED: led, Luminaires: n, Station: st}
		// Drawn outside the commune's stream, so the rest of the fleet is what it was before presence.
		d.Presence = led && c.Population >= presenceMinPopulation &&
			float64(hash64(g.seed, "presence", id)>>11)/(1<<53) < presenceShare
		f.Devices = append(f.Devices, g.device(d, ProfileLighting))
	}
}

// maxPower is the controller's bound on power: nominal + 10 % for ballast drift and voltage, kept to 0.1 W
// so the YAML stays readable (and nominal = max_power_w / 1.1 rounds back exactly for whole watts).
func maxPower(nominal float64) float64 { return math.Round(nominal*11) / 10 }

// cabinetSizes splits a commune's luminaires over cabinets of 20–60, 40 on average; below 41 luminaires
// the commune has one cabinet.
func cabinetSizes(r *rand.Rand, total int) []int {
	k := max(1, (total+cabinetTarget-1)/cabinetTarget)
	out := make([]int, k)
	rem := total
	for i := range k {
		m := k - i
		if m == 1 {
			out[i] = rem
			break
		}
		// Bounds that keep the remaining cabinets feasible (20–60 each), narrowed around the mean so
		// cabinets look alike, as a network designed street by street does.
		lo, hi := max(20, rem-60*(m-1)), min(60, rem-20*(m-1))
		mean := rem / m
		a, b := max(lo, mean-10), min(hi, mean+10)
		out[i] = a + r.IntN(b-a+1)
		rem -= out[i]
	}
	return out
}

// weatherStation adds an arrondissement's weather station.
func (g *generator) weatherStation(f *Fleet, c hv.Commune) {
	r := g.rng("station", c.Code)
	id := "station-meteo-" + c.Code
	s := hv.Site{
		ID: id, Name: "Station météo " + ofCommune(c.Name), Kind: hv.SiteWeatherStation, Usage: "station météo",
		Commune: c.Code, EPCI: c.EPCI,
	}
	s.Lat, s.Lon = jitter(r, c.Lat, c.Lon)
	f.Sites = append(f.Sites, s)
	d := g.device(Device{Device: hv.Device{
		ID: "meteo-" + c.Code, Site: id, Kind: hv.DeviceWeather, Fluid: hv.Weather, Interval: intervalWeather,
	}}, ProfileWeather)
	g.station[c.Code] = d.ID
	f.Devices = append(f.Devices, d)
}

// snapKVA rounds a power need up to what can be subscribed: tarif bleu steps, then tarif jaune in 6 kVA
// steps up to 240, then tarif vert in 10 kVA steps.
func snapKVA(kva float64) float64 {
	for _, step := range []float64{3, 6, 9, 12, 15, 18, 24, 30, 36} {
		if kva <= step {
			return step
		}
	}
	if kva <= 240 {
		return math.Ceil(kva/6) * 6
	}
	return math.Ceil(kva/10) * 10
}

// jitter moves a point uniformly within jitterM of a centroid, so that markers do not stack on the map.
func jitter(r *rand.Rand, lat, lon float64) (float64, float64) {
	d := jitterM * math.Sqrt(r.Float64())
	a := 2 * math.Pi * r.Float64()
	const mPerDeg = 111320
	lat2 := lat + d*math.Cos(a)/mPerDeg
	lon2 := lon + d*math.Sin(a)/(mPerDeg*math.Cos(lat*math.Pi/180))
	// Five decimals are about a metre: precise enough, and the YAML stays short.
	return math.Round(lat2*1e5) / 1e5, math.Round(lon2*1e5) / 1e5
}

func roundInt(v float64) int { return int(math.Round(v)) }

// ofCommune writes "de <commune>" the French way: "d'Urcel", "du Nouvion-en-Thiérache", "des Septvallons",
// "de La Fère". An initial H is left alone: whether it is aspirated cannot be told from the spelling.
func ofCommune(name string) string {
	switch {
	case strings.HasPrefix(name, "Le "):
		return "du " + name[3:]
	case strings.HasPrefix(name, "Les "):
		return "des " + name[4:]
	}
	first, _ := utf8.DecodeRuneInString(name)
	if strings.ContainsRune("AEIOUYÂÉÈÊÎÔŒ", unicode.ToUpper(first)) {
		return "d'" + name
	}
	return "de " + name
}
