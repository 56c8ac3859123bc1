package decode

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// InfluxDB line protocol on hv/lp, one or many lines:
//
//	measurement[,tag=v…] field=v[,field=v…] [timestamp]
//
// Rules (a hand-written parser: this is the hot path of bulk gateways):
//   - The device is the "device" tag, required on every line; the optional "unit" tag is the unit of every
//     field of the line. Other tags are ignored: site and commune come from the registry.
//   - Each numeric field is a sample named after the field key, except a field named "value", which takes
//     the measurement's name (energy,device=m1 value=12 → energy).
//   - Floats, integers (12i), unsigned (12u) and booleans (t, T, true, True, TRUE, f… → 0/1) are values.
//     NaN, Inf, hexadecimal and out-of-range numbers are rejected naming the field. String fields ("…") are
//     skipped, not rejected: firmware versions and states ride along with measurements.
//   - The timestamp is an integer whose unit is chosen by magnitude, like every other decoder (timeparse.go):
//     below 1e11 seconds, below 1e14 ms, below 1e17 µs, else ns (the line-protocol default). No precision
//     parameter exists on MQTT, and a magnitude rule cannot be misconfigured. Absent: the receive time.
//   - Escapes as InfluxDB: "\," and "\ " in measurements; "\,", "\=" and "\ " in tag keys, tag values and
//     field keys; "\"" and "\\" in string fields; "\\" is one backslash; a backslash before anything else is
//     literal.
//   - Blank lines and lines starting with '#' are skipped; leading blanks and CRLF line ends are tolerated.
//   - One bad line rejects the whole payload (the error names the line): an MQTT message is acknowledged
//     as a whole, and a partial write would be replayed on redelivery.
func init() { Register("lineprotocol", DecoderFunc(decodeLineProtocol)) }

func decodeLineProtocol(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	if !utf8.Valid(payload) {
		return dst, fmt.Errorf("%w: line protocol: not valid UTF-8", ErrMalformed)
	}
	// One copy of the payload; names and devices are substrings of it, so an unescaped line costs no
	// further allocation.
	p := lpParser{s: string(payload), line: 1}
	start := len(dst)
	var err error
	for p.i < len(p.s) {
		if dst, err = p.parseLine(dst); err != nil {
			return dst[:start], err
		}
	}
	return dst, nil
}

type lpParser struct {
	s       string
	i       int
	line    int    // line number of s[i], from 1
	lastDev string // last device id that passed checkDevice
}

func (p *lpParser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line protocol line %d: %s", ErrMalformed, line, fmt.Sprintf(format, args...))
}

// endOfLine reports whether s[i] ends a line: '\n', the end of the payload, or the '\r' of a CRLF.
func (p *lpParser) endOfLine(i int) bool {
	return i >= len(p.s) || p.s[i] == '\n' || (p.s[i] == '\r' && (i+1 == len(p.s) || p.s[i+1] == '\n'))
}

// nextLine moves past the end of the current line.
func (p *lpParser) nextLine() {
	if p.i < len(p.s) && p.s[p.i] == '\r' {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '\n' {
		p.i++
		p.line++
	}
}

// parseLine parses one line (or skips a blank line or comment), appending its samples.
func (p *lpParser) parseLine(dst []Sample) ([]Sample, error) {
	s := p.s
	for p.i < len(s) && (s[p.i] == ' ' || s[p.i] == '\t') {
		p.i++
	}
	if p.endOfLine(p.i) {
		p.nextLine()
		return dst, nil
	}
	if s[p.i] == '#' {
		for p.i < len(s) && s[p.i] != '\n' {
			p.i++
		}
		p.nextLine()
		return dst, nil
	}
	line := p.line
	first := len(dst)

	measurement, next := p.name(false)
	if measurement == "" {
		return dst, p.errorf(line, "empty measurement")
	}
	var device, unit string
	for next == ',' {
		var key, val string
		if key, next = p.name(true); next != '=' || key == "" {
			return dst, p.errorf(line, "measurement %q: tag without key=value", clip(measurement))
		}
		if val, next = p.name(true); val == "" {
			return dst, p.errorf(line, "tag %q: empty value", clip(key))
		}
		if next == '=' {
			return dst, p.errorf(line, "tag %q: unescaped '=' in value", clip(key))
		}
		switch key {
		case "device":
			device = val
		case "unit":
			unit = val
		}
	}
	if next != ' ' {
		return dst, p.errorf(line, "measurement %q: no fields", clip(measurement))
	}
	if device == "" {
		return dst, p.errorf(line, "measurement %q: no device tag", clip(measurement))
	}
	if device != p.lastDev {
		if err := checkDevice(device); err != nil {
			return dst, p.errorf(line, "device tag: %v", err)
		}
		p.lastDev = device
	}
	for p.i < len(s) && s[p.i] == ' ' {
		p.i++
	}

	for {
		key, next := p.name(true)
		switch {
		case key == "" && next == 0:
			return dst, p.errorf(line, "measurement %q: no fields", clip(measurement))
		case key == "":
			return dst, p.errorf(line, "measurement %q: empty field key", clip(measurement))
		case next != '=':
			return dst, p.errorf(line, "field %q: no '=' value", clip(key))
		}
		v, isValue, err := p.fieldValue()
		if err != nil {
			return dst, p.errorf(line, "field %q: %v", clip(key), err)
		}
		if isValue {
			name := key
			if key == "value" {
				name = measurement
			}
			dst = append(dst, Sample{Device: device, Name: name, Unit: unit, Value: v})
		}
		if p.i < len(s) && s[p.i] == ',' {
			p.i++
			continue
		}
		break
	}

	if p.i < len(s) && s[p.i] == ' ' {
		for p.i < len(s) && s[p.i] == ' ' {
			p.i++
		}
		if !p.endOfLine(p.i) {
			j := p.i
			for j < len(s) && s[j] != ' ' && !p.endOfLine(j) {
				j++
			}
			n, err := strconv.ParseInt(s[p.i:j], 10, 64)
			if err != nil {
				return dst, p.errorf(line, "timestamp %q is not an integer", clip(s[p.i:j]))
			}
			ts, err := unixInt(n)
			if err != nil {
				return dst, p.errorf(line, "%v", err)
			}
			for k := first; k < len(dst); k++ {
				dst[k].Time = ts
			}
			for p.i = j; p.i < len(s) && s[p.i] == ' '; p.i++ {
			}
		}
	}
	if !p.endOfLine(p.i) {
		return dst, p.errorf(line, "unexpected %q after the fields", clip(s[p.i:min(p.i+16, len(s))]))
	}
	p.nextLine()
	return dst, nil
}

// name scans a measurement (tagLike false) or a tag key, tag value or field key (tagLike true) and returns
// it unescaped with the byte that ended it (0 at the end of the line), leaving p.i on that byte.
func (p *lpParser) name(tagLike bool) (string, byte) {
	s := p.s
	start, escaped := p.i, false
	i := p.i
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] != '\n' && s[i+1] != '\r' {
			escaped = true
			i++
			continue
		}
		if c == ',' || c == ' ' || c == '\n' || c == '\r' || (tagLike && c == '=') {
			break
		}
	}
	raw := s[start:i]
	var end byte
	if i < len(s) {
		end = s[i]
		if end == ',' || end == '=' || end == ' ' {
			i++ // the separator belongs to the element just read
		}
	}
	p.i = i
	if end == '\n' || end == '\r' {
		end = 0
	}
	if !escaped {
		return raw, end
	}
	return unescape(raw, tagLike), end
}

// unescape resolves backslashes; a backslash before a character that needs no escape stays literal.
func unescape(raw string, tagLike bool) string {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) {
			switch n := raw[i+1]; {
			case n == ',' || n == ' ' || n == '\\' || (tagLike && n == '='):
				b.WriteByte(n)
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// fieldValue parses the value after "key=", leaving p.i on the byte after it. isValue is false for a
// string field, which is skipped.
func (p *lpParser) fieldValue() (v float64, isValue bool, err error) {
	s := p.s
	if p.i < len(s) && s[p.i] == '"' {
		for i := p.i + 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i++; i < len(s) && s[i] == '\n' {
					p.line++
				}
			case '\n':
				p.line++
			case '"':
				p.i = i + 1
				if p.i < len(s) && s[p.i] != ',' && s[p.i] != ' ' && !p.endOfLine(p.i) {
					return 0, false, fmt.Errorf("unexpected %q after the string", s[p.i])
				}
				return 0, false, nil
			}
		}
		return 0, false, fmt.Errorf("unterminated string")
	}
	start := p.i
	for p.i < len(s) && s[p.i] != ',' && s[p.i] != ' ' && !p.endOfLine(p.i) {
		p.i++
	}
	tok := s[start:p.i]
	if tok == "" {
		return 0, false, fmt.Errorf("empty value")
	}
	switch tok {
	case "t", "T", "true", "True", "TRUE":
		return 1, true, nil
	case "f", "F", "false", "False", "FALSE":
		return 0, true, nil
	}
	switch last := tok[len(tok)-1]; last {
	case 'i':
		n, err := strconv.ParseInt(tok[:len(tok)-1], 10, 64)
		if err != nil || !decimal(tok[:len(tok)-1], false) {
			return 0, false, fmt.Errorf("%q is not an integer", clip(tok))
		}
		return float64(n), true, nil
	case 'u':
		n, err := strconv.ParseUint(tok[:len(tok)-1], 10, 64)
		if err != nil || !decimal(tok[:len(tok)-1], false) {
			return 0, false, fmt.Errorf("%q is not an unsigned integer", clip(tok))
		}
		return float64(n), true, nil
	}
	f, err := strconv.ParseFloat(tok, 64)
	rangeErr := isRangeErr(err)
	switch {
	case (err == nil || rangeErr) && !finite(f):
		return 0, false, fmt.Errorf("%q is not a finite number", clip(tok))
	case err != nil && !rangeErr, !decimal(tok, true):
		return 0, false, fmt.Errorf("%q is not a number", clip(tok))
	}
	return f, true, nil // an underflow (range error, finite result) is as close to zero as float64 gets
}

// decimal reports whether tok is written with decimal digits only (and, for floats, a point and an
// exponent): strconv would also take hexadecimal, underscores and "Inf", which line protocol does not.
func decimal(tok string, float bool) bool {
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c >= '0' && c <= '9', c == '-', c == '+':
		case float && (c == '.' || c == 'e' || c == 'E'):
		default:
			return false
		}
	}
	return true
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}
