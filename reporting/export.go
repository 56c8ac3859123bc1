package reporting

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

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
// the surface, the indicative activity category, the declared reference (SetReferences: year, consumption
// and degree days; empty cells for a building without one) and the year's degree days at the building's
// weather station (empty when the station does not cover the whole year).
func (a *Analytics) OperatExport(ctx context.Context, year int, epcis []string) ([]OperatRow, error) {
	ix := a.index()
	refs := a.references()
	byFluid := map[hv.Fluid]map[string]float64{}
	for _, f := range energyFluids {
		resp, err := a.Rank(ctx, RankRequest{Fluid: f, Year: year})
		if err != nil {
			return nil, fmt.Errorf("operat export: %w", err)
		}
		byFluid[f] = map[string]float64{}
		for _, r := range resp.Rows {
			byFluid[f][r.Site] = r.Total
		}
	}
	start := time.Date(year, 1, 1, 0, 0, 0, 0, a.loc)
	p := span(start, start.AddDate(1, 0, 0), true)
	cl := a.newClimate(ctx)
	var rows []OperatRow
	sites := slices.Clone(ix.sites)
	slices.SortFunc(sites, func(a, b hv.Site) int { return cmp.Compare(a.ID, b.ID) })
	for _, site := range sites {
		id := site.ID
		if !site.Tertiaire || (len(epcis) > 0 && !slices.Contains(epcis, site.EPCI)) {
			continue
		}
		ref, hasRef := refs[id]
		var dju float64
		if st := ix.station[ix.site[id]]; st != "" {
			y, err := cl.yearDJU(st, p)
			if err != nil {
				return nil, fmt.Errorf("operat export: %w", err)
			}
			if y.days == y.want {
				dju = y.sum
			}
		}
		for _, f := range energyFluids {
			total, ok := byFluid[f][id]
			refKWh, refOK := ref.KWh[f]
			if !ok && !refOK {
				continue // the building has no meter of this energy
			}
			row := OperatRow{Site: site, Category: OperatCategory(site.Usage), Fluid: f, KWh: total, ReferenceKWh: refKWh,
				HeatingShare: a.heatingShare(f), DJU: dju}
			if hasRef {
				row.ReferenceYear, row.ReferenceDJU = ref.Year, ref.DJU
			}
			if f == hv.Gas {
				row.KWh, row.GasM3, row.GasKWhPerM3 = 0, total/a.cfg.GasPCS, a.cfg.GasPCS
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// heatingShare is the configured share of f that heats (gas and heat; electricity none: its heating part is
// unknown).
func (a *Analytics) heatingShare(f hv.Fluid) float64 { return a.cfg.HeatingShare[f] }
