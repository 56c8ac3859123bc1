package decode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/useda02/hyperviseur"
)

// benchCases are the payloads BenchmarkDecode measures: the realistic golden case of each format, plus a
// 100-line line-protocol batch as a gateway sends it.
var benchCases = map[string]string{
	"senml":        "base-time-unit-value",
	"flat":         "unix-seconds",
	"json":         "senml-array",
	"lineprotocol": "multi-line-mixed",
	"chirpstack":   "typical",
	"tts":          "typical",
}

// BenchmarkDecode reports ns/op and allocs/op per payload, and the same per sample (ns/sample,
// allocs/sample): the service budget is per reading.
func BenchmarkDecode(b *testing.B) {
	type bench struct {
		name, format, topic string
		input               []byte
	}
	var benches []bench
	for _, format := range Formats() {
		name, ok := benchCases[format]
		if !ok {
			b.Fatalf("format %q has no benchmark case", format)
		}
		for _, c := range goldenCases(b, format) {
			if c.name == name {
				benches = append(benches, bench{format, format, c.topic, c.input})
			}
		}
	}
	var batch strings.Builder
	for i := range 100 {
		fmt.Fprintf(&batch, "lamp,device=lum-%03d,armoire=a7 dim=%di,power=%d.5,lamp_failure=f %d\n", i, i%101, 40+i%10, 1767225600000+int64(i))
	}
	benches = append(benches, bench{"lineprotocol-batch100", "lineprotocol", "hv/lp", []byte(batch.String())})

	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			dec, err := Lookup(bc.format)
			if err != nil {
				b.Fatal(err)
			}
			dst, err := dec.Decode(bc.topic, bc.input, nil)
			if err != nil || len(dst) == 0 {
				b.Fatalf("benchmark payload does not decode: %v", err)
			}
			n := len(dst)
			allocs := testing.AllocsPerRun(100, func() { dst, _ = dec.Decode(bc.topic, bc.input, dst[:0]) })
			b.SetBytes(int64(len(bc.input)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				dst, _ = dec.Decode(bc.topic, bc.input, dst[:0])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sample")
			b.ReportMetric(allocs/float64(n), "allocs/sample")
		})
	}
}

func BenchmarkNormalise(b *testing.B) {
	m := &Mapper{Profiles: map[string]map[string]hyperviseur.KeyMap{
		"countis-e": {"ea": {Metric: hyperviseur.EnergyKWh, Unit: "Wh"}},
	}}
	dev := &hyperviseur.Device{ID: "m1", Profile: "countis-e"}
	for _, bc := range []struct {
		name string
		s    Sample
	}{
		{"canonical", Sample{Name: "energy_kwh", Value: 1}},
		{"alias-unit", Sample{Name: "Energy", Unit: "Wh", Value: 1}},
		{"profile-key", Sample{Name: "ea", Value: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := m.Normalise(bc.s, dev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
