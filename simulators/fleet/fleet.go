// Package fleet generates, deterministically from a seed, the simulated fleet of the Aisne over the real
// territory: the public buildings of each commune with their meters, the street-lighting cabinets with their
// controllers, and one weather station per arrondissement. It emits the registry YAML the service loads and
// keeps, next to each device, what only the simulator needs (payload format, lamp power, LED or sodium).
//
// The numbers below are plausible, not surveyed; they aim at a fleet whose size and mix look like the
// département's, so that benchmarks and dashboards see realistic proportions. For the whole département
// (797 communes, 523 342 inhabitants) and seed 1: 1 729 buildings, 4 330 meters, 1 740 lighting cabinets
// with 52 384 luminaires, 5 weather stations; 6 075 devices in all.
//
// # Buildings per commune
//
//	usage            count                                            surface m²
//	mairie           always 1                                         80–200 (< 500 inh.), 150–400 (< 2 000),
//	                                                                  400–1 200 (< 10 000), 800–3 000 (town)
//	école            pop/1 200 rounded, ≥ 1 from 250 inh., ≤ 40      400–1 000 (< 2 000 inh.), 600–3 000
//	collège          pop/7 000 rounded, ≥ 1, above 3 000 inh.         4 000–9 000 (the Département's own)
//	gymnase          pop/8 000 rounded, ≥ 1, above 2 000 inh.         800–2 500
//	salle des fêtes  1 + pop/15 000, above 400 inh.                   150–500 (< 2 000 inh.), 400–1 500
//	médiathèque      pop/20 000, ≥ 1, above 3 500 inh.                300–1 000 (< 10 000 inh.), 800–3 000
//	piscine          pop/25 000, ≥ 1, above 12 000 inh.               1 500–5 000
//
// Below 250 inhabitants a village has no school of its own: its children go to a regrouped school
// (RPI) elsewhere. The école cap of 40 matches Saint-Quentin, the largest town, counting maternelles and
// élémentaires separately. A building of 1 000 m² or more is subject to the décret tertiaire, with a
// reference year drawn in 2010–2019 (the decree allows any year from 2010 with full data).
//
// Subscribed power is the building's peak electrical density (W/m²: mairie 35, école 30, collège 25,
// gymnase 25, salle des fêtes 45 for its kitchen, médiathèque 40, piscine 70 for pumps and water treatment;
// +50 W/m² when heated electrically) times the surface, times 1.2 to 1.6 (a subscription sized with a margin
// over the peak, as an energy manager does: a building drawn at 0.75-1.25 of its peak density reached 108 %
// of its subscription on a cold morning, which the meter's own max_power_w then flagged as an impossible
// index jump; see rules/faults_sim_test.go), snapped to the tariff steps: tarif bleu
// 3–36 kVA, then tarif jaune in steps of 6 kVA up to 240, then tarif vert in steps of 10.
//
// # Meters per building
//
//   - electricity (index and power, every 10 min): max_power_w is the subscribed kVA × 1 000 W, the most the
//     supply lets through; register_max is 10⁵ kWh for tarif bleu, 10⁶ kWh above.
//   - heat, in Saint-Quentin, Soissons, Laon and Château-Thierry (their heat networks): half of the
//     buildings of 500 m² or more are connected and get a heat meter (every 15 min) instead of gas.
//   - gas (volume index, hourly) for buildings of 200 m² or more, with a probability that follows the gas
//     network's reach: 50 % below 500 inhabitants, 75 % below 2 000, 95 % above (about three buildings in
//     four of 200 m² or more). Smaller or unconnected buildings heat with electricity (or fuel oil, not
//     metered). max_power_w is the boiler's power, about 100 W/m²; register_max 10⁵ m³, 10⁶ from 1 000 m².
//   - water (volume index, hourly) everywhere, same registers.
//
// Volume units: a meter speaking flat JSON or line protocol sends bare numbers, so 30 % of those gas meters
// and half of those water meters count litres and say so with a `units: {volume_m3: L}` hint; SenML names
// its unit in the payload, and the LoRaWAN profiles fix theirs (litres for the water pulse counter, m³ for
// gas, Wh for the TIC module and the lighting node, kW for the heat meter's power).
//
// # Street lighting
//
// About one luminaire per 10 inhabitants (at least 4 per commune), on cabinets of 20 to 60 (one cabinet
// below 41 luminaires). A cabinet is either renovated to LED (40–90 W a luminaire) or still high-pressure
// sodium (100–150 W with its ballast); the LED share of cabinets rises with the commune's size, 35 % at
// 100 inhabitants and 15 points more per tenfold (50 % at 1 000, 65 % at 10 000, 76 % in Saint-Quentin),
// as larger towns renovated first. Each cabinet has one controller (every 5 min) whose max_power_w is the
// nominal power × 1.1; the cabinet subscribes nominal × 1.2. NominalW is recoverable from the registry
// alone as round(max_power_w / 1.1). A third of the LED cabinets of communes of 2 000 inhabitants or more
// have presence detection on their streets (drawn from a hash of the seed and the cabinet, outside the
// commune's stream): their controller also reports presence.
//
// # Weather
//
// One station in each arrondissement's chef-lieu: Laon, Saint-Quentin, Soissons, Château-Thierry, Vervins.
// A commune belongs to the arrondissement of the nearest one (close enough to the real map for outdoor
// temperature); a partial fleet carries the stations of the arrondissements it touches, even when the
// chef-lieu itself is outside the selection, because heating follows outdoor temperature.
//
// # Payload formats
//
// Each device speaks one format, drawn from a hash of the seed and its id with the weights of Options.Mix
// (default 40 % flat JSON, 20 % SenML, 15 % line protocol, 15 % ChirpStack, 10 % The Things Stack).
// LoRaWAN devices carry a profile of Fleet.Profiles; ChirpStack ones are named by a lower-case 16-hex
// DevEUI, the others keep their readable id (valid as a TTS device_id too). The format never depends on
// the order of generation, and no random draw of the buildings depends on the format, so changing the mix
// changes formats only.
//
// Every LoRaWAN device carries its registry Downlink: ChirpStack application ChirpStackApplication, The
// Things Stack application TTSApplication, the default port. They are the applications its uplinks go out
// under (simulators/live.go), so uplinks and downlinks of one device name the same application.
//
// # Determinism and scale
//
// Each commune draws from its own stream, seeded by the seed and its INSEE code: a commune's buildings,
// cabinets and devices are the same whether the fleet covers one EPCI or the whole département (the one
// exception would be a DevEUI collision, odds about 10⁻¹²). Same territory, seed and options give the same
// YAML, byte for byte; the options are normalised first (codes sorted and deduplicated, the mix in
// percentages), so their order does not matter.
//
// # Simulator-only attributes
//
// The format, the lamp power, the LED flag, the luminaire count and the weather station of each device are
// not registry fields, and the registry loader is strict: they stay out of the YAML. Instead, the YAML's
// header records the normalised options on one line (`# options: {json}`); ParseOptions reads it, and
// Regenerate rebuilds the fleet from it and checks the file is exactly what those options produce (about 30 ms
// for the whole département). One file then carries everything, with no second file to keep in step, and
// a file edited by hand is refused rather than simulated with attributes that no longer match it. A
// per-device derivation from the id and seed alone was rejected: the lamp power and LED flag are drawn
// per cabinet with the commune's stream, so they can only be recomputed by replaying that stream.
package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// The payload formats of DESIGN.md, as simulators.Format names them.
const (
	FormatFlat         = "flat"
	FormatSenML        = "senml"
	FormatLineProtocol = "lineprotocol"
	FormatChirpStack   = "chirpstack"
	FormatTTS          = "tts"
)

// LoRaWAN applications of the simulated fleet on its network servers: its devices' uplinks are published
// under them and their Downlink routes name them.
const (
	ChirpStackApplication = "aisne"     // ChirpStack v4 application id
	TTSApplication        = "aisne@ttn" // The Things Stack "app@tenant"
)

// Formats lists the payload formats in the order of Mix.
func Formats() []string {
	return []string{FormatFlat, FormatSenML, FormatLineProtocol, FormatChirpStack, FormatTTS}
}

// Mix weighs the payload formats; only ratios matter (Generate turns them into percentages). The zero Mix
// means DefaultMix.
type Mix struct {
	Flat         float64 `json:"flat"`
	SenML        float64 `json:"senml"`
	LineProtocol float64 `json:"lineprotocol"`
	ChirpStack   float64 `json:"chirpstack"`
	TTS          float64 `json:"tts"`
}

// DefaultMix favours the native formats, as a fleet mostly on the syndicate's own gateways would, while
// giving every decoder enough traffic to show in the counters. A function, not a variable, so no caller can
// change what seed N generates.
func DefaultMix() Mix { return Mix{Flat: 40, SenML: 20, LineProtocol: 15, ChirpStack: 15, TTS: 10} }

func (m Mix) weights() [5]float64 {
	return [5]float64{m.Flat, m.SenML, m.LineProtocol, m.ChirpStack, m.TTS}
}

// Options choose the seed and the part of the territory the fleet covers.
type Options struct {
	Seed uint64 `json:"seed"`
	// EPCIs restricts the fleet to these EPCI (SIREN codes); empty means the whole département.
	EPCIs []string `json:"epcis,omitempty"`
	// Communes restricts it further to these communes (INSEE codes); empty means no restriction beyond EPCIs.
	Communes []string `json:"communes,omitempty"`
	// Mix weighs the payload formats; zero means DefaultMix.
	Mix Mix `json:"mix,omitzero"`
}

// Fleet is a generated fleet: registry sites and devices, and the LoRaWAN profiles the devices name.
type Fleet struct {
	Sites    []hv.Site
	Devices  []Device
	Profiles map[string]map[string]hv.KeyMap

	opts      Options // normalised: sorted, deduplicated
	territory *registry.Territory
	communes  []hv.Commune // the selection, sorted by INSEE code
}

// Device is a registry device with what only the simulator needs.
type Device struct {
	hv.Device
	// Format is the payload format the device speaks (FormatFlat…).
	Format string
	// NominalW is, for a lighting controller, the nominal power of the cabinet's lamps at full level.
	NominalW float64
	// LED says a lighting cabinet was renovated to LED; otherwise its lamps are high-pressure sodium.
	LED bool
	// Luminaires is the number of luminaires a lighting controller drives.
	Luminaires int
	// Presence says a lighting cabinet's streets have presence detection: its controller reports presence
	// (0/1, someone detected during the interval).
	Presence bool
	// Station is the id of the weather device whose outdoor temperature the device's site sees (the
	// arrondissement's station); empty for the weather devices themselves.
	Station string
}

// Generate returns the sites, devices and LoRaWAN profiles of the simulated fleet. Same territory, seed and
// options, same fleet, byte for byte once encoded.
func Generate(t *registry.Territory, o Options) (*Fleet, error) {
	if t == nil {
		return nil, fmt.Errorf("generate fleet: %w: no territory", hv.ErrInvalid)
	}
	o, err := normalise(o)
	if err != nil {
		return nil, fmt.Errorf("generate fleet: %w", err)
	}
	communes, err := selectCommunes(t, o)
	if err != nil {
		return nil, fmt.Errorf("generate fleet: %w", err)
	}
	g := &generator{
		seed:       o.Seed,
		mix:        o.Mix,
		euis:       map[string]bool{},
		station:    map[string]string{},
		stationPos: map[string]hv.Commune{},
	}
	for _, st := range stations {
		c, ok := t.Commune(st.code)
		if !ok {
			return nil, fmt.Errorf("generate fleet: %w: weather station commune %s (%s) is not in the territory", hv.ErrInvalid, st.code, st.name)
		}
		g.stationPos[st.code] = c
	}
	f := &Fleet{Profiles: Profiles(), opts: o, territory: t, communes: communes}

	// Stations first: every other device names its station.
	need := map[string]bool{}
	for _, c := range communes {
		need[g.nearestStation(c).code] = true
	}
	for _, st := range stations {
		if need[st.code] {
			g.weatherStation(f, g.stationPos[st.code])
		}
	}
	for _, c := range communes {
		g.commune(f, c)
	}
	return f, nil
}

// normalise validates o and makes it canonical (sorted, deduplicated, default mix) so that options given in
// another order produce the same fleet and the same header.
func normalise(o Options) (Options, error) {
	o.EPCIs = sortedUnique(o.EPCIs)
	o.Communes = sortedUnique(o.Communes)
	w := o.Mix.weights()
	sum := 0.0
	for i, v := range w {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return o, fmt.Errorf("%w: mix weight of %s is %v: weights must be finite and not negative", hv.ErrInvalid, Formats()[i], v)
		}
		sum += v
	}
	if sum == 0 {
		o.Mix = DefaultMix()
		return o, nil
	}
	// Percentages, so that the header reads plainly and Mix{4, 2, 1.5, 1.5, 1} is DefaultMix.
	for i := range w {
		w[i] = math.Round(w[i]/sum*100*1e6) / 1e6
	}
	o.Mix = Mix{Flat: w[0], SenML: w[1], LineProtocol: w[2], ChirpStack: w[3], TTS: w[4]}
	return o, nil
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func selectCommunes(t *registry.Territory, o Options) ([]hv.Commune, error) {
	epcis := map[string]bool{}
	for _, code := range o.EPCIs {
		if _, ok := t.EPCI(code); !ok {
			return nil, fmt.Errorf("%w: epci %q is not an EPCI of the territory", hv.ErrInvalid, code)
		}
		epcis[code] = true
	}
	only := map[string]bool{}
	for _, code := range o.Communes {
		c, ok := t.Commune(code)
		if !ok {
			return nil, fmt.Errorf("%w: commune %q is not an INSEE code of the territory", hv.ErrInvalid, code)
		}
		// Silently dropping it would hand back a smaller fleet than asked for.
		if len(epcis) > 0 && !epcis[c.EPCI] {
			return nil, fmt.Errorf("%w: commune %s (%s) is not in the selected EPCI", hv.ErrInvalid, code, c.Name)
		}
		only[code] = true
	}
	var out []hv.Commune
	for _, c := range t.Communes() {
		if (len(epcis) == 0 || epcis[c.EPCI]) && (len(only) == 0 || only[c.Code]) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the selection holds no commune", hv.ErrInvalid)
	}
	return out, nil
}

// station is an arrondissement's chef-lieu.
type station struct{ code, name string }

// stations are the chefs-lieux of the five arrondissements of the Aisne.
var stations = []station{
	{"02168", "Château-Thierry"},
	{"02408", "Laon"},
	{"02691", "Saint-Quentin"},
	{"02722", "Soissons"},
	{"02789", "Vervins"},
}

// nearestStation returns the chef-lieu of the arrondissement c belongs to, taken as the nearest one.
func (g *generator) nearestStation(c hv.Commune) station {
	best, bestD := stations[0], math.Inf(1)
	for _, st := range stations {
		p := g.stationPos[st.code]
		// Equirectangular distance: exact enough at the scale of a département.
		dx := (c.Lon - p.Lon) * math.Cos(c.Lat*math.Pi/180)
		dy := c.Lat - p.Lat
		if d := dx*dx + dy*dy; d < bestD {
			best, bestD = st, d
		}
	}
	return best
}

// generator carries the fleet-wide state of one Generate call.
type generator struct {
	seed       uint64
	mix        Mix
	euis       map[string]bool       // DevEUIs handed out, to keep them unique
	station    map[string]string     // chef-lieu INSEE code → weather device id
	stationPos map[string]hv.Commune // chef-lieu INSEE code → its commune, for the arrondissement
}

// rng returns the random stream of one commune (or station): seeded by the seed and the code only, so a
// commune's draws do not depend on which other communes are generated.
func (g *generator) rng(kind, code string) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, hash64(g.seed, kind, code)))
}

// format picks a device's payload format from a hash of the seed and its logical id.
func (g *generator) format(id string) string {
	w := g.mix.weights()
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	u := unit(hash64(g.seed, "format", id)) * sum
	for i, v := range w {
		if u < v {
			return Formats()[i]
		}
		u -= v
	}
	// Rounding can leave u a hair above the last weight: take the last format that has any weight.
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return Formats()[i]
		}
	}
	return FormatFlat
}

// device completes a device with its format, its LoRaWAN profile and downlink route and, for ChirpStack,
// its DevEUI.
func (g *generator) device(d Device, profile string) Device {
	d.Format = g.format(d.ID)
	switch d.Format {
	case FormatChirpStack:
		d.Profile = profile
		d.ID = g.devEUI(d.ID)
		d.Downlink = &hv.Downlink{Network: hv.NetworkChirpStack, Application: ChirpStackApplication}
	case FormatTTS:
		d.Profile = profile
		d.Downlink = &hv.Downlink{Network: hv.NetworkTTS, Application: TTSApplication}
	}
	return d
}

// devEUI derives a DevEUI from the logical id, so it is stable across scales; a collision (odds about
// 10⁻¹² for the whole fleet) is resolved by rehashing, the only case where scale could change an id.
func (g *generator) devEUI(id string) string {
	for n := 0; ; n++ {
		eui := fmt.Sprintf("%016x", hash64(g.seed, "deveui", id, strconv.Itoa(n)))
		if !g.euis[eui] {
			g.euis[eui] = true
			return eui
		}
	}
}

// hash64 is FNV-1a over the seed and the parts, finished with the splitmix64 mixer so that nearby inputs
// give unrelated outputs. Stable across runs and platforms, unlike hash/maphash.
func hash64(seed uint64, parts ...string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < 8; i++ {
		h = (h ^ (seed >> (8 * i) & 0xff)) * prime
	}
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h = (h ^ uint64(p[i])) * prime
		}
		h = (h ^ 0xff) * prime // separator: ("ab","c") ≠ ("a","bc")
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// Load generates the fleet and loads its YAML as the service loads a registry file, so callers get the fleet
// and the registry that agree with it.
func Load(t *registry.Territory, o Options) (*Fleet, *registry.Registry, error) {
	f, err := Generate(t, o)
	if err != nil {
		return nil, nil, err
	}
	y, err := f.YAML()
	if err != nil {
		return nil, nil, err
	}
	reg, err := registry.LoadBytes(t, "simulated fleet", y)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: load as a registry: %w", err)
	}
	return f, reg, nil
}
