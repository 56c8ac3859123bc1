// Package configs holds the reference data and example configuration shipped with the service. The territory
// files are compiled into the binary so the service runs on these defaults with nothing on disk.
package configs

import _ "embed"

// Territory is aisne-territory.json: the département, its 20 EPCI and 797 communes (parse it with
// registry.LoadTerritory).
//
//go:embed aisne-territory.json
var Territory []byte

// CommunesGeoJSON is aisne-communes.geojson: the simplified commune outlines the offline map draws.
//
//go:embed aisne-communes.geojson
var CommunesGeoJSON []byte

// DemoRegistry is registry.yaml: a small demo fleet over real communes, used when no registry file is
// configured so a fresh install shows something.
//
//go:embed registry.yaml
var DemoRegistry []byte

// FormerCommunes maps the INSEE codes of outlines in CommunesGeoJSON (COG 2018) that are no longer communes to
// the commune nouvelle that absorbed them since: the map draws them as part of their successor. Every other
// outline code is a commune of Territory, and every commune has an outline.
var FormerCommunes = map[string]string{
	"02077": "02564", // Berzy-le-Sec → Bernoy-le-Château
	"02301": "02018", // Faucoucourt → Anizy-le-Grand
	"02434": "02018", // Lizy → Anizy-le-Grand
	"02311": "02589", // Filain → Pargny-et-Filain
	"02475": "02360", // Menneville → Villeneuve-sur-Aisne
	"02695": "02054", // Saint-Thibaut → Bazoches-et-Saint-Thibaut
	"02733": "02153", // Suzy → Cessières-Suzy
}
