package registry

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
)

func territory(t testing.TB) *Territory {
	t.Helper()
	tr, err := DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTerritory(t *testing.T) {
	tr := territory(t)
	if n := len(tr.Communes()); n != 797 {
		t.Errorf("communes: got %d, want 797", n)
	}
	if n := len(tr.EPCIs()); n != 20 {
		t.Errorf("epci: got %d, want 20", n)
	}
	if d := tr.Departement(); d.Code != "02" || d.Name != "Aisne" {
		t.Errorf("departement: got %+v", d)
	}
	laon, ok := tr.Commune("02408")
	if !ok || laon.Name != "Laon" || laon.EPCI != "200043495" || laon.Population == 0 {
		t.Fatalf("Laon: got %+v, %v", laon, ok)
	}
	e, ok := tr.EPCI(laon.EPCI)
	if !ok || e.Name != "CA du Pays de Laon" || e.Type != "CA" {
		t.Fatalf("Laon's EPCI: got %+v, %v", e, ok)
	}
	for _, code := range []string{"02691", "02722", "02168"} {
		if _, ok := tr.Commune(code); !ok {
			t.Errorf("commune %s missing", code)
		}
	}
	if _, ok := tr.Commune("02999"); ok {
		t.Error("02999 is not a commune of the Aisne")
	}
	cs := tr.Communes()
	for i := 1; i < len(cs); i++ {
		if cs[i-1].Code >= cs[i].Code {
			t.Fatalf("communes not sorted at %d", i)
		}
	}
}

func TestLoadTerritoryErrors(t *testing.T) {
	tests := []struct {
		name, json, err string
	}{
		{"unknown field", `{"departement":{"code":"02","nom":"Aisne"},"region":"HdF"}`, `load territory: json: unknown field "region"`},
		{"no departement", `{"epci":[],"communes":[]}`, "load territory: departement.code: invalid: empty"},
		{"commune in unknown epci", `{"departement":{"code":"02"},"epci":[],"communes":[{"code":"02001","epci":"200000000"}]}`,
			`load territory: commune 02001: invalid: epci "200000000" is not in the territory`},
		{"membership mismatch", `{"departement":{"code":"02"},"epci":[{"code":"A","communes":[]},{"code":"B","communes":["02001"]}],"communes":[{"code":"02001","epci":"A"}]}`,
			"load territory: epci B: invalid: member 02001 says it belongs to A"},
		{"missing membership", `{"departement":{"code":"02"},"epci":[{"code":"A","communes":[]}],"communes":[{"code":"02001","epci":"A"}]}`,
			"load territory: invalid: 1 communes but 0 EPCI memberships"},
		{"duplicate commune", `{"departement":{"code":"02"},"epci":[{"code":"A","communes":["02001"]}],"communes":[{"code":"02001","epci":"A"},{"code":"02001","epci":"A"}]}`,
			"load territory: commune 02001: invalid: listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadTerritory([]byte(tt.json))
			if err == nil || err.Error() != tt.err {
				t.Fatalf("got error %v, want %q", err, tt.err)
			}
		})
	}
}

// TestLoadBad checks each testdata/*.bad.yaml fails with exactly the expected text, Prometheus style: the
// message names the file, the entry and the key so an operator can fix it without reading code.
func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		err  string
	}{
		{"unknown-top-key", `line 1: unknown key "sitez" (want sites, devices, profiles)`},
		{"unknown-site-key", `sites[0] (id "mairie-laon"): line 5: unknown key "colour"`},
		{"unknown-keymap-key", `devices[0] (id "d1"): line 9: unknown key "keys.counter_a.unti"`},
		{"duplicate-site", `sites[1] (id "s1"): duplicate site id, first defined at testdata/duplicate-site.bad.yaml: sites[0] (id "s1")`},
		{"site-kind", `sites[0] (id "s1"): kind "batiment" is not one of building, lighting_cabinet, weather_station`},
		{"unknown-commune", `sites[0] (id "s1"): commune "02999" is not an INSEE code of the territory (département 02)`},
		{"missing-commune", `sites[0] (id "s1"): commune is required (INSEE code)`},
		{"lat-without-lon", `sites[0] (id "s1"): lat and lon go together: give both or neither`},
		{"tertiaire-surface", `sites[0] (id "s1"): tertiaire: true needs surface_m2 (the décret tertiaire tracks kWh/m²)`},
		{"reference-year", `sites[0] (id "s1"): reference_year 2005 is out of range: the décret tertiaire allows 2010 or later`},
		{"empty-id", `sites[0]: id is required`},
		{"bad-id", `devices[0] (id "hv/d1"): id "hv/d1": use letters, digits and - _ . : only, starting with a letter or digit (ids appear in MQTT topics and URLs)`},
		{"device-site", `devices[1] (id "x"): site "nope" is not a known site`},
		{"duplicate-device", `devices[1] (id "d1"): duplicate device id, first defined at testdata/duplicate-device.bad.yaml: devices[0] (id "d1")`},
		{"device-kind", `devices[0] (id "d1"): kind "compteur" is not one of meter, lighting_controller, weather`},
		{"meter-fluid", `devices[0] (id "d1"): fluid is required for a meter (electricity, gas, water, heat)`},
		{"fluid", `devices[0] (id "d1"): fluid "fioul" is not one of electricity, gas, water, heat, weather`},
		{"units-metric", `devices[0] (id "d1"): units: metric "energy" is not a canonical metric`},
		{"keys-metric", `devices[0] (id "d1"): keys.index: metric "energy_kwh_delta" is not a canonical metric`},
		{"unknown-profile", `devices[0] (id "d1"): profile "adeunis" is not a known profile`},
		{"profile-metric", `profiles.adeunis-pulse.counter_a: metric "litres" is not a canonical metric`},
		{"negative-interval", `devices[0] (id "d1"): interval must not be negative`},
		{"interval-syntax", "devices[0] (id \"d1\"): line 8: cannot unmarshal !!str `10 minutes` into time.Duration"},
		{"uppercase-deveui", `devices[0] (id "0018B24441524632"): id "0018B24441524632" looks like a DevEUI: write it in lower case, ChirpStack uplinks are matched lower-cased`},
		{"weather-fluid", `devices[0] (id "d1"): kind weather measures fluid weather, not electricity`},
		{"not-a-list", `devices: line 2: must be a list`},
		{"two-documents", `more than one YAML document: keep one per file`},
		{"syntax", `line 1: did not find expected ',' or '}'`},
		{"several", strings.Join([]string{
			`sites[0] (id "s1"): commune "02999" is not an INSEE code of the territory (département 02)`,
			`sites[1] (id "s2"): name is required`,
			`devices[1] (id "d2"): fluid is required for a meter (electricity, gas, water, heat)`,
		}, "\n"+"testdata/several.bad.yaml: ")},
	}
	tr := territory(t)
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := "testdata/" + tt.file + ".bad.yaml"
			seen[path] = true
			r, err := Load(tr, path)
			if err == nil {
				t.Fatalf("loaded %d devices, want error %q", len(r.Devices()), tt.err)
			}
			if want := path + ": " + tt.err; err.Error() != want {
				t.Fatalf("error:\n got %s\nwant %s", err, want)
			}
			if !errors.Is(err, hv.ErrInvalid) {
				t.Errorf("error does not match hv.ErrInvalid")
			}
		})
	}
	// Every bad file has its expected text: a new case cannot be added and forgotten.
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	for _, f := range files {
		if !seen[f] {
			t.Errorf("%s has no case in TestLoadBad", f)
		}
	}
}

func TestLoadErrorBound(t *testing.T) {
	var b strings.Builder
	b.WriteString("sites:\n")
	for range 30 {
		b.WriteString("  - {id: s, name: S, kind: building, commune: \"02999\"}\n")
	}
	_, err := LoadSources(territory(t), Source{Name: "many.yaml", Data: []byte(b.String())})
	if err == nil {
		t.Fatal("want an error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxErrors+1 || lines[maxErrors] != "… and 10 more problems" {
		t.Fatalf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestLoadAcrossFiles(t *testing.T) {
	tr := territory(t)
	r, err := Load(tr, "testdata/base-sites.yaml", "testdata/base-devices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, s, ok := r.Device("elec-mairie-laon")
	if !ok || s.ID != "mairie-laon" || s.EPCI != "200043495" || d.Interval != 10*time.Minute || d.RegisterMax != 1e6 {
		t.Fatalf("elec-mairie-laon: got %+v on %+v, %v", d, s, ok)
	}
	// Centroid default for a site without coordinates; explicit coordinates are kept.
	laon, _ := tr.Commune("02408")
	if s.Lat != laon.Lat || s.Lon != laon.Lon {
		t.Errorf("mairie-laon position: got %v,%v, want Laon's centroid %v,%v", s.Lat, s.Lon, laon.Lat, laon.Lon)
	}
	if s, _ := r.Site("armoire-soissons"); s.Lat != 49.38 || s.Lon != 3.32 || s.EPCI != "240200477" {
		t.Errorf("armoire-soissons: got %+v", s)
	}
	// Profile keys overlaid with the device's own.
	want := map[string]hv.KeyMap{
		"counter_a": {Metric: hv.VolumeM3, Unit: "L"},
		"counter_b": {Metric: hv.VolumeM3, Unit: "L"},
	}
	if got := r.KeyMap("eau-laon"); !reflect.DeepEqual(got, want) {
		t.Errorf("eau-laon keys: got %v, want %v", got, want)
	}
	if got := r.KeyMap("elec-mairie-laon"); got != nil {
		t.Errorf("elec-mairie-laon keys: got %v, want none", got)
	}
	if _, _, ok := r.Device("nope"); ok {
		t.Error("unknown device found")
	}
	if dp, sp, ok := r.Lookup("elec-mairie-laon"); !ok || !reflect.DeepEqual(*dp, d) || *sp != s {
		t.Errorf("Lookup differs from Device: %+v %+v", dp, sp)
	}
	if dp, sp, ok := r.Lookup("nope"); ok || dp != nil || sp != nil {
		t.Error("Lookup of an unknown device")
	}

	// The same devices twice: every id is a duplicate, and the message points at the first definition.
	_, err = Load(tr, "testdata/base-sites.yaml", "testdata/base-devices.yaml", "testdata/base-devices.yaml")
	if err == nil || !strings.Contains(err.Error(), `testdata/base-devices.yaml: profiles.adeunis-pulse: profile defined twice, first in testdata/base-devices.yaml`) ||
		!strings.Contains(err.Error(), `testdata/base-devices.yaml: devices[0] (id "elec-mairie-laon"): duplicate device id, first defined at testdata/base-devices.yaml: devices[0] (id "elec-mairie-laon")`) {
		t.Fatalf("got %v", err)
	}
	// Devices without their sites.
	_, err = Load(tr, "testdata/base-devices.yaml")
	if err == nil || !strings.Contains(err.Error(), `devices[0] (id "elec-mairie-laon"): site "mairie-laon" is not a known site`) {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(tr, "testdata/absent.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
}

func TestLoadEmptyAndMerge(t *testing.T) {
	tr := territory(t)
	r, err := LoadSources(tr, Source{Name: "empty.yaml"}, Source{Name: "null.yaml", Data: []byte("---\n")},
		Source{Name: "nulls.yaml", Data: []byte("sites:\ndevices:\nprofiles:\n")})
	if err != nil || len(r.Sites()) != 0 || len(r.Devices()) != 0 {
		t.Fatalf("got %v", err)
	}
	// YAML merge keys share settings between entries and are checked like the entry itself.
	doc := `
common: &meter {kind: meter, fluid: electricity, interval: 10m}
sites: [{id: s1, name: S1, kind: building, commune: "02408"}]
devices:
  - {<<: *meter, id: d1, site: s1}
`
	if _, err := LoadSources(tr, Source{Name: "merge.yaml", Data: []byte(doc)}); err == nil ||
		err.Error() != `merge.yaml: line 2: unknown key "common" (want sites, devices, profiles)` {
		t.Fatalf("got %v", err)
	}
	doc = `
sites: [{id: s1, name: S1, kind: building, commune: "02408"}]
devices:
  - &meter {id: d0, site: s1, kind: meter, fluid: electricity, interval: 10m}
  - {<<: *meter, id: d1, max_power_w: 9000}
  - {<<: *meter, id: d2, colour: blue}
`
	_, err = LoadSources(tr, Source{Name: "merge.yaml", Data: []byte(doc)})
	if err == nil || err.Error() != `merge.yaml: devices[2] (id "d2"): line 6: unknown key "colour"` {
		t.Fatalf("got %v", err)
	}
	doc = strings.Replace(doc, ", colour: blue", "", 1)
	r, err = LoadSources(tr, Source{Name: "merge.yaml", Data: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if d, _, _ := r.Device("d1"); d.Interval != 10*time.Minute || d.Fluid != hv.Electricity || d.MaxPowerW != 9000 {
		t.Fatalf("merged d1: got %+v", d)
	}
}

// TestDemoRegistry keeps the shipped demo valid and round-trips it: what the registry exposes, written back
// as YAML, loads to the same registry.
func TestDemoRegistry(t *testing.T) {
	tr := territory(t)
	r, err := Load(tr, "../configs/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := LoadBytes(tr, "embedded", configs.DemoRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Devices(), embedded.Devices()) {
		t.Error("embedded demo registry differs from configs/registry.yaml")
	}
	communes := map[string]bool{}
	for _, s := range r.Sites() {
		communes[s.Commune] = true
		if s.EPCI == "" || s.Lat == 0 {
			t.Errorf("site %s: EPCI or position not filled: %+v", s.ID, s)
		}
	}
	for _, c := range []string{"02408", "02691", "02722", "02168"} {
		if !communes[c] {
			t.Errorf("demo registry has no site in %s", c)
		}
	}
	// One device per payload convention the demo publisher uses.
	for _, id := range []string{"elec-mairie-laon", "lp-ecole-saint-quentin-elec", "0018b24441524632", "chaufferie-gymnase-soissons"} {
		if _, _, ok := r.Device(id); !ok {
			t.Errorf("demo device %s missing", id)
		}
	}
	if km := r.KeyMap("chaufferie-gymnase-soissons"); km["t_return"].Metric != hv.TemperatureC || km["heat_energy"].Metric != hv.HeatKWh {
		t.Errorf("chaufferie keys: got %v", km)
	}
	if d, _, _ := r.Device("meteo-laon"); d.Fluid != hv.Weather {
		t.Errorf("meteo-laon fluid: got %q", d.Fluid)
	}
	if s, _ := r.Site("ecole-saint-quentin-theillier"); s.EPCI != "200071892" {
		t.Errorf("école Saint-Quentin EPCI: got %q", s.EPCI)
	}

	out, err := yaml.Marshal(map[string]any{"sites": r.Sites(), "devices": r.Devices(), "profiles": r.Profiles()})
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadSources(tr, Source{Name: "roundtrip.yaml", Data: out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Sites(), r.Sites()) || !reflect.DeepEqual(again.Devices(), r.Devices()) ||
		!reflect.DeepEqual(again.Profiles(), r.Profiles()) {
		t.Errorf("round trip differs:\n%s", out)
	}
}

func TestDeviceNoAlloc(t *testing.T) {
	r, err := Load(territory(t), "../configs/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Clone("elec-mairie-laon")
	if n := testing.AllocsPerRun(100, func() { _, _, _ = r.Device(id); _, _, _ = r.Lookup(id); _ = r.KeyMap(id) }); n != 0 {
		t.Errorf("Device allocates %v times per call", n)
	}
}

func BenchmarkDevice(b *testing.B) {
	r, err := Load(territory(b), "../configs/registry.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := r.Device("0018b24441524632"); !ok {
			b.Fatal("not found")
		}
	}
}
