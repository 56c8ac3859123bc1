package ruletest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// TestRunTests: the passing files pass (the default set's leak and counter rules, a threshold with `for`,
// inline rules and registry, a silent device).
func TestRunTests(t *testing.T) {
	for _, name := range []string{"default.yaml", "inline.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			var out bytes.Buffer
			ok, err := RunTests(context.Background(), path, &out)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Fatalf("failed:\n%s", out.String())
			}
			if want := "Unit testing: " + path + "\n  SUCCESS\n"; out.String() != want {
				t.Fatalf("output %q, want %q", out.String(), want)
			}
		})
	}
}

// TestRunTestsFailing: wrong expectations are reported, each with its test, its time and the expected and
// firing alerts, and only those (failing.out); the evaluation that matches is not.
func TestRunTestsFailing(t *testing.T) {
	var out bytes.Buffer
	ok, err := RunTests(context.Background(), filepath.Join("testdata", "failing.yaml"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("wrong expectations passed:\n%s", out.String())
	}
	golden := filepath.Join("testdata", "failing.out")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("report:\n%s\nwant (%s, -update to rewrite):\n%s", out.String(), golden, want)
	}
	for _, s := range []string{
		`fuite-eau{device="eau-ecole"}   <- not firing`,
		`fuite-eau{commune="02408", device="eau-mairie", epci="200043495", fluid="water", site="mairie"} warning   <- not expected`,
		`at 1h30m (2027-01-11T01:30:00+01:00)`,
		"got: none",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if strings.Contains(out.String(), "at 1h40m") {
		t.Error("the evaluation that matches is reported")
	}
}

// TestBadFiles: a file that cannot be run is refused before running, naming the line and the reason.
func TestBadFiles(t *testing.T) {
	cases := map[string][]string{
		"at.bad.yaml":              {"line 10: tests[0].alert_eval[0]: at 15m is not a multiple of evaluation_interval 10m"},
		"both-rules.bad.yaml":      {"line 2: give rule_files or rules, not both"},
		"derived.bad.yaml":         {"line 8: tests[0].input_series[1]: volume_m3_delta is derived from the volume_m3 series given at line 5"},
		"inline-rule.bad.yaml":     {`inline-rule.bad.yaml: rules[0] (name "puissance"): line 9: unknown key "abov"`},
		"no-alerts.bad.yaml":       {"line 9: tests[0].alert_eval[0]: alerts is required"},
		"start.bad.yaml":           {`line 2: start "11/01/2027" is not an RFC 3339 time`},
		"unknown-device.bad.yaml":  {`line 5: tests[0].input_series[0]: device "elec-mairie-laon" is not in the registry`},
		"unknown-key.bad.yaml":     {`line 8: unknown key "valeus" in tests[0].input_series[0] (want device, interval, metric, values)`},
		"unknown-top-key.bad.yaml": {`line 3: unknown key "evaluation-interval"`},
		"values.bad.yaml": {
			`line 5: tests[0].input_series[0]: values: "3+1xtrois" is not a number, nor a+bxN`,
			`line 8: tests[0].input_series[1]: values: "stale": there are no stale markers`,
		},
		"rule.bad.yaml": {
			`line 11: tests[0].alert_eval[0].alerts[0]: rule "fuite" is not in the rule set`,
			`line 12: tests[0].alert_eval[0].alerts[1]: rule "gradation-non-appliquee" cannot run in a test`,
			`line 13: tests[0].alert_eval[0].alerts[2]: severity "grave" is not one of critical, warning, info`,
		},
	}
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := cases[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected error", f)
		}
	}
	for name, wants := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			ok, err := RunTests(context.Background(), filepath.Join("testdata", "bad", name), &out)
			if ok || err == nil {
				t.Fatalf("ran: ok %v, err %v", ok, err)
			}
			if !errors.Is(err, hv.ErrInvalid) {
				t.Errorf("%v does not match hv.ErrInvalid", err)
			}
			for _, want := range wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nlacks %q", err, want)
				}
			}
		})
	}
}

func TestExpand(t *testing.T) {
	gap := point{gap: true}
	v := func(x float64) point { return point{v: x} }
	tests := []struct {
		name, in string
		want     []point
		err      string
	}{
		{name: "numbers", in: " 1 2.5  -3 1e3", want: []point{v(1), v(2.5), v(-3), v(1000)}},
		{name: "increasing", in: "-2+4x3", want: []point{v(-2), v(2), v(6), v(10)}},
		{name: "decreasing", in: "1-2x4", want: []point{v(1), v(-1), v(-3), v(-5), v(-7)}},
		{name: "constant", in: "7x2", want: []point{v(7), v(7), v(7)}},
		{name: "exponents", in: "1e-3+1e+0x1", want: []point{v(0.001), v(1.001)}},
		{name: "gaps", in: "1 _ _x2 2", want: []point{v(1), gap, gap, gap, v(2)}},
		{name: "none", in: "x", err: `"x" is not a number, nor a+bxN`},
		{name: "empty", in: "  ", err: "no values"},
		{name: "not a number", in: "1 un", err: `"un" is not a finite number`},
		{name: "not an expansion", in: "1 deux", err: `"deux" is not a number, nor a+bxN`},
		{name: "bad base", in: "1+yx2", err: `"1+yx2": "y" is not a finite number`},
		{name: "infinite", in: "Inf", err: `"Inf" is not a finite number`},
		{name: "negative count", in: "1+1x-2", err: "whole number"},
		{name: "stale", in: "1 stale", err: "no stale markers"},
		{name: "too many", in: "0+1x2000000", err: "more than 1000000 values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expand(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("%v, want %v", got, tt.want)
			}
		})
	}
}

// TestMatch: expected alerts are paired one to one with firing ones, whatever their order: an expectation
// with few labels does not take the alert a more precise one needs.
func TestMatch(t *testing.T) {
	alert := func(rule, device string, sev hv.Severity) rules.Alert {
		var a rules.Alert
		a.Rule, a.Severity, a.Labels = rule, sev, map[string]string{"device": device, "site": "mairie"}
		return a
	}
	got := []rules.Alert{alert("fuite-eau", "eau-mairie", hv.SeverityWarning), alert("fuite-eau", "eau-ecole", hv.SeverityWarning)}
	tests := []struct {
		name         string
		exp          []expAlert
		expOK, gotOK []bool
	}{
		{"loose first", []expAlert{{Rule: "fuite-eau"}, {Rule: "fuite-eau", Labels: map[string]string{"device": "eau-mairie"}}},
			[]bool{true, true}, []bool{true, true}},
		{"one expectation for two alerts", []expAlert{{Rule: "fuite-eau"}}, []bool{true}, []bool{true, false}},
		{"label mismatch", []expAlert{{Rule: "fuite-eau", Labels: map[string]string{"device": "eau-mairie", "site": "ecole"}}, {Rule: "fuite-eau"}},
			[]bool{false, true}, []bool{true, false}},
		{"severity", []expAlert{{Rule: "fuite-eau", Severity: hv.SeverityCritical}, {Rule: "fuite-eau", Severity: hv.SeverityWarning}},
			[]bool{false, true}, []bool{true, false}},
		{"other rule", []expAlert{{Rule: "index-anomalie"}}, []bool{false}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expOK, gotOK := match(tt.exp, got)
			if !slices.Equal(expOK, tt.expOK) || !slices.Equal(gotOK, tt.gotOK) {
				t.Fatalf("expected matched %v, firing matched %v; want %v, %v", expOK, gotOK, tt.expOK, tt.gotOK)
			}
		})
	}
}

// TestEmbedded: an inline mapping keeps its lines, whatever its style, so its loader's errors point into the
// test file.
func TestEmbedded(t *testing.T) {
	src := "start: x\nrules:\n  # comment\n  rules:\n    - name: a\nregistry: {sites: [],\n  devices: []}\ntests: []\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Content[0]
	_, rulesVal, next := field(s, "rules")
	if got, want := string(embedded([]byte(src), rulesVal, next)), "\n\n\n  rules:\n    - name: a\n"; got != want {
		t.Errorf("rules: %q, want %q", got, want)
	}
	_, regVal, next := field(s, "registry")
	if got, want := string(embedded([]byte(src), regVal, next)), "\n\n\n\n\n          {sites: [],\n  devices: []}\n"; got != want {
		t.Errorf("registry: %q, want %q", got, want)
	}
}
