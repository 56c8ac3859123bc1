package reporting

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	hv "github.com/useda02/hyperviseur"
)

// usageCategory maps a site's usage to the OPERAT activity category it most likely declares. Indicative: the
// building's manager checks it against the categories of the arrêté du 10 avril 2020 (the file leaves the
// cell empty for a usage it does not know).
var usageCategory = map[string]string{
	"mairie":          "Bureaux - administration",
	"école":           "Enseignement primaire",
	"collège":         "Enseignement secondaire",
	"gymnase":         "Sport - salle multisports",
	"salle des fêtes": "Salle polyvalente",
	"médiathèque":     "Bibliothèque - médiathèque",
	"piscine":         "Sport - piscine",
}

// OperatCategory is the indicative OPERAT activity category of a usage; "" when unknown.
func OperatCategory(usage string) string { return usageCategory[usage] }

// OperatExport builds the OPERAT rows of year for the buildings subject to the décret tertiaire
// (Site.Tertiaire) in the EPCIs given (none: the whole département): each energy's consumption of the
// calendar year from the rollups (electricity and heat in kWh, gas in m³ with the configured kWh PCS per m³),
// the surface, the reference year and the indicative activity category. The reference consumption is declared
// on OPERAT once, not metered here: refs gives it per site and energy when known (nil: empty cells). The
// degree-day columns are left empty: the year's DJU are in the consumption API (climate=true).
func (a *Analytics) OperatExport(ctx context.Context, year int, epcis []string, refs map[string]map[hv.Fluid]float64) ([]OperatRow, error) {
	ix := a.index()
	byFluid := map[hv.Fluid]map[string]float64{}
	for _, f := range []hv.Fluid{hv.Electricity, hv.Gas, hv.Heat} {
		resp, err := a.Rank(ctx, RankRequest{Fluid: f, Year: year})
		if err != nil {
			return nil, fmt.Errorf("operat export: %w", err)
		}
		byFluid[f] = map[string]float64{}
		for _, r := range resp.Rows {
			byFluid[f][r.Site] = r.Total
		}
	}
	var rows []OperatRow
	sites := slices.Clone(ix.sites)
	slices.SortFunc(sites, func(a, b hv.Site) int { return cmp.Compare(a.ID, b.ID) })
	for _, site := range sites {
		id := site.ID
		if !site.Tertiaire || (len(epcis) > 0 && !slices.Contains(epcis, site.EPCI)) {
			continue
		}
		for _, f := range []hv.Fluid{hv.Electricity, hv.Gas, hv.Heat} {
			total, ok := byFluid[f][id]
			ref := refs[id][f]
			if !ok && ref == 0 {
				continue // the building has no meter of this energy
			}
			row := OperatRow{Site: site, Category: OperatCategory(site.Usage), Fluid: f, KWh: total, ReferenceKWh: ref,
				HeatingShare: DefaultHeatingShare(f, false)}
			if f == hv.Gas {
				row.KWh, row.GasM3, row.GasKWhPerM3 = 0, total/a.cfg.GasPCS, a.cfg.GasPCS
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}
