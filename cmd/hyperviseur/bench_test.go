package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/load"
)

// TestBenchRegistryCommand: `bench registry` writes what the service loads, with the generator's device ids.
func TestBenchRegistryCommand(t *testing.T) {
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"bench", "registry", "--devices", "123"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	territory, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.LoadBytes(territory, "bench.yaml", out.Bytes())
	if err != nil {
		t.Fatalf("bench registry does not load: %v", err)
	}
	devs := reg.Devices()
	if len(devs) != 123 || devs[0].ID != load.DeviceID(0) || devs[122].ID != load.DeviceID(122) {
		t.Fatalf("%d devices, from %s to %s", len(devs), devs[0].ID, devs[len(devs)-1].ID)
	}
}

func TestBenchCommandRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"messages and duration", []string{"bench", "--messages", "10", "--duration", "1s"}, "not both"},
		{"no devices", []string{"bench", "--devices", "0"}, "devices"},
		{"registry without devices", []string{"bench", "registry", "--devices", "0"}, "devices"},
		{"stray argument", []string{"bench", "now"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := rootCmd()
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			cmd.SetArgs(tt.args)
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}
