package influx

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	hv "github.com/useda02/hyperviseur"
)

// Tag keys, in the sorted order InfluxDB keeps them: lines are written pre-sorted so the server need not sort.
const (
	tagCommune = "commune"
	tagDevice  = "device"
	tagEPCI    = "epci"
	tagFluid   = "fluid"
	tagSite    = "site"
	fieldValue = "value"
)

var errUnencodable = errors.New("cannot be written as an InfluxDB tag")

// appendLine appends the line protocol of r, without its newline, at millisecond precision:
//
//	<metric>,commune=…,device=…,epci=…,fluid=…,site=… value=<float> <ms>
//
// Empty tags are left out. Tag values are escaped as InfluxDB 1.x and 2.x parse them: a backslash before a
// comma, space or equals sign, and nothing else (a backslash is literal, except that it escapes the
// character after it when that is one of those three). Hence a tag value ending in a backslash, or holding a
// line break, cannot be written: the reading is refused rather than stored under another name.
func appendLine(buf []byte, r *hv.Reading) ([]byte, error) {
	switch {
	case r.Device == "":
		return buf, fmt.Errorf("reading of %s at %d: empty device", r.Metric, r.Time)
	case !r.Metric.Known():
		return buf, fmt.Errorf("%s: unknown metric %q", r.Device, r.Metric)
	case !hv.ValidValue(r.Value):
		return buf, fmt.Errorf("%s %s at %d: value %v", r.Device, r.Metric, r.Time, r.Value)
	}
	buf = appendMeasurement(buf, string(r.Metric))
	for _, tag := range [...]struct{ k, v string }{
		{tagCommune, r.Commune}, {tagDevice, r.Device}, {tagEPCI, r.EPCI}, {tagFluid, string(r.Fluid)},
		{tagSite, r.Site},
	} {
		if tag.v == "" {
			continue
		}
		buf = append(buf, ',')
		buf = append(buf, tag.k...)
		buf = append(buf, '=')
		var err error
		if buf, err = appendTag(buf, tag.v); err != nil {
			return buf, fmt.Errorf("%q %s: %s %q %w: %w", r.Device, r.Metric, tag.k, tag.v, errUnencodable, err)
		}
	}
	buf = append(buf, " "+fieldValue+"="...)
	buf = strconv.AppendFloat(buf, r.Value, 'g', -1, 64)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, r.Time, 10)
	return buf, nil
}

// appendTag appends an escaped tag value, checking in the same pass that it can be written.
func appendTag(buf []byte, v string) ([]byte, error) {
	escape, ascii := false, true
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ',' || c == ' ' || c == '=':
			escape = true
		case c == '\n' || c == '\r':
			return buf, errors.New("holds a line break")
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	switch {
	case v[len(v)-1] == '\\':
		return buf, errors.New("ends with a backslash")
	case !ascii && !utf8.ValidString(v):
		return buf, errors.New("is not valid UTF-8")
	case !escape:
		return append(buf, v...), nil
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == ',' || c == ' ' || c == '=' {
			buf = append(buf, '\\')
		}
		buf = append(buf, v[i])
	}
	return buf, nil
}

// appendMeasurement escapes commas and spaces (metric names, being known, never hold any).
func appendMeasurement(buf []byte, s string) []byte {
	if !strings.ContainsAny(s, ", ") {
		return append(buf, s...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ',' || c == ' ' {
			buf = append(buf, '\\')
		}
		buf = append(buf, s[i])
	}
	return buf
}
