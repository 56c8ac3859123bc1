package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/yamlnode"
)

// maxErrors bounds the problems reported for one load: enough to fix a file in one pass, not a wall of text
// when the wrong file was given.
const maxErrors = 20

// maxIDLen bounds ids; they travel in MQTT topics, URLs and store labels.
const maxIDLen = 128

// Registry is the asset registry: sites, devices and LoRaWAN device profiles, validated against the territory.
// It is immutable: lookups need no lock, and an edit builds a new Registry that the holder swaps in.
type Registry struct {
	territory *Territory
	sites     []*hv.Site // sorted by id
	site      map[string]*hv.Site
	devices   []*hv.Device // sorted by id
	device    map[string]entry
	profiles  map[string]map[string]hv.KeyMap
}

// entry is what the ingest hot path needs for one device, resolved once at load.
type entry struct {
	device *hv.Device
	site   *hv.Site
	keys   map[string]hv.KeyMap // the profile's keys overlaid with the device's own
}

// Source is one registry document and the name errors refer to it by (usually its path).
type Source struct {
	Name string
	Data []byte
}

// ConfigError is one problem in a registry document: the file, the entry (e.g. `devices[3] (id "x")`) and
// what is wrong with it. It matches hv.ErrInvalid.
type ConfigError struct {
	File  string
	Entry string
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Entry == "" {
		return e.File + ": " + e.Msg
	}
	return e.File + ": " + e.Entry + ": " + e.Msg
}

// Is makes errors.Is(err, hv.ErrInvalid) true, so the API can answer 400 to a bad edit.
func (e *ConfigError) Is(target error) bool { return target == hv.ErrInvalid }

// Load reads registry YAML files and validates them together: a device may sit on a site of another file.
func Load(territory *Territory, files ...string) (*Registry, error) {
	srcs := make([]Source, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("load registry: %w", err)
		}
		srcs = append(srcs, Source{Name: f, Data: data})
	}
	return LoadSources(territory, srcs...)
}

// LoadBytes is Load on one document in memory (the embedded demo registry); name is what errors call it.
func LoadBytes(territory *Territory, name string, data []byte) (*Registry, error) {
	return LoadSources(territory, Source{Name: name, Data: data})
}

// LoadSources is Load on documents already in memory (the embedded demo registry, an API edit). The error
// joins every problem found, up to 20, each a *ConfigError naming the file, the entry and the key.
func LoadSources(territory *Territory, srcs ...Source) (*Registry, error) {
	if territory == nil {
		return nil, errors.New("load registry: no territory")
	}
	c := &collector{}
	var (
		sites    []at[hv.Site]
		devices  []at[hv.Device]
		profiles = map[string]map[string]hv.KeyMap{}
		profAt   = map[string]string{}
	)
	for _, src := range srcs {
		doc := parse(src, c)
		sites = append(sites, doc.sites...)
		devices = append(devices, doc.devices...)
		for _, p := range doc.profiles {
			if first, dup := profAt[p.name]; dup {
				c.add(src.Name, "profiles."+p.name, "profile defined twice, first in %s", first)
				continue
			}
			profAt[p.name] = src.Name
			profiles[p.name] = p.keys
			checkKeyMaps(c, src.Name, "profiles."+p.name, p.keys)
		}
	}
	r := &Registry{
		territory: territory,
		site:      make(map[string]*hv.Site, len(sites)),
		device:    make(map[string]entry, len(devices)),
		profiles:  profiles,
	}
	siteAt := map[string]string{}
	badSite := map[string]bool{} // defined but invalid: its devices are not reported again
	for _, s := range sites {
		site := s.v
		if checkSite(c, territory, s.file, s.entry, &site) {
			badSite[site.ID] = true
			continue
		}
		if first, dup := siteAt[site.ID]; dup {
			c.add(s.file, s.entry, "duplicate site id, first defined at %s", first)
			continue
		}
		siteAt[site.ID] = s.file + ": " + s.entry
		r.site[site.ID] = &site
		r.sites = append(r.sites, &site)
	}
	devAt := map[string]string{}
	for _, d := range devices {
		dev := d.v
		if checkDevice(c, r, badSite, d.file, d.entry, &dev) || badSite[dev.Site] {
			continue
		}
		if first, dup := devAt[dev.ID]; dup {
			c.add(d.file, d.entry, "duplicate device id, first defined at %s", first)
			continue
		}
		devAt[dev.ID] = d.file + ": " + d.entry
		r.device[dev.ID] = entry{device: &dev, site: r.site[dev.Site], keys: resolveKeys(profiles[dev.Profile], dev.Keys)}
		r.devices = append(r.devices, &dev)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	slices.SortFunc(r.sites, func(a, b *hv.Site) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(r.devices, func(a, b *hv.Device) int { return strings.Compare(a.ID, b.ID) })
	return r, nil
}

// Territory returns the territory the registry was validated against.
func (r *Registry) Territory() *Territory { return r.territory }

// Device returns a registered device and its site. It is on the ingest hot path: one map lookup, no allocation.
// The maps inside the returned Device are shared: do not modify them.
func (r *Registry) Device(id string) (hv.Device, hv.Site, bool) {
	e, ok := r.device[id]
	if !ok {
		return hv.Device{}, hv.Site{}, false
	}
	return *e.device, *e.site, true
}

// Lookup is Device without the copies, for the ingest hot path: the pointed-to values are shared and
// immutable, never modify them. Its signature is ingest.Lookup.
func (r *Registry) Lookup(id string) (*hv.Device, *hv.Site, bool) {
	e, ok := r.device[id]
	return e.device, e.site, ok
}

// KeyMap returns the payload-key table of a device: its profile's keys overlaid with its own, resolved at load
// so decoders do one lookup. Nil when the device has neither; do not modify.
func (r *Registry) KeyMap(device string) map[string]hv.KeyMap { return r.device[device].keys }

// Devices lists the registered devices sorted by id.
func (r *Registry) Devices() []hv.Device {
	out := make([]hv.Device, len(r.devices))
	for i, d := range r.devices {
		out[i] = *d
	}
	return out
}

// Site returns a site by id.
func (r *Registry) Site(id string) (hv.Site, bool) {
	s, ok := r.site[id]
	if !ok {
		return hv.Site{}, false
	}
	return *s, true
}

// Sites lists the sites sorted by id.
func (r *Registry) Sites() []hv.Site {
	out := make([]hv.Site, len(r.sites))
	for i, s := range r.sites {
		out[i] = *s
	}
	return out
}

// Profiles returns the LoRaWAN device profiles: profile name → payload key → canonical metric. The inner maps
// are shared: do not modify.
func (r *Registry) Profiles() map[string]map[string]hv.KeyMap {
	out := make(map[string]map[string]hv.KeyMap, len(r.profiles))
	for k, v := range r.profiles {
		out[k] = v
	}
	return out
}

func resolveKeys(profile, own map[string]hv.KeyMap) map[string]hv.KeyMap {
	switch {
	case len(own) == 0:
		return profile
	case len(profile) == 0:
		return own
	}
	out := make(map[string]hv.KeyMap, len(profile)+len(own))
	for k, v := range profile {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// checkSite validates a site and fills EPCI and the default position; it reports whether the site is unusable.
func checkSite(c *collector, t *Territory, file, where string, s *hv.Site) (bad bool) {
	n := c.n
	if msg := checkID(s.ID); msg != "" {
		c.add(file, where, "%s", msg)
		return true
	}
	if s.Name == "" {
		c.add(file, where, "name is required")
	}
	switch s.Kind {
	case hv.SiteBuilding, hv.SiteLightingCabinet, hv.SiteWeatherStation:
	case "":
		c.add(file, where, "kind is required (building, lighting_cabinet, weather_station)")
	default:
		c.add(file, where, "kind %q is not one of building, lighting_cabinet, weather_station", s.Kind)
	}
	if s.Commune == "" {
		c.add(file, where, "commune is required (INSEE code)")
	} else if com, ok := t.Commune(s.Commune); !ok {
		c.add(file, where, "commune %q is not an INSEE code of the territory (département %s)", s.Commune, t.Departement().Code)
	} else {
		s.EPCI = com.EPCI
		// A site without coordinates sits at its commune's centroid: good enough for the map and the
		// astronomical clock, whose error is minutes over a commune.
		if s.Lat == 0 && s.Lon == 0 {
			s.Lat, s.Lon = com.Lat, com.Lon
		}
	}
	switch {
	case (s.Lat == 0) != (s.Lon == 0):
		c.add(file, where, "lat and lon go together: give both or neither")
	case s.Lat < -90 || s.Lat > 90:
		c.add(file, where, "lat %v is out of range [-90, 90]", s.Lat)
	case s.Lon < -180 || s.Lon > 180:
		c.add(file, where, "lon %v is out of range [-180, 180]", s.Lon)
	}
	if s.SurfaceM2 < 0 {
		c.add(file, where, "surface_m2 must not be negative")
	}
	if s.SubscribedKVA < 0 {
		c.add(file, where, "subscribed_kva must not be negative")
	}
	// The décret tertiaire measures kWh/m² against a reference year no earlier than 2010.
	if s.ReferenceYear != 0 && (s.ReferenceYear < 2010 || s.ReferenceYear > 2100) {
		c.add(file, where, "reference_year %d is out of range: the décret tertiaire allows 2010 or later", s.ReferenceYear)
	}
	if s.Tertiaire && s.SurfaceM2 == 0 {
		c.add(file, where, "tertiaire: true needs surface_m2 (the décret tertiaire tracks kWh/m²)")
	}
	return c.n > n
}

// checkDevice validates a device against the sites and profiles; it reports whether the device is unusable.
func checkDevice(c *collector, r *Registry, badSite map[string]bool, file, where string, d *hv.Device) (bad bool) {
	n := c.n
	if msg := checkID(d.ID); msg != "" {
		c.add(file, where, "%s", msg)
		return true
	}
	if looksLikeUpperEUI(d.ID) {
		c.add(file, where, "id %q looks like a DevEUI: write it in lower case, ChirpStack uplinks are matched lower-cased", d.ID)
	}
	if d.Site == "" {
		c.add(file, where, "site is required")
	} else if _, ok := r.site[d.Site]; !ok && !badSite[d.Site] { // an invalid site is reported once, not per device
		c.add(file, where, "site %q is not a known site", d.Site)
	}
	switch d.Kind {
	case hv.DeviceMeter, hv.DeviceLightingController, hv.DeviceWeather:
	case "":
		c.add(file, where, "kind is required (meter, lighting_controller, weather)")
	default:
		c.add(file, where, "kind %q is not one of meter, lighting_controller, weather", d.Kind)
	}
	if d.Kind == hv.DeviceWeather && d.Fluid == "" {
		d.Fluid = hv.Weather // so fluid=weather selects every station without repeating it in each entry
	}
	switch {
	case d.Fluid != "" && !d.Fluid.Valid():
		c.add(file, where, "fluid %q is not one of electricity, gas, water, heat, weather", d.Fluid)
	case d.Fluid == "" && d.Kind == hv.DeviceMeter:
		c.add(file, where, "fluid is required for a meter (electricity, gas, water, heat)")
	case d.Fluid == hv.Weather && d.Kind != hv.DeviceWeather && d.Kind != "":
		c.add(file, where, "fluid weather is for kind weather, not %s", d.Kind)
	case d.Kind == hv.DeviceWeather && d.Fluid != hv.Weather:
		c.add(file, where, "kind weather measures fluid weather, not %s", d.Fluid)
	}
	for _, m := range slices.Sorted(maps.Keys(d.Units)) {
		switch {
		case !m.Canonical():
			c.add(file, where, "units: metric %q is not a canonical metric", m)
		case d.Units[m] == "":
			c.add(file, where, "units.%s: unit is empty", m)
		}
	}
	checkKeyMaps(c, file, where+": keys", d.Keys)
	if d.Profile != "" {
		if _, ok := r.profiles[d.Profile]; !ok {
			c.add(file, where, "profile %q is not a known profile", d.Profile)
		}
	}
	if dl := d.Downlink; dl != nil {
		switch {
		case dl.Network != hv.NetworkChirpStack && dl.Network != hv.NetworkTTS:
			c.add(file, where, "downlink.network %q is not one of chirpstack, tts", dl.Network)
		case dl.Application == "" || strings.ContainsAny(dl.Application, "/+#"):
			c.add(file, where, "downlink.application must be a non-empty MQTT topic level (no /, + or #)")
		case dl.FPort < 0 || dl.FPort > 223:
			c.add(file, where, "downlink.fport must be 1 to 223 (0: the default)")
		}
	}
	if d.Interval < 0 {
		c.add(file, where, "interval must not be negative")
	}
	if d.MaxPowerW < 0 {
		c.add(file, where, "max_power_w must not be negative")
	}
	if d.RegisterMax < 0 {
		c.add(file, where, "register_max must not be negative")
	}
	return c.n > n
}

func checkKeyMaps(c *collector, file, where string, keys map[string]hv.KeyMap) {
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		km := keys[k]
		switch {
		case k == "":
			c.add(file, where, "empty payload key")
		case km.Metric == "":
			c.add(file, where+"."+k, "metric is required")
		case !km.Metric.Canonical():
			c.add(file, where+"."+k, "metric %q is not a canonical metric", km.Metric)
		}
	}
}

// checkID returns what is wrong with an id, "" if nothing. Ids appear in MQTT topics (where / + # are
// special), URLs and store labels, so they keep to a conservative alphabet.
func checkID(id string) string {
	switch {
	case id == "":
		return "id is required"
	case len(id) > maxIDLen:
		return fmt.Sprintf("id is longer than %d bytes", maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || i > 0 && (b == '-' || b == '_' || b == '.' || b == ':')) {
			return fmt.Sprintf("id %q: use letters, digits and - _ . : only, starting with a letter or digit (ids appear in MQTT topics and URLs)", id)
		}
	}
	return ""
}

func looksLikeUpperEUI(id string) bool {
	if len(id) != 16 || strings.ToLower(id) == id {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(id[i])) {
			return false
		}
	}
	return true
}

// collector gathers problems up to maxErrors.
type collector struct {
	errs []error
	n    int
}

func (c *collector) add(file, entry, format string, args ...any) {
	c.n++
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, &ConfigError{File: file, Entry: entry, Msg: fmt.Sprintf(format, args...)})
	}
}

func (c *collector) err() error {
	if c.n == 0 {
		return nil
	}
	if c.n > len(c.errs) {
		return errors.Join(append(c.errs, fmt.Errorf("… and %d more problems", c.n-len(c.errs)))...)
	}
	return errors.Join(c.errs...)
}

// at is a decoded entry with where it came from, for error messages.
type at[T any] struct {
	v     T
	file  string
	entry string
}

type profileAt struct {
	name string
	keys map[string]hv.KeyMap
}

type document struct {
	sites    []at[hv.Site]
	devices  []at[hv.Device]
	profiles []profileAt
}

var (
	siteType   = reflect.TypeFor[hv.Site]()
	deviceType = reflect.TypeFor[hv.Device]()
	keyMapType = reflect.TypeFor[map[string]hv.KeyMap]()
)

// parse decodes one document strictly. It walks the YAML tree itself rather than relying on the decoder's
// KnownFields, so an unknown key is reported with the entry it sits in, not only a line number.
func parse(src Source, c *collector) document {
	var doc document
	dec := yaml.NewDecoder(bytes.NewReader(src.Data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if !errors.Is(err, io.EOF) {
			c.add(src.Name, "", "%s", yamlnode.ErrorText(err))
		}
		return doc
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		c.add(src.Name, "", "more than one YAML document: keep one per file")
		return doc
	}
	top := &root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if yamlnode.IsNull(top) {
		return doc
	}
	if top.Kind != yaml.MappingNode {
		c.add(src.Name, "", "line %d: the document must be a mapping with sites, devices and profiles", top.Line)
		return doc
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		if seen[key] {
			c.add(src.Name, "", "line %d: %s defined twice", top.Content[i].Line, key)
			continue
		}
		seen[key] = true
		switch key {
		case "sites":
			doc.sites = decodeList[hv.Site](c, src.Name, key, val, siteType)
		case "devices":
			doc.devices = decodeList[hv.Device](c, src.Name, key, val, deviceType)
		case "profiles":
			doc.profiles = decodeProfiles(c, src.Name, val)
		default:
			c.add(src.Name, "", "line %d: unknown key %q (want sites, devices, profiles)", top.Content[i].Line, key)
		}
	}
	return doc
}

func decodeList[T any](c *collector, file, name string, list *yaml.Node, t reflect.Type) []at[T] {
	if yamlnode.IsNull(list) {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		c.add(file, name, "line %d: must be a list", list.Line)
		return nil
	}
	out := make([]at[T], 0, len(list.Content))
	for i, item := range list.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		where := fmt.Sprintf("%s[%d]", name, i)
		if id := field(item, "id"); id != "" {
			where += fmt.Sprintf(" (id %q)", id)
		}
		if item.Kind != yaml.MappingNode {
			c.add(file, where, "line %d: must be a mapping", item.Line)
			continue
		}
		n := c.n
		checkKeys(c, file, where, "", item, t)
		if c.n > n {
			continue
		}
		var v T
		if err := item.Decode(&v); err != nil {
			c.add(file, where, "%s", yamlnode.ErrorText(err))
			continue
		}
		out = append(out, at[T]{v: v, file: file, entry: where})
	}
	return out
}

func decodeProfiles(c *collector, file string, n *yaml.Node) []profileAt {
	if yamlnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		c.add(file, "profiles", "line %d: must be a mapping of profile name to key map", n.Line)
		return nil
	}
	var out []profileAt
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, val := n.Content[i].Value, n.Content[i+1]
		where := "profiles." + name
		before := c.n
		checkKeys(c, file, where, "", val, keyMapType)
		if c.n > before {
			continue
		}
		var keys map[string]hv.KeyMap
		if err := val.Decode(&keys); err != nil {
			c.add(file, where, "%s", yamlnode.ErrorText(err))
			continue
		}
		out = append(out, profileAt{name: name, keys: keys})
	}
	return out
}

// checkKeys reports mapping keys that match no yaml tag of the Go type the node decodes into, descending into
// nested structs and maps of structs (a device's keys, a profile's key map).
func checkKeys(c *collector, file, where, path string, n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return // a type mismatch is the decoder's to report
	}
	switch t.Kind() {
	case reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(c, file, where, join(path, n.Content[i].Value), n.Content[i+1], t.Elem())
		}
	case reflect.Struct:
		fields := yamlnode.Fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" {
				// `<<: *common` (or a list of them) shares settings between entries: check what is merged.
				v := n.Content[i+1]
				if v.Kind == yaml.SequenceNode {
					for _, m := range v.Content {
						checkKeys(c, file, where, path, m, t)
					}
				} else {
					checkKeys(c, file, where, path, v, t)
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				c.add(file, where, "line %d: unknown key %q", k.Line, join(path, k.Value))
				continue
			}
			checkKeys(c, file, where, join(path, k.Value), n.Content[i+1], ft)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field returns the scalar value of key in a mapping node, "" if absent.
func field(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}
