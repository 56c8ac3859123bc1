package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// TestSimulateFleetCommand: the command's output is a registry the service loads, and a seed gives one fleet.
func TestSimulateFleetCommand(t *testing.T) {
	run := func(args ...string) []byte {
		t.Helper()
		var out bytes.Buffer
		cmd := rootCmd()
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.Bytes()
	}
	laon := run("simulate", "fleet", "--seed", "7", "--epci", "200043495")
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.LoadBytes(territory, "fleet.yaml", laon)
	if err != nil {
		t.Fatalf("generated fleet does not load: %v", err)
	}
	for _, s := range reg.Sites() {
		if s.EPCI != "200043495" && s.Kind != "weather_station" {
			t.Fatalf("site %s of EPCI %s in a fleet restricted to the Pays de Laon", s.ID, s.EPCI)
		}
	}
	if len(reg.Devices()) < 100 {
		t.Fatalf("only %d devices for the Pays de Laon", len(reg.Devices()))
	}
	if again := run("simulate", "fleet", "--seed", "7", "--epci", "200043495"); !bytes.Equal(again, laon) {
		t.Fatal("same seed, different fleet")
	}
}

func TestLightingSunCommand(t *testing.T) {
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"lighting", "sun", "--commune", "02691", "--from", "2027-01-01", "--days", "365"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var days []map[string]string
	if err := json.Unmarshal(out.Bytes(), &days); err != nil {
		t.Fatal(err)
	}
	if len(days) != 365 || days[0]["date"] != "2027-01-01" || days[364]["date"] != "2027-12-31" || days[180]["sunrise"] == "" {
		t.Fatalf("%d days, first %v", len(days), days[0])
	}
	cmd = rootCmd()
	cmd.SetArgs([]string{"lighting", "sun", "--commune", "99999"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--commune") {
		t.Fatalf("unknown commune: err = %v, want one naming --commune", err)
	}
}

// TestSimulateBackfillCommand: the command writes the fleet's hourly history into the configured store, which
// then holds every device's index series over the range; a bad --from is refused naming the flag.
func TestSimulateBackfillCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HV_STORAGE_PATH", dir)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := rootCmd()
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	if _, err := run("simulate", "backfill", "--from", "last week"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Fatalf("bad --from: %v", err)
	}
	from, to := "2026-01-05", "2026-01-08"
	out, err := run("simulate", "backfill", "--from", from, "--to", to, "--epci", "200043495")
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	if !strings.Contains(out, "readings of 388 devices written") {
		t.Fatalf("no summary in the output:\n%s", out)
	}
	s, err := tsdb.Open(filepath.Join(dir, "tsdb"), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(context.Background(), hv.Query{Metric: hv.EnergyKWh.Delta(), EPCIs: []string{"200043495"},
		From: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixMilli(), To: time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 200 {
		t.Fatalf("%d electricity delta series, want every meter and controller of the Pays de Laon", len(got))
	}
	for _, s := range got {
		if len(s.Points) != 3*24-1 { // hourly, the first reading of a fresh store carries no delta
			t.Fatalf("%s: %d hourly deltas over 3 days, want %d", s.Device, len(s.Points), 3*24-1)
		}
	}
	if err := s.Close(); err != nil { // the reports below open the store
		t.Fatal(err)
	}

	// The reports read that store with the fleet as registry.
	fleetFile := filepath.Join(t.TempDir(), "fleet.yaml")
	yaml, err := run("simulate", "fleet", "--epci", "200043495")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fleetFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HV_REGISTRY_FILES", fleetFile)
	out, err = run("report", "operat", "--year", "2026")
	if err != nil {
		t.Fatalf("report operat: %v\n%s", err, out)
	}
	if lines := strings.Count(out, "\n"); lines < 20 || !strings.Contains(out, "mairie-02408") {
		t.Errorf("report operat: %d lines, want a row per energy of every tertiaire building:\n%.500s", lines, out)
	}
	out, err = run("lighting", "savings", "--from", "2026-01-05", "--to", "2026-01-06")
	if err != nil {
		t.Fatalf("lighting savings: %v\n%s", err, out)
	}
	if !strings.Contains(out, `"counted": 123`) {
		t.Errorf("lighting savings: want the Pays de Laon's 123 controllers counted:\n%.800s", out)
	}
	out, err = run("export", "opendata", "--year", "2026")
	if err != nil || !strings.Contains(out, "02408,Laon,200043495,2026,1,éclairage public,electricity,") {
		t.Errorf("export opendata: %v\n%.600s", err, out)
	}
	if _, err := run("report", "operat", "--year", "2026", "--epci", "123"); err == nil || !strings.Contains(err.Error(), "--epci") {
		t.Errorf("bad --epci: %v", err)
	}

	// The décret tertiaire: the fleet's references file, then the trajectories. Three days of history make
	// no complete twelve months: every building is listed with its reference and "données insuffisantes".
	refsFile := filepath.Join(t.TempDir(), "refs.csv")
	refs, err := run("simulate", "references", "--epci", "200043495")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(refsFile, []byte(refs), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HV_REPORTING_TERTIAIRE_REFERENCES", refsFile)
	out, err = run("report", "tertiaire", "--epci", "200043495")
	if err != nil {
		t.Fatalf("report tertiaire: %v\n%s", err, out)
	}
	buildings := strings.Count(refs, "électricité") // one electricity row per building in the references
	if rows := strings.Count(out, ";données insuffisantes"); buildings < 10 || rows != buildings || !strings.Contains(out, "mairie-02408;") {
		t.Errorf("report tertiaire: %d rows for %d buildings with a reference:\n%.800s", rows, buildings, out)
	}
	if err := os.WriteFile(refsFile, []byte("identifiant_site;annee_reference;type_energie;consommation_kwh;dju_reference\nnowhere;2015;gaz;1;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run("report", "tertiaire"); err == nil || !strings.Contains(err.Error(), `reporting.tertiaire_references: tertiaire references: site "nowhere"`) {
		t.Errorf("bad references file: %v, want an error naming the key and the site", err)
	}
}
