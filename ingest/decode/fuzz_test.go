package decode

import (
	"errors"
	"testing"
)

// fuzzDecoder seeds a fuzz target with the golden inputs of the given formats and checks what every
// decoder promises: no panic; either an error wrapping ErrMalformed with dst untouched, or samples with a
// valid device, a finite value and a representable time.
func fuzzDecoder(f *testing.F, format string, seeds ...string) {
	dec, err := Lookup(format)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range append([]string{format}, seeds...) {
		for _, c := range goldenCases(f, s) {
			f.Add(c.topic, c.input)
		}
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		prior := []Sample{{Device: "prior"}}
		got, err := dec.Decode(topic, payload, prior)
		if len(got) == 0 || got[0].Device != "prior" {
			t.Fatalf("samples already in dst lost: %+v", got)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("error with %d samples appended: %v", len(got)-1, err)
			}
			return
		}
		for _, s := range got[1:] {
			assertSample(t, s)
			if s.Name == "" && format != "senml" && format != "json" {
				t.Fatalf("empty name from %s: %+v", format, s)
			}
			if !s.Time.IsZero() && (s.Time.Year() < 1970 || s.Time.Year() > 9999) {
				t.Fatalf("time out of range: %+v", s)
			}
		}
	})
}

func FuzzSenML(f *testing.F)        { fuzzDecoder(f, "senml", "json") }
func FuzzFlat(f *testing.F)         { fuzzDecoder(f, "flat", "json") }
func FuzzJSON(f *testing.F)         { fuzzDecoder(f, "json", "senml", "flat") }
func FuzzLineProtocol(f *testing.F) { fuzzDecoder(f, "lineprotocol") }
func FuzzChirpStack(f *testing.F)   { fuzzDecoder(f, "chirpstack", "tts") }
func FuzzTTS(f *testing.F)          { fuzzDecoder(f, "tts", "chirpstack") }
