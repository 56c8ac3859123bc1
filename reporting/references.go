package reporting

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	hv "github.com/useda02/hyperviseur"
)

// The reference consumption of a building subject to the décret tertiaire is declared once on OPERAT, for a
// year (2010–2019) long before the meters here were read: it cannot be measured, it is a fact the building's
// manager supplies. The references file carries it, in the shape of the OPERAT file the same manager already
// handles (see operat.go for the format's conventions: ";" separator, UTF-8 with or without a byte-order
// mark, decimal point, one header line):
//
//	identifiant_site   the site's registry id
//	annee_reference    the reference year, 2010–2019; the same on every row of a site, and the registry's
//	                   reference_year when the registry has one
//	type_energie       électricité | gaz naturel | réseau de chaleur (or electricity | gas | heat)
//	consommation_kwh   the energy's consumption in the reference year, kWh of final energy (gas: kWh PCS)
//	dju_reference      heating degree days of the reference year at the site (optional, the same on every
//	                   row of a site; empty: the site's years are not climate-adjusted)
//
// One row per site and energy. Configured as reporting.tertiaire_references.

var referencesHeader = []string{"identifiant_site", "annee_reference", "type_energie", "consommation_kwh", "dju_reference"}

// Reference is a building's declared reference year.
type Reference struct {
	Site string
	Year int
	KWh  map[hv.Fluid]float64
	DJU  float64 // 0: unknown
}

// References are the declared references by site id.
type References map[string]Reference

// energyByLabel reads a type_energie cell.
var energyByLabel = map[string]hv.Fluid{
	"électricité": hv.Electricity, "electricite": hv.Electricity, "electricity": hv.Electricity,
	"gaz naturel": hv.Gas, "gaz": hv.Gas, "gas": hv.Gas,
	"réseau de chaleur": hv.Heat, "reseau de chaleur": hv.Heat, "heat": hv.Heat,
}

// LoadReferences reads a references file; errors name the file and line.
func LoadReferences(path string) (References, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tertiaire references: %w", err)
	}
	return ReadReferences(bytes.NewReader(b), path)
}

// ReadReferences reads references from r; name is the file's name in errors. Every error wraps
// hv.ErrInvalid (but read errors) and names the line and column.
func ReadReferences(r io.Reader, name string) (References, error) {
	br := bufio.NewReader(r)
	if bom, err := br.Peek(len(utf8BOM)); err == nil && string(bom) == utf8BOM {
		br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.Comma = ';'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	bad := func(line int, column, format string, args ...any) error {
		where := fmt.Sprintf("%s:%d", name, line)
		if column != "" {
			where += ": " + column
		}
		return fmt.Errorf("tertiaire references %s: %w: %s", where, hv.ErrInvalid, fmt.Sprintf(format, args...))
	}
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, bad(1, "", "empty file, want the header %s", strings.Join(referencesHeader, ";"))
	}
	if err != nil {
		return nil, fmt.Errorf("tertiaire references %s: %w: %w", name, hv.ErrInvalid, err)
	}
	if !slices.Equal(head, referencesHeader) {
		return nil, bad(1, "", "header %q, want %s", strings.Join(head, ";"), strings.Join(referencesHeader, ";"))
	}
	refs := References{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return refs, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("tertiaire references %s: %w: %w", name, hv.ErrInvalid, err)
		}
		if len(rec) != len(referencesHeader) {
			return nil, bad(line, "", "%d columns, want %d", len(rec), len(referencesHeader))
		}
		site := strings.TrimSpace(rec[0])
		if site == "" {
			return nil, bad(line, referencesHeader[0], "empty")
		}
		year, err := strconv.Atoi(strings.TrimSpace(rec[1]))
		if err != nil || year < FirstReferenceYear || year > LastReferenceYear {
			return nil, bad(line, referencesHeader[1], "%q, want a year from %d to %d", rec[1], FirstReferenceYear, LastReferenceYear)
		}
		f, ok := energyByLabel[strings.ToLower(strings.TrimSpace(rec[2]))]
		if !ok {
			return nil, bad(line, referencesHeader[2], "%q, want électricité, gaz naturel or réseau de chaleur", rec[2])
		}
		kwh, err := strconv.ParseFloat(strings.TrimSpace(rec[3]), 64)
		if err != nil || !finiteNonNegative(kwh) {
			return nil, bad(line, referencesHeader[3], "%q, want kWh ≥ 0 with a decimal point", rec[3])
		}
		var dju float64
		if s := strings.TrimSpace(rec[4]); s != "" {
			if dju, err = strconv.ParseFloat(s, 64); err != nil || !(dju > 0 && dju < 10000) {
				return nil, bad(line, referencesHeader[4], "%q, want annual degree days above 0 and below 10 000, or nothing", rec[4])
			}
		}
		ref, seen := refs[site]
		switch {
		case !seen:
			ref = Reference{Site: site, Year: year, KWh: map[hv.Fluid]float64{}, DJU: dju}
		case ref.Year != year:
			return nil, bad(line, referencesHeader[1], "%d, but an earlier row of site %q says %d", year, site, ref.Year)
		case ref.DJU != dju:
			return nil, bad(line, referencesHeader[4], "%v, but an earlier row of site %q says %v", dju, site, ref.DJU)
		}
		if _, dup := ref.KWh[f]; dup {
			return nil, bad(line, referencesHeader[2], "site %q gives %s twice", site, energyLabel(f))
		}
		ref.KWh[f] = kwh
		refs[site] = ref
	}
}

// Check verifies the references against the registry's sites: each names a site flagged tertiaire, and its
// year is the registry's reference_year when the registry has one.
func (refs References) Check(sites []hv.Site) error {
	byID := make(map[string]hv.Site, len(sites))
	for _, s := range sites {
		byID[s.ID] = s
	}
	for _, id := range slices.Sorted(maps.Keys(refs)) {
		ref := refs[id]
		s, ok := byID[id]
		switch {
		case !ok:
			return fmt.Errorf("tertiaire references: site %q: %w: not in the registry", id, hv.ErrInvalid)
		case !s.Tertiaire:
			return fmt.Errorf("tertiaire references: site %q: %w: not flagged tertiaire in the registry", id, hv.ErrInvalid)
		case s.ReferenceYear != 0 && s.ReferenceYear != ref.Year:
			return fmt.Errorf("tertiaire references: site %q: %w: reference year %d, the registry says %d", id, hv.ErrInvalid, ref.Year, s.ReferenceYear)
		}
	}
	return nil
}

// WriteReferences writes refs as a references file, sites in id order, energies in the OPERAT file's order.
func WriteReferences(w io.Writer, refs References) error {
	records := [][]string{referencesHeader}
	ids := slices.SortedFunc(maps.Keys(refs), cmp.Compare[string])
	for _, id := range ids {
		ref := refs[id]
		for _, f := range energyOrder(ref.KWh) {
			records = append(records, []string{id, strconv.Itoa(ref.Year), energyLabel(f), trimmedDecimal(ref.KWh[f], 1),
				decimalCell(ref.DJU, 1)})
		}
	}
	return writeSpreadsheetCSV(w, records)
}
