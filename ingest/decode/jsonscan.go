package decode

import "strconv"

// scanFlatObject fills obj from payload when payload is a JSON object in the simple form meters send: ASCII
// keys without escapes, values that are numbers, booleans, null or ASCII strings without escapes. It is
// several times cheaper than encoding/json (which validates the whole input, then decodes by reflection).
// Anything else, including every malformed payload, returns false with obj left for the caller to clear:
// the caller then decodes with encoding/json, which gives the precise error. FuzzScanFlatObject checks that
// whenever it returns true, obj is exactly what encoding/json would have produced.
func scanFlatObject(payload []byte, obj map[string]jsonValue) bool {
	i := skipSpace(payload, 0)
	if i >= len(payload) || payload[i] != '{' {
		return false
	}
	i = skipSpace(payload, i+1)
	if i < len(payload) && payload[i] == '}' {
		return skipSpace(payload, i+1) == len(payload)
	}
	for {
		key, j, ok := scanSimpleString(payload, i)
		if !ok {
			return false
		}
		i = skipSpace(payload, j)
		if i >= len(payload) || payload[i] != ':' {
			return false
		}
		i = skipSpace(payload, i+1)
		var v jsonValue
		if i, ok = scanSimpleValue(payload, i, &v); !ok {
			return false
		}
		obj[string(payload[key.start:key.end])] = v
		i = skipSpace(payload, i)
		if i >= len(payload) {
			return false
		}
		switch payload[i] {
		case ',':
			i = skipSpace(payload, i+1)
		case '}':
			return skipSpace(payload, i+1) == len(payload)
		default:
			return false
		}
	}
}

type span struct{ start, end int }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanSimpleString reads a string at b[i] made of printable ASCII without escapes; it returns the span of its
// contents and the index after the closing quote.
func scanSimpleString(b []byte, i int) (span, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return span{}, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return span{i + 1, j}, j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return span{}, j, false
		}
	}
	return span{}, len(b), false
}

// scanSimpleValue reads a number, true, false, null or simple string at b[i] into v.
func scanSimpleValue(b []byte, i int, v *jsonValue) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		s, j, ok := scanSimpleString(b, i)
		if !ok {
			return j, false
		}
		v.kind, v.raw = kindString, b[s.start-1:s.end+1]
		return j, true
	case c == 't':
		return literal(b, i, "true", v, kindBool, true)
	case c == 'f':
		return literal(b, i, "false", v, kindBool, false)
	case c == 'n':
		return literal(b, i, "null", v, kindNull, false)
	case c == '-' || (c >= '0' && c <= '9'):
		j, ok := scanNumber(b, i)
		if !ok {
			return j, false
		}
		// The grammar was checked above, so ParseFloat fails only on range, giving ±Inf as encoding/json's
		// path does (the caller rejects it as not finite).
		v.num, _ = strconv.ParseFloat(string(b[i:j]), 64)
		v.kind = kindNumber
		return j, true
	}
	return i, false
}

func literal(b []byte, i int, word string, v *jsonValue, kind jsonKind, val bool) (int, bool) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return i, false
	}
	v.kind, v.b = kind, val
	return i + len(word), true
}

// scanNumber checks the JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
