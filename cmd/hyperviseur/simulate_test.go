package main

import (
	"bytes"
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
