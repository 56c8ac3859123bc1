package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// TestExportCommands: the series and consumption exports of a store holding 2 hours of 10-minute readings
// of the demo registry's Laon town hall meter, on stdout, with progress on stderr.
func TestExportCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HV_STORAGE_PATH", dir)
	s, err := tsdb.Open(filepath.Join(dir, "tsdb"), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	var rs []hv.Reading
	for i := range 12 {
		at := start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli()
		lbl := hv.Reading{Device: "elec-mairie-laon", Time: at, Site: "mairie-laon", Commune: "02408", EPCI: "200043495", Fluid: hv.Electricity}
		p, d := lbl, lbl
		p.Metric, p.Value = hv.PowerW, float64(1000+i)
		d.Metric, d.Value = hv.EnergyKWh.Delta(), 0.25
		rs = append(rs, p, d)
	}
	if err := s.Write(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		cmd := rootCmd()
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}

	out, progress, err := run("export", "series", "--device", "elec-mairie-laon", "--metric", "power_w",
		"--from", "2026-01-05T10:00:00Z", "--to", "2026-01-05T12:00:00Z", "--every", "1h", "--agg", "max")
	want := "\ufefftime;device;metric;value;unit;site;commune;epci;fluid\n" +
		"2026-01-05T10:00:00Z;elec-mairie-laon;power_w;1005;W;mairie-laon;02408;200043495;electricity\n" +
		"2026-01-05T11:00:00Z;elec-mairie-laon;power_w;1011;W;mairie-laon;02408;200043495;electricity\n"
	if err != nil || out != want {
		t.Fatalf("export series: %v\n%s\nwant:\n%s", err, out, want)
	}
	if !strings.Contains(progress, "export series: 2 rows (100% of ~2)") {
		t.Errorf("progress: %q", progress)
	}

	out, _, err = run("export", "series", "--device", "elec-mairie-laon", "--metric", "power_w", "--format", "json",
		"--from", "2026-01-05T10:00:00Z", "--to", "2026-01-05T10:20:00Z")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.HasSuffix(out, `{"end":true,"rows":2}`+"\n") {
		t.Fatalf("export series json: %v\n%s", err, out)
	}

	out, _, err = run("export", "consumption", "--scope", "site:mairie-laon", "--fluid", "electricity",
		"--from", "2026-01-05", "--to", "2026-01-05", "--every", "day")
	want = "\ufeffstart;end;fluid;unit;value;kwh\n" +
		"2026-01-05T00:00:00+01:00;2026-01-06T00:00:00+01:00;electricity;kWh;3;3\n"
	if err != nil || out != want {
		t.Fatalf("export consumption: %v\n%s\nwant:\n%s", err, out, want)
	}

	for _, args := range [][]string{
		{"export", "series", "--metric", "power_w", "--format", "xlsx"},
		{"export", "series", "--metric", "watts"},
		{"export", "series", "--metric", "power_w", "--from", "2000-01-01T00:00:00Z", "--max-rows", "10"},
		{"export", "consumption", "--from", "2026-01-05", "--to", "2026-01-05", "--every", "week"},
	} {
		if _, _, err := run(args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
