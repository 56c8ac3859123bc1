package load

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"github.com/useda02/hyperviseur/registry"
)

// DevicesPerSite groups the synthetic meters: one building per ten meters.
const DevicesPerSite = 10

// WriteRegistry writes the registry YAML of devices synthetic meters (registry.files of the service): one
// building per ten meters, the buildings spread over the communes of the territory in INSEE order (so over
// every EPCI), each meter with the maximum power its index is consistent with. It writes by hand rather than
// through a YAML encoder: 100 000 devices take a fraction of a second.
func WriteRegistry(w io.Writer, t *registry.Territory, devices int) error {
	if devices <= 0 || devices > MaxDevices {
		return fmt.Errorf("bench registry: devices: want 1 to %d, got %d", MaxDevices, devices)
	}
	communes := t.Communes()
	if len(communes) == 0 {
		return fmt.Errorf("bench registry: the territory has no commune")
	}
	sites := (devices + DevicesPerSite - 1) / DevicesPerSite
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "# Registry of %d synthetic meters for `hyperviseur bench` (simulators/load): %d buildings over the\n", devices, sites)
	fmt.Fprintf(bw, "# communes of %s, one per %d meters. Ids %s to %s; each meter publishes flat JSON\n",
		t.Departement().Name, DevicesPerSite, DeviceID(0), DeviceID(devices-1))
	bw.WriteString("# {\"ts\",\"energy_kwh\",\"power_w\"} on hv/<id>/up. Generated: do not edit, regenerate with\n")
	fmt.Fprintf(bw, "# `hyperviseur bench registry --devices %d`.\n\nsites:\n", devices)
	for s := range sites {
		c := communes[s%len(communes)]
		fmt.Fprintf(bw, "  - id: %s\n    name: %s\n    kind: building\n    usage: banc d'essai\n    commune: %q\n",
			siteID(s), strconv.Quote(fmt.Sprintf("Bâtiment d'essai %d, %s", s+1, c.Name)), c.Code)
	}
	bw.WriteString("\ndevices:\n")
	for i := range devices {
		fmt.Fprintf(bw, "  - id: %s\n    site: %s\n    kind: meter\n    fluid: electricity\n    interval: 10m\n    max_power_w: %s\n",
			DeviceID(i), siteID(i/DevicesPerSite), strconv.FormatFloat(MaxPowerW(i), 'f', -1, 64))
	}
	return bw.Flush()
}

func siteID(s int) string { return fmt.Sprintf("%ssite-%05d", DevicePrefix, s+1) }
