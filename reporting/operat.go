package reporting

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	hv "github.com/useda02/hyperviseur"
)

// The OPERAT file: the figures a building's yearly declaration on ADEME's OPERAT platform asks for (décret
// tertiaire; arrêté du 10 avril 2020, arts. 12 to 14 on the platform), one row per building and energy, for
// the person who enters or checks them. It is a preparation file, not OPERAT's own bulk-import template,
// whose layout ADEME changes; OPERAT.md maps the columns to the declaration's fields.
//
// Format, chosen for the spreadsheets of French municipalities:
//   - separator ";": French-locale Excel and LibreOffice use the comma as decimal separator and open a
//     ";"-separated file in columns on a double click, a ","-separated one in a single column;
//   - UTF-8 with a byte-order mark: without it Excel reads the file as Windows-1252 and garbles accented
//     names (readers in code must drop the BOM: Go's encoding/csv keeps it in the first header);
//   - decimal point, as in every export of the hypervisor; kWh are rounded to whole kWh (a year's total
//     needs no more, and most cells then carry no separator at all);
//   - "\n" line ends, one header line, rows sorted by site then energy (électricité, gaz naturel, réseau
//     de chaleur); an empty cell is an unknown value, never a zero.
//
// Columns (header in operatHeader):
//
//	identifiant_site                 the site's registry id
//	nom                              the site's name
//	commune_insee                    INSEE code of the commune
//	categorie_activite               activity category (OPERAT nomenclature, configured per site)
//	surface_m2                       tertiary surface, m²
//	annee                            year of the consumption
//	type_energie                     électricité | gaz naturel | réseau de chaleur
//	consommation_annuelle            the year's final energy consumption, whole kWh
//	unite                            kWh, or kWh PCS for gas (higher heating value, as invoiced)
//	annee_reference                  the building's reference year
//	consommation_reference_kwh       the energy's consumption in the reference year, whole kWh
//	consommation_ajustee_climat_kwh  the year's consumption brought to the reference year's climate
//	                                 (ClimateAdjusted); empty without both degree days
//	dju_annee                        heating degree days of the year
//	dju_reference                    heating degree days of the reference year
//	volume_gaz_m3                    gas only, when converted: the volume the meter counted, m³
//	coefficient_conversion_kwh_m3    gas only, when converted: kWh PCS per m³ applied (see GasKWh)

var operatHeader = []string{
	"identifiant_site", "nom", "commune_insee", "categorie_activite", "surface_m2", "annee", "type_energie",
	"consommation_annuelle", "unite", "annee_reference", "consommation_reference_kwh",
	"consommation_ajustee_climat_kwh", "dju_annee", "dju_reference", "volume_gaz_m3",
	"coefficient_conversion_kwh_m3",
}

// OperatRow is one building's consumption of one energy over the year of the file.
type OperatRow struct {
	Site      hv.Site // ID, Name and Commune are written
	Category  string  // activity category; empty: an empty cell, to fill in
	SurfaceM2 float64 // 0: Site.SurfaceM2
	Fluid     hv.Fluid
	// KWh is the year's consumption in kWh of final energy (gas: kWh PCS). Gas metered in m³ gives GasM3 and
	// GasKWhPerM3 instead and leaves KWh at zero; the file shows both and the kWh they make.
	KWh         float64
	GasM3       float64
	GasKWhPerM3 float64
	// ReferenceYear (0: Site.ReferenceYear; still 0: empty cells) and the energy's reference consumption.
	ReferenceYear int
	ReferenceKWh  float64
	// HeatingShare is the share of KWh the climate adjustment scales (see DefaultHeatingShare: zero here
	// means no heating); DJU and ReferenceDJU the degree days of the year and of the reference year.
	HeatingShare float64
	DJU          float64
	ReferenceDJU float64
}

// kwh returns the row's consumption in kWh, gas converted from m³ when given.
func (r OperatRow) kwh() (float64, error) {
	if err := checkEnergy(r.Fluid, r.KWh); err != nil {
		return 0, err
	}
	if r.GasM3 == 0 && r.GasKWhPerM3 == 0 {
		return r.KWh, nil
	}
	if r.Fluid != hv.Gas {
		return 0, fmt.Errorf("%w: a volume in m³ on a %s row", hv.ErrInvalid, r.Fluid)
	}
	if r.KWh != 0 {
		return 0, fmt.Errorf("%w: gas given both in kWh and in m³", hv.ErrInvalid)
	}
	return GasKWh(r.GasM3, r.GasKWhPerM3)
}

// WriteOPERAT writes the OPERAT preparation file of year (format and columns above). Rows are validated
// first: an unknown energy, a negative or non-finite quantity, gas in m³ without its coefficient, a heating
// share outside 0–1 or a site given twice for one energy fails the whole file with hv.ErrInvalid, naming the
// site; a missing category, surface or reference leaves its cells empty.
func WriteOPERAT(w io.Writer, year int, rows []OperatRow) error {
	if year <= 0 {
		return fmt.Errorf("write operat: %w: year %d", hv.ErrInvalid, year)
	}
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b OperatRow) int {
		return cmp.Or(strings.Compare(a.Site.ID, b.Site.ID),
			cmp.Compare(slices.Index(energyFluids, a.Fluid), slices.Index(energyFluids, b.Fluid)))
	})
	records := make([][]string, 0, len(rows)+1)
	records = append(records, operatHeader)
	for i, r := range rows {
		if i > 0 && rows[i-1].Site.ID == r.Site.ID && rows[i-1].Fluid == r.Fluid {
			return fmt.Errorf("write operat: site %q: %w: %s given twice", r.Site.ID, hv.ErrInvalid, r.Fluid)
		}
		rec, err := r.record(year)
		if err != nil {
			return fmt.Errorf("write operat: site %q: %w", r.Site.ID, err)
		}
		records = append(records, rec)
	}
	if err := writeSpreadsheetCSV(w, records); err != nil {
		return fmt.Errorf("write operat: %w", err)
	}
	return nil
}

// record renders the row as the file's cells.
func (r OperatRow) record(year int) ([]string, error) {
	if r.Site.ID == "" {
		return nil, fmt.Errorf("%w: no site id", hv.ErrInvalid)
	}
	kwh, err := r.kwh()
	if err != nil {
		return nil, err
	}
	for _, q := range []struct {
		name string
		v    float64
	}{{"surface", r.SurfaceM2}, {"reference kWh", r.ReferenceKWh}, {"DJU", r.DJU}, {"reference DJU", r.ReferenceDJU}} {
		if !finiteNonNegative(q.v) {
			return nil, fmt.Errorf("%w: %s %v", hv.ErrInvalid, q.name, q.v)
		}
	}
	if !(r.HeatingShare >= 0 && r.HeatingShare <= 1) {
		return nil, fmt.Errorf("%w: heating share %v, want 0–1", hv.ErrInvalid, r.HeatingShare)
	}
	surface := cmp.Or(r.SurfaceM2, r.Site.SurfaceM2)
	refYear := cmp.Or(r.ReferenceYear, r.Site.ReferenceYear)
	unit := "kWh"
	if r.Fluid == hv.Gas {
		unit = "kWh PCS"
	}
	rec := []string{
		r.Site.ID, r.Site.Name, r.Site.Commune, r.Category, decimalCell(surface, 2), strconv.Itoa(year),
		energyLabel(r.Fluid), kwhCell(kwh), unit, "", "", "", decimalCell(r.DJU, 1), decimalCell(r.ReferenceDJU, 1),
		"", "",
	}
	if refYear > 0 {
		rec[9], rec[10] = strconv.Itoa(refYear), kwhCell(r.ReferenceKWh)
	}
	if adj, ok := ClimateAdjusted(kwh, r.HeatingShare, r.DJU, r.ReferenceDJU); ok {
		rec[11] = kwhCell(adj)
	}
	if r.GasM3 != 0 || r.GasKWhPerM3 != 0 {
		rec[14], rec[15] = trimmedDecimal(r.GasM3, 3), trimmedDecimal(r.GasKWhPerM3, 4)
	}
	return rec, nil
}

// OperatRows returns a building's rows for year from the input of its trajectory: one per energy consumed
// that year or in the reference year, with the trajectory's heating shares and degree days. The year must be
// among in.Years.
func OperatRows(in TertiaireInput, year int) ([]OperatRow, error) {
	i := slices.IndexFunc(in.Years, func(y YearConsumption) bool { return y.Year == year })
	if i < 0 {
		return nil, fmt.Errorf("operat rows of site %q: %w: no consumption for %d", in.Site.ID, hv.ErrInvalid, year)
	}
	y := in.Years[i]
	kwh, err := y.energies()
	if err != nil {
		return nil, fmt.Errorf("operat rows of site %q: %w", in.Site.ID, err)
	}
	var rows []OperatRow
	for _, f := range energyOrder(kwh, in.Reference) {
		r := OperatRow{Site: in.Site, Category: in.Category, SurfaceM2: in.SurfaceM2, Fluid: f, KWh: kwh[f],
			ReferenceYear: in.ReferenceYear, ReferenceKWh: in.Reference[f], HeatingShare: in.heatingShare(f),
			DJU: y.DJU, ReferenceDJU: in.ReferenceDJU}
		if f == hv.Gas && (y.GasM3 != 0 || y.GasKWhPerM3 != 0) {
			r.KWh, r.GasM3, r.GasKWhPerM3 = 0, y.GasM3, y.GasKWhPerM3
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// energyLabel is the French name of an energy in the exports, as OPERAT names it.
func energyLabel(f hv.Fluid) string {
	switch f {
	case hv.Electricity:
		return "électricité"
	case hv.Gas:
		return "gaz naturel"
	case hv.Heat:
		return "réseau de chaleur"
	}
	return string(f)
}

// utf8BOM makes Excel read the exports as UTF-8.
const utf8BOM = "\ufeff"

// writeSpreadsheetCSV writes records as the exports' CSV: UTF-8 BOM, ";" separator, "\n" line ends.
func writeSpreadsheetCSV(w io.Writer, records [][]string) error {
	if _, err := io.WriteString(w, utf8BOM); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Comma = ';'
	if err := cw.WriteAll(records); err != nil {
		return err
	}
	return nil
}

// kwhCell renders kWh rounded to the whole kWh.
func kwhCell(v float64) string { return strconv.FormatFloat(math.Round(v)+0, 'f', 0, 64) }

// decimalCell renders a quantity whose zero means unknown: empty for zero, else as trimmedDecimal renders it.
func decimalCell(v float64, prec int) string {
	if v == 0 {
		return ""
	}
	return trimmedDecimal(v, prec)
}

// trimmedDecimal renders v with at most prec decimals and a decimal point, trailing zeros dropped.
func trimmedDecimal(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
