// Package registry holds the territory (communes and EPCI of the Aisne) and the asset registry (sites, devices,
// LoRaWAN device profiles) loaded from YAML, plus the tracker of devices heard on the broker but not registered.
// Both the territory and the registry are immutable once loaded: an edit builds a new one and the holder swaps
// it, so the ingest hot path reads them without locks.
package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
)

// Departement names the département the territory covers.
type Departement struct {
	Code string `json:"code"`
	Name string `json:"nom"`
}

// Territory is the département with its EPCI and communes, read-only once loaded.
type Territory struct {
	departement Departement
	communes    []hv.Commune // sorted by INSEE code
	epcis       []hv.EPCI    // sorted by SIREN code
	commune     map[string]int
	epci        map[string]int
}

// territoryFile is the JSON shape of configs/aisne-territory.json.
type territoryFile struct {
	Sources     map[string]string `json:"sources"`
	Departement Departement       `json:"departement"`
	EPCI        []hv.EPCI         `json:"epci"`
	Communes    []hv.Commune      `json:"communes"`
}

// DefaultTerritory parses the territory embedded in the binary (configs.Territory).
func DefaultTerritory() (*Territory, error) { return LoadTerritory(configs.Territory) }

// LoadTerritory parses a territory JSON document and checks it is consistent: unique codes, every commune in
// exactly the EPCI it names, centroids on Earth.
func LoadTerritory(data []byte) (*Territory, error) {
	var f territoryFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("load territory: %w", err)
	}
	if f.Departement.Code == "" {
		return nil, fmt.Errorf("load territory: departement.code: %w: empty", hv.ErrInvalid)
	}
	t := &Territory{
		departement: f.Departement,
		communes:    f.Communes,
		epcis:       f.EPCI,
		commune:     make(map[string]int, len(f.Communes)),
		epci:        make(map[string]int, len(f.EPCI)),
	}
	slices.SortFunc(t.communes, func(a, b hv.Commune) int { return strings.Compare(a.Code, b.Code) })
	slices.SortFunc(t.epcis, func(a, b hv.EPCI) int { return strings.Compare(a.Code, b.Code) })
	for i, e := range t.epcis {
		if e.Code == "" {
			return nil, fmt.Errorf("load territory: epci[%d]: %w: empty code", i, hv.ErrInvalid)
		}
		if _, dup := t.epci[e.Code]; dup {
			return nil, fmt.Errorf("load territory: epci %s: %w: listed twice", e.Code, hv.ErrInvalid)
		}
		t.epci[e.Code] = i
	}
	for i, c := range t.communes {
		switch {
		case c.Code == "":
			return nil, fmt.Errorf("load territory: communes[%d]: %w: empty code", i, hv.ErrInvalid)
		case c.Lat < -90 || c.Lat > 90 || c.Lon < -180 || c.Lon > 180:
			return nil, fmt.Errorf("load territory: commune %s: %w: centroid %v,%v out of range", c.Code, hv.ErrInvalid, c.Lat, c.Lon)
		}
		if _, dup := t.commune[c.Code]; dup {
			return nil, fmt.Errorf("load territory: commune %s: %w: listed twice", c.Code, hv.ErrInvalid)
		}
		if _, ok := t.epci[c.EPCI]; !ok {
			return nil, fmt.Errorf("load territory: commune %s: %w: epci %q is not in the territory", c.Code, hv.ErrInvalid, c.EPCI)
		}
		t.commune[c.Code] = i
	}
	// Membership is stated twice in the file (commune.epci and epci.communes): a mismatch would make the
	// per-EPCI scoping of pilots disagree with the map, so refuse it.
	members := 0
	for _, e := range t.epcis {
		for _, code := range e.Communes {
			i, ok := t.commune[code]
			if !ok {
				return nil, fmt.Errorf("load territory: epci %s: %w: member %q is not a commune of the territory", e.Code, hv.ErrInvalid, code)
			}
			if t.communes[i].EPCI != e.Code {
				return nil, fmt.Errorf("load territory: epci %s: %w: member %s says it belongs to %s", e.Code, hv.ErrInvalid, code, t.communes[i].EPCI)
			}
			members++
		}
	}
	if members != len(t.communes) {
		return nil, fmt.Errorf("load territory: %w: %d communes but %d EPCI memberships", hv.ErrInvalid, len(t.communes), members)
	}
	return t, nil
}

// Departement returns the département's code and name.
func (t *Territory) Departement() Departement { return t.departement }

// Commune returns the commune with an INSEE code.
func (t *Territory) Commune(code string) (hv.Commune, bool) {
	i, ok := t.commune[code]
	if !ok {
		return hv.Commune{}, false
	}
	return t.communes[i], true
}

// EPCI returns the EPCI with a SIREN code.
func (t *Territory) EPCI(code string) (hv.EPCI, bool) {
	i, ok := t.epci[code]
	if !ok {
		return hv.EPCI{}, false
	}
	return t.epcis[i], true
}

// Communes lists the communes sorted by INSEE code. The slices inside each value are shared: do not modify.
func (t *Territory) Communes() []hv.Commune { return slices.Clone(t.communes) }

// EPCIs lists the EPCI sorted by SIREN code. The slices inside each value are shared: do not modify.
func (t *Territory) EPCIs() []hv.EPCI { return slices.Clone(t.epcis) }
