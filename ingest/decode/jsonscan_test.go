package decode

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestScanFlatObject(t *testing.T) {
	tests := []struct {
		in   string
		fast bool // taken by the fast path (else encoding/json decides)
	}{
		{`{"ts":1767225600,"energy_kwh":1234.5,"power_w":-3e2,"ok":true,"x":null,"t":"2026-01-01T00:00:00Z"}`, true},
		{` { } `, true},
		{`{"a":1,"a":2}`, true}, // duplicate: last wins, as in encoding/json
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":.5}`, false},
		{`{"a":1e}`, false},
		{`{"a":-}`, false},
		{`{"a":1,}`, false},
		{`{"a":1}x`, false},
		{`{"a\u0062":1}`, false},
		{`{"é":1}`, false},
		{`{"a":{"b":1}}`, false},
		{`{"a":[1]}`, false},
		{`{"a":tru}`, false},
		{`{"a":"x\"y"}`, false},
		{`[1]`, false},
		{`null`, false},
		{`{"a":1`, false},
	}
	for _, tt := range tests {
		obj := map[string]jsonValue{}
		if got := scanFlatObject([]byte(tt.in), obj); got != tt.fast {
			t.Errorf("scanFlatObject(%s) = %v, want %v", tt.in, got, tt.fast)
			continue
		}
		if tt.fast {
			assertSameAsStdlib(t, []byte(tt.in), obj)
		}
	}
}

func assertSameAsStdlib(t *testing.T, in []byte, fast map[string]jsonValue) {
	t.Helper()
	var std map[string]jsonValue
	if err := json.Unmarshal(in, &std); err != nil {
		t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", in, err)
	}
	if len(std) == 0 && len(fast) == 0 {
		return
	}
	if !reflect.DeepEqual(fast, std) {
		t.Fatalf("fast path and encoding/json disagree on %q:\n fast %+v\n std  %+v", in, fast, std)
	}
}

// FuzzScanFlatObject: whatever the fast path accepts, encoding/json accepts with the same result.
func FuzzScanFlatObject(f *testing.F) {
	for _, s := range []string{`{"ts":1767225600,"a":1.5e3,"b":true,"c":null,"d":"x"}`, `{}`, `{"a":-0.0}`, `{"a":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		obj := map[string]jsonValue{}
		if scanFlatObject(in, obj) {
			assertSameAsStdlib(t, in, obj)
		}
	})
}

// TestFlatAfterNullPayload: the payload null once made the pooled map nil, and the next decode panicked
// writing into it (found by the fuzz smoke run in CI).
func TestFlatAfterNullPayload(t *testing.T) {
	for range 3 {
		if _, err := decodeFlat("hv/d/up", []byte("null"), nil); err == nil {
			t.Fatal("null payload accepted")
		}
		s, err := decodeFlat("hv/d/up", []byte(`{"power_w":5}`), nil)
		if err != nil || len(s) != 1 || s[0].Value != 5 {
			t.Fatalf("decode after null: %v %v", s, err)
		}
	}
}
