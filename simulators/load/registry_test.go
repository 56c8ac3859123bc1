package load

import (
	"bytes"
	"testing"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

func TestWriteRegistryLoads(t *testing.T) {
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 9, 10, 11, 2000} {
		var b bytes.Buffer
		if err := WriteRegistry(&b, territory, n); err != nil {
			t.Fatalf("%d devices: %v", n, err)
		}
		reg, err := registry.LoadBytes(territory, "bench.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("%d devices: the strict loader refuses the bench registry: %v", n, err)
		}
		devices := reg.Devices()
		if len(devices) != n {
			t.Fatalf("%d devices asked, %d loaded", n, len(devices))
		}
		if want := (n + DevicesPerSite - 1) / DevicesPerSite; len(reg.Sites()) != want {
			t.Errorf("%d devices: %d sites, want %d", n, len(reg.Sites()), want)
		}
		for i := range n {
			dev, site, ok := reg.Lookup(DeviceID(i))
			switch {
			case !ok:
				t.Fatalf("device %s (the generator's id %d) is not registered", DeviceID(i), i)
			case dev.Kind != hv.DeviceMeter || dev.Fluid != hv.Electricity:
				t.Errorf("%s: kind %s fluid %s, want an electricity meter", dev.ID, dev.Kind, dev.Fluid)
			case dev.MaxPowerW != MaxPowerW(i):
				t.Errorf("%s: max_power_w %g, want %g (what its index is built from)", dev.ID, dev.MaxPowerW, MaxPowerW(i))
			case site.EPCI == "":
				t.Errorf("%s: site %s has no EPCI", dev.ID, site.ID)
			}
		}
	}
}

func TestWriteRegistrySpreadsOverTheTerritory(t *testing.T) {
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	n := DevicesPerSite * len(territory.Communes())
	if err := WriteRegistry(&b, territory, n); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.LoadBytes(territory, "bench.yaml", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	communes, epcis := map[string]bool{}, map[string]bool{}
	for _, s := range reg.Sites() {
		communes[s.Commune], epcis[s.EPCI] = true, true
	}
	if len(communes) != len(territory.Communes()) || len(epcis) != len(territory.EPCIs()) {
		t.Errorf("one site per commune expected: %d communes of %d, %d EPCI of %d",
			len(communes), len(territory.Communes()), len(epcis), len(territory.EPCIs()))
	}
}

func TestWriteRegistryRefusesBadCounts(t *testing.T) {
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -1, MaxDevices + 1} {
		if err := WriteRegistry(&bytes.Buffer{}, territory, n); err == nil {
			t.Errorf("%d devices: no error", n)
		}
	}
}
