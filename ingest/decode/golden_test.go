package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden expected and error files from the decoders' output (review the diff by hand)")

// testNow pins the clock relative SenML times resolve against, so golden files are stable.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	now = func() time.Time { return testNow }
	os.Exit(m.Run())
}

// goldenSample is how samples are written in testdata/<format>/<case>/expected.
type goldenSample struct {
	Device string  `json:"device"`
	Name   string  `json:"name"`
	Unit   string  `json:"unit,omitempty"`
	Value  float64 `json:"value"`
	Time   string  `json:"time,omitempty"` // RFC 3339 with nanoseconds, UTC; absent for "receive time"
}

func toGolden(samples []Sample) []goldenSample {
	out := make([]goldenSample, 0, len(samples))
	for _, s := range samples {
		g := goldenSample{Device: s.Device, Name: s.Name, Unit: s.Unit, Value: s.Value}
		if !s.Time.IsZero() {
			g.Time = s.Time.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, g)
	}
	return out
}

type goldenCase struct {
	format, name, dir string
	topic             string
	input             []byte
}

// goldenCases lists testdata/<format>/<case> for one format.
func goldenCases(t testing.TB, format string) []goldenCase {
	t.Helper()
	dirs, err := os.ReadDir(filepath.Join("testdata", format))
	if err != nil {
		t.Fatalf("format %q has no golden cases: %v", format, err)
	}
	var out []goldenCase
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join("testdata", format, d.Name())
		topic, err := os.ReadFile(filepath.Join(dir, "topic"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		input, err := os.ReadFile(filepath.Join(dir, "input"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		out = append(out, goldenCase{format: format, name: d.Name(), dir: dir,
			topic: strings.TrimRight(string(topic), "\r\n"), input: input})
	}
	return out
}

func TestGolden(t *testing.T) {
	formats := Formats()
	// A folder without a registered format is a plugin that lost its init, or a typo.
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		// testdata/fuzz is where go test keeps the fuzz targets' corpus.
		if e.IsDir() && e.Name() != "fuzz" && !slices.Contains(formats, e.Name()) {
			t.Errorf("testdata/%s: no such format registered (have %v)", e.Name(), formats)
		}
	}
	for _, format := range formats {
		t.Run(format, func(t *testing.T) {
			cases := goldenCases(t, format)
			if len(cases) < 4 {
				t.Errorf("format %q has %d golden cases, want at least 4", format, len(cases))
			}
			dec, err := Lookup(format)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { runGolden(t, dec, c) })
			}
		})
	}
}

func runGolden(t *testing.T, dec Decoder, c goldenCase) {
	t.Helper()
	expectedPath := filepath.Join(c.dir, "expected")
	errorPath := filepath.Join(c.dir, "error")
	// A non-empty dst checks that decoders append and, on error, leave what was there.
	prior := []Sample{{Device: "prior", Name: "prior"}}
	got, err := dec.Decode(c.topic, c.input, prior)
	if len(got) < 1 || got[0].Name != "prior" {
		t.Fatalf("decoder dropped the samples already in dst: %+v", got)
	}
	if err != nil && len(got) != 1 {
		t.Errorf("on error the decoder returned %d extra samples, want none", len(got)-1)
	}
	got = got[1:]

	if *update {
		if err != nil {
			// Keep a hand-trimmed substring that still matches; write the whole message otherwise.
			if want, rerr := os.ReadFile(errorPath); rerr == nil && strings.Contains(err.Error(), strings.TrimSpace(string(want))) {
				return
			}
			writeFile(t, errorPath, []byte(err.Error()+"\n"))
			os.Remove(expectedPath)
			return
		}
		b, _ := json.MarshalIndent(toGolden(got), "", "  ")
		writeFile(t, expectedPath, append(b, '\n'))
		os.Remove(errorPath)
		return
	}

	if want, rerr := os.ReadFile(errorPath); rerr == nil {
		sub := strings.TrimSpace(string(want))
		switch {
		case err == nil:
			t.Fatalf("no error, want one containing %q; got samples %+v", sub, toGolden(got))
		case !errors.Is(err, ErrMalformed):
			t.Errorf("error %q does not wrap ErrMalformed", err)
		case !strings.Contains(err.Error(), sub):
			t.Errorf("error %q does not contain %q", err, sub)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	raw, rerr := os.ReadFile(expectedPath)
	if rerr != nil {
		t.Fatalf("case has neither expected nor error file: %v", rerr)
	}
	var want []goldenSample
	dec2 := json.NewDecoder(bytes.NewReader(raw))
	dec2.DisallowUnknownFields()
	if err := dec2.Decode(&want); err != nil {
		t.Fatalf("%s: %v", expectedPath, err)
	}
	gotG := toGolden(got)
	if !slices.Equal(gotG, want) {
		gb, _ := json.MarshalIndent(gotG, "", "  ")
		t.Errorf("samples differ from %s\ngot:\n%s", expectedPath, gb)
	}
	for _, s := range got {
		assertSample(t, s)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// assertSample checks the invariants every decoder promises for a sample it returns.
func assertSample(t testing.TB, s Sample) {
	t.Helper()
	if s.Device == "" {
		t.Fatalf("sample with an empty device: %+v", s)
	}
	if err := checkDevice(s.Device); err != nil {
		t.Fatalf("sample with a bad device: %v: %+v", err, s)
	}
	if !finite(s.Value) {
		t.Fatalf("sample with a value that is not finite: %+v", s)
	}
}
