package reporting

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// OpenDataLicence is the licence the open-data export is published under.
const OpenDataLicence = "Licence Ouverte v2.0 (Etalab)"

// Sectors of the open-data export: public buildings, and street lighting.
const (
	SectorBuildings = "bâtiments publics"
	SectorLighting  = "éclairage public"
)

// OpenDataRow is one commune's consumption of one fluid in one month, for one sector.
type OpenDataRow struct {
	Commune     string   `json:"code_insee"`
	CommuneName string   `json:"commune"`
	EPCI        string   `json:"epci"`
	Year        int      `json:"annee"`
	Month       int      `json:"mois"`
	Sector      string   `json:"secteur"`
	Fluid       hv.Fluid `json:"fluide"`
	Value       float64  `json:"consommation"`
	Unit        string   `json:"unite"`
	KWh         *float64 `json:"kwh,omitempty"`
}

// OpenData aggregates a year by commune, month, sector and fluid: the consumption of the public buildings
// and of the street lighting of each commune, nothing finer. It names no site and no device: the open-data
// file says what a commune's public assets use, which is public information; a commune with a single public
// building shows that building's consumption, as its accounts would.
func (a *Analytics) OpenData(ctx context.Context, year int) ([]OpenDataRow, error) {
	ix := a.index()
	communes := map[string]bool{}
	for _, s := range ix.sites {
		if s.Kind == hv.SiteBuilding || s.Kind == hv.SiteLightingCabinet {
			communes[s.Commune] = true
		}
	}
	from := time.Date(year, 1, 1, 0, 0, 0, 0, a.loc)
	to := time.Date(year, 12, 31, 0, 0, 0, 0, a.loc)
	terr := ix.reg.Territory()
	var out []OpenDataRow
	for _, code := range sortedKeys(communes) {
		c, _ := terr.Commune(code)
		for _, sector := range []struct {
			name string
			kind hv.SiteKind
		}{{SectorBuildings, hv.SiteBuilding}, {SectorLighting, hv.SiteLightingCabinet}} {
			resp, err := a.Consumption(ctx, Request{Scope: "commune:" + code, Kind: sector.kind, From: from, To: to, Every: EveryMonth})
			if err != nil {
				return nil, fmt.Errorf("open data %s: %w", code, err)
			}
			for _, r := range resp.Rows {
				out = append(out, OpenDataRow{Commune: code, CommuneName: c.Name, EPCI: c.EPCI, Year: year, Month: int(r.Start.Month()),
					Sector: sector.name, Fluid: r.Fluid, Value: r.Value, Unit: r.Unit, KWh: r.KWh})
			}
		}
	}
	return out, nil
}

// WriteOpenData writes the rows as CSV (comma, decimal point, UTF-8: the data.gouv.fr convention), with the
// licence and the source on every row so an extract keeps them. Columns: code_insee, commune, epci, annee,
// mois, secteur, fluide, consommation, unite, kwh (empty for water), licence, source.
func WriteOpenData(w io.Writer, rows []OpenDataRow, source string) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"code_insee", "commune", "epci", "annee", "mois", "secteur", "fluide", "consommation", "unite", "kwh", "licence", "source"})
	for _, r := range rows {
		kwh := ""
		if r.KWh != nil {
			kwh = strconv.FormatFloat(*r.KWh, 'f', 3, 64)
		}
		if err := cw.Write([]string{r.Commune, r.CommuneName, r.EPCI, strconv.Itoa(r.Year), strconv.Itoa(r.Month), r.Sector, string(r.Fluid),
			strconv.FormatFloat(r.Value, 'f', 3, 64), r.Unit, kwh, OpenDataLicence, source}); err != nil {
			return fmt.Errorf("write open data: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write open data: %w", err)
	}
	return nil
}
