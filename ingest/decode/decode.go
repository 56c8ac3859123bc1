// Package decode turns MQTT payloads into samples. Each payload format is a plugin: one file that registers a
// Decoder in the table below, with golden cases under testdata/<format>/<case>/{topic,input,expected}.
// Adding a format touches nothing else. Samples are then normalised to canonical metrics by Normalise.
package decode

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ErrMalformed marks a payload that cannot be decoded; the error text says why.
var ErrMalformed = errors.New("malformed payload")

// Sample is one value as the device sent it: a raw name and unit, before normalisation.
type Sample struct {
	Device string // from the topic, the envelope or a line-protocol tag; never empty
	Name   string // the key as sent: SenML n (base name stripped), a JSON or codec key, a field name
	Unit   string // as sent, "" when the payload gives none
	Value  float64
	Time   time.Time // zero when the payload has no timestamp: the receive time applies
}

// Decoder decodes one payload received on topic, appending its samples to dst.
// A decoder never panics; every failure is an error wrapping ErrMalformed with the reason.
type Decoder interface {
	Decode(topic string, payload []byte, dst []Sample) ([]Sample, error)
}

// DecoderFunc adapts a function to Decoder.
type DecoderFunc func(topic string, payload []byte, dst []Sample) ([]Sample, error)

// Decode calls f.
func (f DecoderFunc) Decode(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	return f(topic, payload, dst)
}

var (
	mu       sync.RWMutex
	decoders = map[string]Decoder{}
)

// Register adds a format to the table; it panics on a duplicate name (a programming error at init).
func Register(format string, d Decoder) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := decoders[format]; dup {
		panic("decode: format registered twice: " + format)
	}
	decoders[format] = d
}

// Lookup returns the decoder of a format.
func Lookup(format string) (Decoder, error) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := decoders[format]
	if !ok {
		return nil, fmt.Errorf("decode: unknown format %q (known: %v)", format, formatsLocked())
	}
	return d, nil
}

// Formats lists the registered format names, sorted.
func Formats() []string {
	mu.RLock()
	defer mu.RUnlock()
	return formatsLocked()
}

func formatsLocked() []string {
	out := make([]string, 0, len(decoders))
	for f := range decoders {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
