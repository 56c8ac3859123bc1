package reporting

import (
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hv "github.com/useda02/hyperviseur"
)

// A flag of its own: the package's other tests may define -update.
var updateCompliance = flag.Bool("update-compliance", false, "rewrite the golden CSV of the OPERAT and BACS exports")

// checkComplianceGolden compares got with testdata/name, or rewrites it under -update-compliance.
func checkComplianceGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateCompliance {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-compliance to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (run with -update-compliance to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// readSpreadsheetCSV parses an export as a spreadsheet-minded reader would: BOM dropped, ";" separated.
func readSpreadsheetCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	rest, ok := bytes.CutPrefix(b, []byte(utf8BOM))
	if !ok {
		t.Fatal("export without UTF-8 BOM")
	}
	r := csv.NewReader(bytes.NewReader(rest))
	r.Comma = ';'
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func operatSites() (school, townHall, gym hv.Site) {
	school = hv.Site{ID: "ecole-laon-1", Name: "École Jean Mermoz", Kind: hv.SiteBuilding, Commune: "02408",
		SurfaceM2: 1000, Tertiaire: true, ReferenceYear: 2015}
	townHall = hv.Site{ID: "mairie-soissons", Name: "Hôtel de ville; salle « Paul-Doumer »", Kind: hv.SiteBuilding,
		Commune: "02722", SurfaceM2: 1250.5, Tertiaire: true, ReferenceYear: 2012}
	gym = hv.Site{ID: "gymnase-chauny", Name: "Gymnase \"Les Tilleuls\"", Kind: hv.SiteBuilding, Commune: "02173",
		SurfaceM2: 1100, Tertiaire: true}
	return
}

// operatFixture covers: gas from m³, climate adjustment with the default shares, a site without degree days,
// the reference year and surface taken from the site, a site without category nor reference (empty cells),
// rounding to whole kWh, quoting of a ";" and of quotes, and sorting (given out of order).
func operatFixture() []OperatRow {
	school, townHall, gym := operatSites()
	return []OperatRow{
		{Site: townHall, Category: "Bureaux – administration", Fluid: hv.Heat, KWh: 80_000.4, ReferenceKWh: 95_000.6,
			HeatingShare: 1},
		{Site: school, Category: "Enseignement primaire", Fluid: hv.Gas, GasM3: 4000, GasKWhPerM3: 11.25,
			ReferenceKWh: 60_000, HeatingShare: 1, DJU: 2000, ReferenceDJU: 2500},
		{Site: gym, Fluid: hv.Electricity, KWh: 12_345.5},
		{Site: school, Category: "Enseignement primaire", Fluid: hv.Electricity, KWh: 30_000, ReferenceKWh: 35_000,
			DJU: 2000, ReferenceDJU: 2500},
		{Site: townHall, Category: "Bureaux – administration", SurfaceM2: 1200, ReferenceYear: 2013,
			Fluid: hv.Electricity, KWh: 42_000, ReferenceKWh: 51_000},
	}
}

func TestWriteOPERAT(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOPERAT(&buf, 2024, operatFixture()); err != nil {
		t.Fatal(err)
	}
	checkComplianceGolden(t, "operat_2024.csv", buf.Bytes())

	// Hand checks of the golden file: 4 000 m³ × 11.25 = 45 000 kWh PCS, adjusted 45 000 × 2 500 / 2 000.
	recs := readSpreadsheetCSV(t, buf.Bytes())
	if len(recs) != 6 || len(recs[0]) != len(operatHeader) {
		t.Fatalf("%d records of %d columns", len(recs), len(recs[0]))
	}
	byKey := map[string][]string{}
	for _, r := range recs[1:] {
		if len(r) != len(operatHeader) {
			t.Fatalf("record %q has %d columns", r, len(r))
		}
		byKey[r[0]+"/"+r[6]] = r
	}
	gas := byKey["ecole-laon-1/gaz naturel"]
	for col, want := range map[int]string{7: "45000", 8: "kWh PCS", 9: "2015", 11: "56250", 12: "2000", 13: "2500",
		14: "4000", 15: "11.25"} {
		if gas[col] != want {
			t.Errorf("gas %s = %q, want %q", operatHeader[col], gas[col], want)
		}
	}
	if e := byKey["ecole-laon-1/électricité"]; e[11] != "30000" {
		t.Errorf("electricity has no heating share: adjusted %q, want 30000", e[11])
	}
	if g := byKey["gymnase-chauny/électricité"]; g[3] != "" || g[7] != "12346" || g[9] != "" || g[10] != "" || g[11] != "" {
		t.Errorf("gym %q: empty category and reference, no adjustment, 12 346 kWh", g)
	}
	if h := byKey["mairie-soissons/réseau de chaleur"]; h[1] != "Hôtel de ville; salle « Paul-Doumer »" ||
		h[4] != "1250.5" || h[9] != "2012" || h[10] != "95001" {
		t.Errorf("heat %q", h)
	}
}

func TestWriteOPERATEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOPERAT(&buf, 2024, nil); err != nil {
		t.Fatal(err)
	}
	if want := utf8BOM + strings.Join(operatHeader, ";") + "\n"; buf.String() != want {
		t.Fatalf("got %q, want the header alone", buf.String())
	}
}

func TestWriteOPERATInvalid(t *testing.T) {
	school, _, _ := operatSites()
	ok := OperatRow{Site: school, Fluid: hv.Electricity, KWh: 1}
	for _, c := range []struct {
		name string
		year int
		rows []OperatRow
		want string
	}{
		{"water", 2024, []OperatRow{{Site: school, Fluid: hv.Water, KWh: 1}}, `"water" is not an energy`},
		{"negative", 2024, []OperatRow{{Site: school, Fluid: hv.Heat, KWh: -5}}, "-5 kWh"},
		{"gas m³ without coefficient", 2024, []OperatRow{{Site: school, Fluid: hv.Gas, GasM3: 10}}, "conversion coefficient 0"},
		{"gas in kWh and m³", 2024, []OperatRow{{Site: school, Fluid: hv.Gas, KWh: 5, GasM3: 10, GasKWhPerM3: 11}}, "both"},
		{"m³ on electricity", 2024, []OperatRow{{Site: school, Fluid: hv.Electricity, GasM3: 10, GasKWhPerM3: 11}}, "volume in m³"},
		{"heating share", 2024, []OperatRow{{Site: school, Fluid: hv.Gas, KWh: 5, HeatingShare: 2}}, "heating share 2"},
		{"twice", 2024, []OperatRow{ok, ok}, "electricity given twice"},
		{"no site", 2024, []OperatRow{{Fluid: hv.Heat, KWh: 1}}, "no site id"},
		{"no year", 0, []OperatRow{ok}, "year 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteOPERAT(&buf, c.year, c.rows)
			if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrInvalid with %q", err, c.want)
			}
		})
	}
}

func TestOperatGasKWh(t *testing.T) {
	for _, c := range []struct {
		name      string
		m3, coeff float64
		want      float64
		err       bool
	}{
		{"invoice coefficient", 1000, 11.2, 11_200, false},
		{"zero volume", 0, 10.5, 0, false},
		{"no coefficient", 1000, 0, 0, true},
		{"negative volume", -1, 10.5, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := GasKWh(c.m3, c.coeff)
			if (err != nil) != c.err || (err != nil && !errors.Is(err, hv.ErrInvalid)) {
				t.Fatalf("error %v, want error %v", err, c.err)
			}
			complianceNear(t, "kWh", got, c.want)
		})
	}
}

// TestOperatRows: the rows built from a trajectory input carry its shares and degree days, keep gas in m³,
// and list an energy of the reference year no longer consumed.
func TestOperatRows(t *testing.T) {
	school, _, _ := operatSites()
	in := TertiaireInput{
		Site: school, Category: "Enseignement primaire", ElectricHeating: true,
		Reference:    map[hv.Fluid]float64{hv.Electricity: 35_000, hv.Gas: 60_000, hv.Heat: 10_000},
		ReferenceDJU: 2500,
		Years: []YearConsumption{
			{Year: 2023, KWh: map[hv.Fluid]float64{hv.Electricity: 1}},
			{Year: 2024, KWh: map[hv.Fluid]float64{hv.Electricity: 30_000}, GasM3: 4000, GasKWhPerM3: 11.25, DJU: 2000},
		},
	}
	rows, err := OperatRows(in, 2024)
	if err != nil {
		t.Fatal(err)
	}
	want := []OperatRow{
		{Site: school, Category: "Enseignement primaire", Fluid: hv.Electricity, KWh: 30_000, ReferenceKWh: 35_000,
			HeatingShare: 0.5, DJU: 2000, ReferenceDJU: 2500},
		{Site: school, Category: "Enseignement primaire", Fluid: hv.Gas, GasM3: 4000, GasKWhPerM3: 11.25,
			ReferenceKWh: 60_000, HeatingShare: 1, DJU: 2000, ReferenceDJU: 2500},
		{Site: school, Category: "Enseignement primaire", Fluid: hv.Heat, ReferenceKWh: 10_000, HeatingShare: 1,
			DJU: 2000, ReferenceDJU: 2500},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, rows[i], want[i])
		}
	}
	var buf bytes.Buffer
	if err := WriteOPERAT(&buf, 2024, rows); err != nil {
		t.Fatal(err)
	}
	recs := readSpreadsheetCSV(t, buf.Bytes())
	// Electricity half heating: 15 000 + 15 000 × 1.25 = 33 750; the trajectory says the same.
	if recs[1][11] != "33750" {
		t.Errorf("electricity adjusted %q, want 33750", recs[1][11])
	}
	tr, err := TertiaireTrajectory(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	complianceNear(t, "trajectory electricity", tr.Years[1].Energies[0].AdjustedKWh, 33_750)

	if _, err := OperatRows(in, 2022); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("missing year: error %v, want ErrInvalid", err)
	}
}
