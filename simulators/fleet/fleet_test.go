package fleet

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// laonEPCI is the CA du Pays de Laon.
const laonEPCI = "200043495"

var loadTerritory = sync.OnceValues(registry.DefaultTerritory)

func territory(t testing.TB) *registry.Territory {
	t.Helper()
	tr, err := loadTerritory()
	if err != nil {
		t.Fatalf("load territory: %v", err)
	}
	return tr
}

func generate(t testing.TB, o Options) *Fleet {
	t.Helper()
	f, err := Generate(territory(t), o)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", o, err)
	}
	return f
}

func encode(t testing.TB, f *Fleet) []byte {
	t.Helper()
	y, err := f.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	return y
}

// load reads a fleet YAML with the service's strict loader.
func load(t testing.TB, y []byte) *registry.Registry {
	t.Helper()
	r, err := registry.LoadBytes(territory(t), "fleet.yaml", y)
	if err != nil {
		t.Fatalf("registry.LoadBytes: %v", err)
	}
	return r
}

// whole is the département's fleet for seed 1, shared by the tests that only read it.
var whole = sync.OnceValues(func() (*Fleet, error) {
	tr, err := loadTerritory()
	if err != nil {
		return nil, err
	}
	return Generate(tr, Options{Seed: 1})
})

func wholeFleet(t testing.TB) *Fleet {
	t.Helper()
	f, err := whole()
	if err != nil {
		t.Fatalf("Generate whole département: %v", err)
	}
	return f
}

func TestGenerateDeterministic(t *testing.T) {
	tests := []struct {
		name string
		a, b Options
		same bool
	}{
		{"same seed", Options{Seed: 1}, Options{Seed: 1}, true},
		{"other seed", Options{Seed: 1}, Options{Seed: 2}, false},
		{"seed zero is a seed", Options{Seed: 0}, Options{Seed: 0}, true},
		{"zero mix is the default mix", Options{Seed: 7}, Options{Seed: 7, Mix: DefaultMix()}, true},
		{"mix ratios, not sums", Options{Seed: 7, Mix: Mix{4, 2, 1.5, 1.5, 1}}, Options{Seed: 7}, true},
		{"other mix", Options{Seed: 7}, Options{Seed: 7, Mix: Mix{Flat: 1}}, false},
		{"selection order does not matter",
			Options{Seed: 3, EPCIs: []string{laonEPCI, "240200477"}},
			Options{Seed: 3, EPCIs: []string{"240200477", laonEPCI, laonEPCI}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := encode(t, generate(t, tt.a)), encode(t, generate(t, tt.b))
			if got := bytes.Equal(a, b); got != tt.same {
				t.Errorf("identical YAML = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestWholeDepartement(t *testing.T) {
	tr := territory(t)
	f := wholeFleet(t)
	reg := load(t, encode(t, f))

	t.Run("registry holds the fleet field for field", func(t *testing.T) {
		if len(reg.Sites()) != len(f.Sites) || len(reg.Devices()) != len(f.Devices) {
			t.Fatalf("registry has %d sites, %d devices; fleet %d, %d", len(reg.Sites()), len(reg.Devices()), len(f.Sites), len(f.Devices))
		}
		for _, s := range f.Sites {
			got, ok := reg.Site(s.ID)
			if !ok || !reflect.DeepEqual(got, s) {
				t.Errorf("site %s: registry has %+v, fleet %+v", s.ID, got, s)
			}
		}
		for _, d := range f.Devices {
			got, _, ok := reg.Device(d.ID)
			if !ok || !reflect.DeepEqual(got, d.Device) {
				t.Errorf("device %s: registry has %+v, fleet %+v", d.ID, got, d.Device)
			}
		}
		if !reflect.DeepEqual(reg.Profiles(), f.Profiles) {
			t.Errorf("profiles: registry has %v, fleet %v", reg.Profiles(), f.Profiles)
		}
	})

	t.Run("every commune has a mairie", func(t *testing.T) {
		mairies := map[string]int{}
		for _, s := range f.Sites {
			if s.Usage == "mairie" {
				mairies[s.Commune]++
			}
		}
		for _, c := range tr.Communes() {
			if mairies[c.Code] != 1 {
				t.Errorf("commune %s %s has %d mairies", c.Code, c.Name, mairies[c.Code])
			}
		}
	})

	st := f.Stats()
	t.Run("counts", func(t *testing.T) {
		pop := 0
		for _, c := range tr.Communes() {
			pop += c.Population
		}
		if st.Communes != len(tr.Communes()) || st.Population != pop {
			t.Errorf("stats cover %d communes, %d inhabitants; want %d, %d", st.Communes, st.Population, len(tr.Communes()), pop)
		}
		if n := st.SitesByKind[hv.SiteWeatherStation]; n != 5 {
			t.Errorf("%d weather stations, want 5", n)
		}
		if n := st.DevicesByKind[hv.DeviceWeather]; n != 5 {
			t.Errorf("%d weather devices, want 5", n)
		}
		if want := float64(pop) / 10; math.Abs(float64(st.Luminaires)-want) > 0.05*want {
			t.Errorf("%d luminaires, want %.0f ± 5 %%", st.Luminaires, want)
		}
		if st.Cabinets != st.SitesByKind[hv.SiteLightingCabinet] {
			t.Errorf("%d controllers for %d cabinets", st.Cabinets, st.SitesByKind[hv.SiteLightingCabinet])
		}
		t.Logf("\n%s", st)
	})

	t.Run("every kind, fluid and format present", func(t *testing.T) {
		for _, k := range []hv.DeviceKind{hv.DeviceMeter, hv.DeviceLightingController, hv.DeviceWeather} {
			if st.DevicesByKind[k] == 0 {
				t.Errorf("no device of kind %s", k)
			}
		}
		for _, fl := range []hv.Fluid{hv.Electricity, hv.Gas, hv.Water, hv.Heat} {
			if st.MetersByFluid[fl] == 0 {
				t.Errorf("no %s meter", fl)
			}
		}
		for _, bt := range buildingTypes {
			if st.SitesByUsage[bt.usage] == 0 {
				t.Errorf("no %s", bt.usage)
			}
		}
		w := DefaultMix().weights()
		for i, format := range Formats() {
			share := float64(st.DevicesByFormat[format]) / float64(st.Devices)
			if want := w[i] / 100; math.Abs(share-want) > 0.02 {
				t.Errorf("%s: %.1f %% of devices, want %.0f %% ± 2", format, 100*share, 100*want)
			}
		}
	})

	t.Run("ids unique and valid", func(t *testing.T) {
		seen := map[string]bool{}
		for _, s := range f.Sites {
			if seen[s.ID] {
				t.Errorf("site id %s twice", s.ID)
			}
			seen[s.ID] = true
		}
		seen = map[string]bool{}
		for _, d := range f.Devices {
			if seen[d.ID] {
				t.Errorf("device id %s twice", d.ID)
			}
			seen[d.ID] = true
		}
	})
}

func TestFleetInvariants(t *testing.T) {
	f := wholeFleet(t)
	tr := territory(t)
	sites := map[string]hv.Site{}
	for _, s := range f.Sites {
		sites[s.ID] = s
	}
	weather := map[string]bool{}
	for _, d := range f.Devices {
		if d.Kind == hv.DeviceWeather {
			weather[d.ID] = true
		}
	}

	for _, s := range f.Sites {
		c, _ := tr.Commune(s.Commune)
		if d := distanceM(s.Lat, s.Lon, c.Lat, c.Lon); d > 1010 {
			t.Errorf("site %s is %.0f m from its commune's centroid", s.ID, d)
		}
		if s.EPCI != c.EPCI {
			t.Errorf("site %s: epci %s, commune's is %s", s.ID, s.EPCI, c.EPCI)
		}
		if s.Kind != hv.SiteBuilding {
			continue
		}
		if s.Tertiaire != (s.SurfaceM2 >= 1000) {
			t.Errorf("site %s: %v m², tertiaire %v", s.ID, s.SurfaceM2, s.Tertiaire)
		}
		if s.Tertiaire && (s.ReferenceYear < 2010 || s.ReferenceYear > 2019) || !s.Tertiaire && s.ReferenceYear != 0 {
			t.Errorf("site %s: reference year %d (tertiaire %v)", s.ID, s.ReferenceYear, s.Tertiaire)
		}
		if snapKVA(s.SubscribedKVA) != s.SubscribedKVA {
			t.Errorf("site %s: %v kVA is no tariff step", s.ID, s.SubscribedKVA)
		}
	}

	profiles := Profiles()
	for _, d := range f.Devices {
		s := sites[d.Site]
		switch {
		case d.Kind != hv.DeviceWeather && !weather[d.Station]:
			t.Errorf("device %s: station %q is not a weather device of the fleet", d.ID, d.Station)
		case d.Kind == hv.DeviceWeather && d.Station != "":
			t.Errorf("weather device %s has a station", d.ID)
		}
		lorawan := d.Format == FormatChirpStack || d.Format == FormatTTS
		if _, ok := profiles[d.Profile]; lorawan != ok {
			t.Errorf("device %s: format %s with profile %q", d.ID, d.Format, d.Profile)
		}
		if (d.Format == FormatChirpStack) != isDevEUI(d.ID) {
			t.Errorf("device %s: format %s; a DevEUI id goes with chirpstack and only with it", d.ID, d.Format)
		}
		var route *hv.Downlink // the network server its uplinks go through, under the same application
		switch d.Format {
		case FormatChirpStack:
			route = &hv.Downlink{Network: hv.NetworkChirpStack, Application: ChirpStackApplication}
		case FormatTTS:
			route = &hv.Downlink{Network: hv.NetworkTTS, Application: TTSApplication}
		}
		if !reflect.DeepEqual(d.Downlink, route) {
			t.Errorf("device %s: format %s with downlink %+v, want %+v", d.ID, d.Format, d.Downlink, route)
		}
		if d.Units != nil && d.Format != FormatFlat && d.Format != FormatLineProtocol {
			t.Errorf("device %s: unit hints on a %s device, whose payload names its units", d.ID, d.Format)
		}
		switch {
		case d.Fluid == hv.Heat && !heatNetworks[s.Commune]:
			t.Errorf("heat meter %s in %s, which has no heat network", d.ID, s.Commune)
		case d.Fluid == hv.Electricity && d.Kind == hv.DeviceMeter && d.MaxPowerW != s.SubscribedKVA*1000:
			t.Errorf("meter %s: max power %v W for %v kVA", d.ID, d.MaxPowerW, s.SubscribedKVA)
		case d.Kind == hv.DeviceLightingController:
			if got := math.Round(d.MaxPowerW / 1.1); got != d.NominalW {
				t.Errorf("controller %s: max_power_w %v / 1.1 = %v, nominal %v", d.ID, d.MaxPowerW, got, d.NominalW)
			}
			lo, hi := 100.0, 150.0
			if d.LED {
				lo, hi = 40, 90
			}
			if per := d.NominalW / float64(d.Luminaires); per < lo || per > hi {
				t.Errorf("controller %s: %.0f W a luminaire (LED %v)", d.ID, per, d.LED)
			}
		}
	}
}

func TestScale(t *testing.T) {
	tr := territory(t)
	all := wholeFleet(t)
	f := generate(t, Options{Seed: 1, EPCIs: []string{laonEPCI}})
	reg := load(t, encode(t, f))

	epci, _ := tr.EPCI(laonEPCI)
	members := map[string]bool{}
	for _, c := range epci.Communes {
		members[c] = true
	}
	for _, s := range reg.Sites() {
		if s.Kind != hv.SiteWeatherStation && !members[s.Commune] {
			t.Errorf("site %s in commune %s, outside the EPCI", s.ID, s.Commune)
		}
	}
	st, wst := f.Stats(), all.Stats()
	if st.Communes != len(epci.Communes) {
		t.Errorf("%d communes, want %d", st.Communes, len(epci.Communes))
	}
	if st.SitesByUsage["mairie"] != len(epci.Communes) {
		t.Errorf("%d mairies for %d communes", st.SitesByUsage["mairie"], len(epci.Communes))
	}
	if n := st.SitesByKind[hv.SiteWeatherStation]; n < 1 || n > 2 {
		t.Errorf("%d weather stations for one EPCI, want 1 or 2", n)
	}
	if _, ok := reg.Site("station-meteo-02408"); !ok {
		t.Error("no Laon weather station")
	}
	if st.Devices*10 > wst.Devices || st.Sites*10 > wst.Sites {
		t.Errorf("EPCI fleet has %d sites, %d devices; département %d, %d: want at least ten times fewer", st.Sites, st.Devices, wst.Sites, wst.Devices)
	}

	// A commune's fleet does not depend on the scale: the EPCI's is the département's, cut.
	allDevices := map[string]Device{}
	for _, d := range all.Devices {
		allDevices[d.ID] = d
	}
	allSites := map[string]hv.Site{}
	for _, s := range all.Sites {
		allSites[s.ID] = s
	}
	for _, s := range f.Sites {
		if !reflect.DeepEqual(allSites[s.ID], s) {
			t.Errorf("site %s differs from the département's: %+v vs %+v", s.ID, s, allSites[s.ID])
		}
	}
	for _, d := range f.Devices {
		if !reflect.DeepEqual(allDevices[d.ID], d) {
			t.Errorf("device %s differs from the département's: %+v vs %+v", d.ID, d, allDevices[d.ID])
		}
	}
	t.Logf("\n%s", st)
}

func TestGenerateInvalid(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"unknown epci", Options{EPCIs: []string{"123456789"}}, `epci "123456789"`},
		{"unknown commune", Options{Communes: []string{"75056"}}, `commune "75056"`},
		{"commune outside the epci", Options{EPCIs: []string{laonEPCI}, Communes: []string{"02691"}}, "not in the selected EPCI"},
		{"negative weight", Options{Mix: Mix{Flat: 1, TTS: -1}}, "mix weight of tts"},
		{"NaN weight", Options{Mix: Mix{SenML: math.NaN()}}, "mix weight of senml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(territory(t), tt.o)
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := Generate(nil, Options{}); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("nil territory: err = %v, want ErrInvalid", err)
	}
}

func TestRegenerate(t *testing.T) {
	o := Options{Seed: 42, EPCIs: []string{laonEPCI}, Communes: []string{"02408", "02037"}, Mix: Mix{Flat: 1, ChirpStack: 1}}
	f := generate(t, o)
	y := encode(t, f)

	got, err := Regenerate(territory(t), y)
	if err != nil {
		t.Fatalf("Regenerate: %v", err)
	}
	if !reflect.DeepEqual(got.Devices, f.Devices) || !reflect.DeepEqual(got.Sites, f.Sites) {
		t.Error("regenerated fleet differs from the original")
	}

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"edited by hand", bytes.Replace(y, []byte("interval: 10m"), []byte("interval: 15m"), 1), "differs from what its options generate"},
		{"no header", bytes.TrimLeft(y[bytes.Index(y, []byte("\nsites:")):], "\n"), "no \"# options:\" line"},
		{"bad options", bytes.Replace(y, []byte(`"seed":42`), []byte(`"seed":"x"`), 1), "parse fleet options"},
		{"unknown option", bytes.Replace(y, []byte(`"seed":42`), []byte(`"seed":42,"scale":2`), 1), "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Regenerate(territory(t), tt.data)
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestMix(t *testing.T) {
	tests := []struct {
		name string
		mix  Mix
		want string // the only format expected
	}{
		{"flat only", Mix{Flat: 1}, FormatFlat},
		{"senml only", Mix{SenML: 3}, FormatSenML},
		{"line protocol only", Mix{LineProtocol: 1}, FormatLineProtocol},
		{"chirpstack only", Mix{ChirpStack: 1}, FormatChirpStack},
		{"tts only", Mix{TTS: 1}, FormatTTS},
	}
	base := generate(t, Options{Seed: 5, EPCIs: []string{laonEPCI}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := generate(t, Options{Seed: 5, EPCIs: []string{laonEPCI}, Mix: tt.mix})
			load(t, encode(t, f))
			if st := f.Stats(); st.DevicesByFormat[tt.want] != st.Devices {
				t.Errorf("formats %v, want all %s", st.DevicesByFormat, tt.want)
			}
			// The mix changes formats, never the buildings.
			if !reflect.DeepEqual(f.Sites, base.Sites) {
				t.Error("sites changed with the mix")
			}
		})
	}
}

func TestBuildingCounts(t *testing.T) {
	tests := []struct {
		name string
		pop  int
		want map[string]int
	}{
		{"hamlet", 16, map[string]int{"mairie": 1}},
		{"village below the school threshold", 249, map[string]int{"mairie": 1}},
		{"village with a school", 250, map[string]int{"mairie": 1, "école": 1}},
		{"village with a salle des fêtes", 401, map[string]int{"mairie": 1, "école": 1, "salle des fêtes": 1}},
		{"bourg", 2500, map[string]int{"mairie": 1, "école": 2, "gymnase": 1, "salle des fêtes": 1}},
		{"small town", 5183, map[string]int{"mairie": 1, "école": 4, "collège": 1, "gymnase": 1, "salle des fêtes": 1, "médiathèque": 1}},
		{"Laon", 24220, map[string]int{"mairie": 1, "école": 20, "collège": 3, "gymnase": 3, "salle des fêtes": 2, "médiathèque": 1, "piscine": 1}},
		{"Saint-Quentin", 52813, map[string]int{"mairie": 1, "école": 40, "collège": 8, "gymnase": 7, "salle des fêtes": 4, "médiathèque": 2, "piscine": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]int{}
			for _, bt := range buildingTypes {
				if n := bt.count(tt.pop); n > 0 {
					got[bt.usage] = n
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts for %d inhabitants = %v, want %v", tt.pop, got, tt.want)
			}
		})
	}
}

func TestCabinetSizes(t *testing.T) {
	g := &generator{seed: 1}
	for _, total := range []int{4, 19, 20, 40, 41, 59, 60, 61, 80, 81, 119, 121, 500, 2422, 5281} {
		r := g.rng("test", "x")
		sizes := cabinetSizes(r, total)
		sum := 0
		for _, n := range sizes {
			sum += n
			if total > 40 && (n < 20 || n > 60) {
				t.Errorf("%d luminaires: cabinet of %d, want 20–60", total, n)
			}
		}
		if sum != total || total <= 40 && len(sizes) != 1 {
			t.Errorf("%d luminaires split as %v", total, sizes)
		}
	}
}

func TestOfCommune(t *testing.T) {
	tests := []struct{ name, want string }{
		{"Laon", "de Laon"},
		{"Abbécourt", "d'Abbécourt"},
		{"Étréaupont", "d'Étréaupont"},
		{"Le Nouvion-en-Thiérache", "du Nouvion-en-Thiérache"},
		{"Les Septvallons", "des Septvallons"},
		{"La Fère", "de La Fère"},
		{"Hirson", "de Hirson"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ofCommune(tt.name); got != tt.want {
				t.Errorf("ofCommune(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestScalar(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mairie-02408", "mairie-02408"},
		{"L", "L"},
		{"%", `"%"`},
		{"m3/h", `"m3/h"`},
		{"yes", `"yes"`},
		{"02408", `"02408"`},
		{"", `""`},
		{"salle des fêtes", `"salle des fêtes"`},
		{`a"b`, `"a\"b"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := scalar(tt.in); got != tt.want {
				t.Errorf("scalar(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseOptionsRoundTrip(t *testing.T) {
	o := Options{Seed: 9, EPCIs: []string{laonEPCI}, Communes: []string{"02408"}, Mix: Mix{Flat: 1, TTS: 2}}
	y := encode(t, generate(t, o))
	got, err := ParseOptions(y)
	if err != nil {
		t.Fatal(err)
	}
	// The header holds the options normalised: the mix in percentages.
	want := o
	want.Mix = Mix{Flat: 33.333333, TTS: 66.666667}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseOptions = %+v, want %+v", got, want)
	}
	if again := encode(t, generate(t, got)); !bytes.Equal(again, y) {
		t.Error("the parsed options generate another fleet")
	}
}

func TestIDs(t *testing.T) {
	f := generate(t, Options{Seed: 1, Communes: []string{"02691"}, Mix: Mix{Flat: 1}})
	var ids []string
	for _, d := range f.Devices {
		ids = append(ids, d.ID)
	}
	for _, want := range []string{"elec-mairie-02691", "eau-ecole-02691-3", "ctrl-armoire-02691-017", "meteo-02691"} {
		if !slices.Contains(ids, want) {
			t.Errorf("no device %s", want)
		}
	}
}

// distanceM is the equirectangular distance in metres, fine at a few kilometres.
func distanceM(lat1, lon1, lat2, lon2 float64) float64 {
	const mPerDeg = 111320
	dx := (lon1 - lon2) * math.Cos(lat2*math.Pi/180) * mPerDeg
	dy := (lat1 - lat2) * mPerDeg
	return math.Hypot(dx, dy)
}

func BenchmarkGenerate(b *testing.B) {
	tr := territory(b)
	b.Run("generate", func(b *testing.B) {
		for b.Loop() {
			if _, err := Generate(tr, Options{Seed: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	f := generate(b, Options{Seed: 1})
	b.Run("yaml", func(b *testing.B) {
		var n int
		for b.Loop() {
			y, err := f.YAML()
			if err != nil {
				b.Fatal(err)
			}
			n = len(y)
		}
		b.ReportMetric(float64(n), "yaml-bytes")
	})
	y := encode(b, f)
	b.Run("regenerate", func(b *testing.B) {
		for b.Loop() {
			if _, err := Regenerate(tr, y); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("registry-load", func(b *testing.B) {
		for b.Loop() {
			if _, err := registry.LoadBytes(tr, "fleet.yaml", y); err != nil {
				b.Fatal(err)
			}
		}
	})
}
