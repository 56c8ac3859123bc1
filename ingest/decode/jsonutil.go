package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// jsonKind is the JSON type of a value that was decoded lazily.
type jsonKind uint8

const (
	kindAbsent jsonKind = iota
	kindNull
	kindNumber
	kindBool
	kindString
	kindComposite // object or array
)

func (k jsonKind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindNumber:
		return "a number"
	case kindBool:
		return "a boolean"
	case kindString:
		return "a string"
	case kindComposite:
		return "an object or array"
	}
	return "absent"
}

// jsonScalar decodes any JSON value without allocating and without failing, remembering its kind, so the
// decoder can say which record and key were wrong (encoding/json would only name a Go type) and can tell an
// absent field from a zero.
type jsonScalar struct {
	num  float64 // for kindNumber; ±Inf when the literal overflows float64
	b    bool    // for kindBool
	kind jsonKind
}

func (v *jsonScalar) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case 'n':
		v.kind = kindNull
	case 't', 'f':
		v.kind, v.b = kindBool, b[0] == 't'
	case '"':
		v.kind = kindString
	case '{', '[':
		v.kind = kindComposite
	default:
		// encoding/json has validated the literal as a JSON number, which ParseFloat accepts; the only
		// error left is a range error, whose ±Inf result the caller rejects as not finite.
		v.num, _ = strconv.ParseFloat(string(b), 64)
		v.kind = kindNumber
	}
	return nil
}

// jsonValue is a jsonScalar that also keeps the raw text of strings (with their quotes) and composites. The
// text aliases the payload: it is valid only during the Decode call.
type jsonValue struct {
	jsonScalar
	raw []byte
}

func (v *jsonValue) UnmarshalJSON(b []byte) error {
	v.jsonScalar.UnmarshalJSON(b)
	if v.kind == kindString || v.kind == kindComposite {
		v.raw = b
	}
	return nil
}

// present reports a field that is there and not null.
func (v *jsonScalar) present() bool { return v.kind != kindAbsent && v.kind != kindNull }

// jsonError rewords an encoding/json error: its messages name Go types, which mean nothing to whoever
// wrote the payload.
func jsonError(format string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%w: %s: invalid JSON at byte %d: %s", ErrMalformed, format, syn.Offset,
			trimJSONPrefix(syn.Error()))
	case errors.As(err, &typ):
		where := typ.Field
		if where == "" {
			where = "payload"
		}
		return fmt.Errorf("%w: %s: %s: unexpected JSON %s", ErrMalformed, format, where, typ.Value)
	}
	return fmt.Errorf("%w: %s: %s", ErrMalformed, format, trimJSONPrefix(err.Error()))
}

func trimJSONPrefix(s string) string {
	const p = "json: "
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// str returns the text of a kindString value.
func (v *jsonValue) str() (string, error) {
	raw := v.raw
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}
