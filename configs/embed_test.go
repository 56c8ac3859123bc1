package configs

import (
	"encoding/json"
	"testing"
)

// TestEmbedded checks the embedded reference data is what the map and the registry expect: every outline
// belongs to a commune of the territory (or to a former commune with a known successor), and every commune
// has an outline.
func TestEmbedded(t *testing.T) {
	var territory struct {
		Communes []struct {
			Code string `json:"code"`
		} `json:"communes"`
	}
	if err := json.Unmarshal(Territory, &territory); err != nil {
		t.Fatalf("territory: %v", err)
	}
	var geo struct {
		Type     string `json:"type"`
		Features []struct {
			Geometry struct {
				Type string `json:"type"`
			} `json:"geometry"`
			Properties struct {
				Code string `json:"code"`
				Nom  string `json:"nom"`
			} `json:"properties"`
		} `json:"features"`
	}
	if err := json.Unmarshal(CommunesGeoJSON, &geo); err != nil {
		t.Fatalf("communes geojson: %v", err)
	}
	if geo.Type != "FeatureCollection" {
		t.Errorf("geojson type %q", geo.Type)
	}
	codes := map[string]bool{}
	for _, c := range territory.Communes {
		codes[c.Code] = true
	}
	if len(codes) != 797 {
		t.Errorf("territory: %d communes, want 797", len(codes))
	}
	outlined := map[string]bool{}
	for _, f := range geo.Features {
		if succ, former := FormerCommunes[f.Properties.Code]; former {
			if !codes[succ] {
				t.Errorf("former commune %s: successor %s is not a commune of the territory", f.Properties.Code, succ)
			}
		} else if !codes[f.Properties.Code] {
			t.Errorf("outline %s (%s) is neither a commune of the territory nor in FormerCommunes", f.Properties.Code, f.Properties.Nom)
		}
		if g := f.Geometry.Type; g != "Polygon" && g != "MultiPolygon" {
			t.Errorf("outline %s: geometry %s", f.Properties.Code, g)
		}
		outlined[f.Properties.Code] = true
	}
	for c := range codes {
		if !outlined[c] {
			t.Errorf("commune %s has no outline", c)
		}
	}
	if len(DemoRegistry) == 0 {
		t.Error("demo registry not embedded")
	}
}
