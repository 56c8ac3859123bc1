package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/useda02/hyperviseur/registry"
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
