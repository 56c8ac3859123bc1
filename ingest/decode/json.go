package decode

import "fmt"

// "json" is what hv/+/up uses: a SenML pack is an array, a flat reading an object, so the first
// significant byte tells them apart without a second parse.
func init() { Register("json", DecoderFunc(decodeJSON)) }

func decodeJSON(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	for _, c := range payload {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '[':
			return decodeSenML(topic, payload, dst)
		case '{':
			return decodeFlat(topic, payload, dst)
		}
		return dst, fmt.Errorf("%w: json: payload starts with %q, neither a SenML array nor an object", ErrMalformed, c)
	}
	return dst, fmt.Errorf("%w: json: empty payload", ErrMalformed)
}
