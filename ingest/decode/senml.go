package decode

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// SenML (RFC 8428), JSON representation. Base fields (bn, bt, bu, bv, bs, bver) apply to the record that
// carries them and every later one until overridden. Rules this decoder adds or chooses:
//   - Name is bn+n without the device part: a bn or name starting with urn:dev:<type>:<id> loses that URN,
//     any other bn loses everything up to its last ':' or '/', and a name starting with "<device>/" loses
//     that. A record naming only the device (RFC 8428 §5.1.1 "urn:dev:ow:…" with a unit) gets Name "",
//     which Normalise resolves by the unit.
//   - Time is bt+t in seconds; both absent or zero means "now" (zero Sample.Time: the receive time
//     applies); below 2**28 in magnitude it is relative to the decoder's clock (RFC 8428 §4.5.3).
//   - v+bv and vb (false/true → 0/1) are values; vs and vd are rejected: nothing canonical is a string.
//   - s (sum, in the unit × seconds) is used only when the record has no value: it becomes a sample of the
//     integral unit (W→J, m3/s→m3, l/s→l, unit-less stays), with bs added. A record with a value ignores s.
//   - ut (update time) is ignored; bver above 10 is rejected; must-understand fields (names ending in '_')
//     are not detected, encoding/json drops every unknown field.
//   - A record with neither n nor a value carries base fields only and yields no sample.
//   - One bad record rejects the whole pack: an MQTT message is acknowledged as a whole. An empty pack []
//     is valid and yields nothing; null is rejected.
//   - Field names match case-insensitively, as encoding/json does ("V" is v).
func init() { Register("senml", DecoderFunc(decodeSenML)) }

type senmlRecord struct {
	BN   string     `json:"bn"`
	BT   jsonScalar `json:"bt"`
	BU   string     `json:"bu"`
	BV   jsonScalar `json:"bv"`
	BS   jsonScalar `json:"bs"`
	BVer jsonScalar `json:"bver"`
	N    string     `json:"n"`
	U    string     `json:"u"`
	V    jsonScalar `json:"v"`
	VS   jsonScalar `json:"vs"`
	VB   jsonScalar `json:"vb"`
	VD   jsonScalar `json:"vd"`
	S    jsonScalar `json:"s"`
	T    jsonScalar `json:"t"`
}

// The record slice is the largest allocation of a pack; packs come in bursts of the same shape.
var senmlPool = sync.Pool{New: func() any { return new([]senmlRecord) }}

// maxPooledRecords keeps one huge pack from pinning its slice in the pool.
const maxPooledRecords = 64

// relativeLimit is 2**28 s (8.5 years): smaller SenML times are offsets from now.
const relativeLimit = 1 << 28

func decodeSenML(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	device, err := topicDevice(topic)
	if err != nil {
		return dst, err
	}
	pooled := senmlPool.Get().(*[]senmlRecord)
	recs := (*pooled)[:0]
	defer func() {
		if cap(recs) <= maxPooledRecords {
			clear(recs) // encoding/json reuses elements without zeroing them
			*pooled = recs[:0]
			senmlPool.Put(pooled)
		}
	}()
	if err := json.Unmarshal(payload, &recs); err != nil {
		return dst, jsonError("senml", err)
	}
	if recs == nil { // only null leaves a slice nil: [] makes it empty
		return dst, fmt.Errorf("%w: senml: payload is null, not an array", ErrMalformed)
	}
	start := len(dst)
	var (
		bn, bu     string
		bt, bv, bs float64
		clock      time.Time // read once per pack so that relative times of one pack share an origin
	)
	for i := range recs {
		r := &recs[i]
		// Records are numbered from 1 in errors, as a person counts them.
		fail := func(format string, args ...any) ([]Sample, error) {
			return dst[:start], fmt.Errorf("%w: senml record %d: %s", ErrMalformed, i+1, fmt.Sprintf(format, args...))
		}
		if r.BN != "" {
			bn = r.BN
		}
		if r.BU != "" {
			bu = r.BU
		}
		for _, b := range [...]struct {
			name string
			v    *jsonScalar
			dst  *float64
		}{{"bt", &r.BT, &bt}, {"bv", &r.BV, &bv}, {"bs", &r.BS, &bs}} {
			if b.v.present() {
				if b.v.kind != kindNumber || !finite(b.v.num) {
					return fail("%s is %s, not a finite number", b.name, kindOrInf(b.v))
				}
				*b.dst = b.v.num
			}
		}
		if r.BVer.present() && (r.BVer.kind != kindNumber || r.BVer.num > 10) {
			return fail("unsupported SenML version (bver)")
		}

		var values int
		for _, f := range [...]*jsonScalar{&r.V, &r.VS, &r.VB, &r.VD} {
			if f.present() {
				values++
			}
		}
		if values > 1 {
			return fail("more than one value field")
		}
		var value float64
		unit := r.U
		if unit == "" {
			unit = bu
		}
		switch {
		case r.V.present():
			if r.V.kind != kindNumber || !finite(r.V.num) {
				return fail("v is %s, not a finite number", kindOrInf(&r.V))
			}
			value = bv + r.V.num
		case r.VB.present():
			if r.VB.kind != kindBool {
				return fail("vb is %s, not a boolean", r.VB.kind)
			}
			value = b2f(r.VB.b)
		case r.VS.present():
			return fail("value is a string (vs)")
		case r.VD.present():
			return fail("value is data (vd)")
		case r.S.present():
			if r.S.kind != kindNumber || !finite(r.S.num) {
				return fail("s is %s, not a finite number", kindOrInf(&r.S))
			}
			u, ok := integralUnit(unit)
			if !ok {
				return fail("sum of unit %q has no supported integral unit", clip(unit))
			}
			value, unit = bs+r.S.num, u
		default:
			if r.N == "" {
				continue // base fields only
			}
			return fail("%q has no value", clip(r.N))
		}
		if !finite(value) {
			return fail("value with base value is not finite")
		}

		var ts time.Time
		if r.T.present() && (r.T.kind != kindNumber || !finite(r.T.num)) {
			return fail("t is %s, not a finite number", kindOrInf(&r.T))
		}
		switch sec := bt + r.T.num; {
		case sec == 0:
			// "now": leave the time zero so the receive time applies.
		case math.Abs(sec) < relativeLimit:
			if clock.IsZero() {
				clock = now()
			}
			ts = clock.Add(time.Duration(math.Round(sec*1e6)) * time.Microsecond).UTC()
		default:
			if ts, err = unixSeconds(sec); err != nil {
				return fail("%v", err)
			}
		}
		dst = append(dst, Sample{Device: device, Name: senmlName(bn, r.N, device), Unit: unit, Value: value, Time: ts})
	}
	return dst, nil
}

// senmlName resolves bn+n and strips the device part (see the package rules above). It concatenates only
// when both parts carry name characters, so the usual "device/" + "energy" costs nothing.
func senmlName(bn, n, device string) string {
	if bn != "" {
		if rest, ok := stripURN(bn); ok {
			return rest + n
		}
		if !strings.HasPrefix(bn, "urn:dev:") {
			if i := strings.LastIndexAny(bn, ":/"); i >= 0 {
				return bn[i+1:] + n
			}
		}
		if bn == device {
			return strings.TrimLeft(n, ":/")
		}
	}
	full := bn + n
	if rest, ok := stripURN(full); ok {
		return rest
	}
	if strings.HasPrefix(full, "urn:dev:") {
		return "" // the whole name is the device
	}
	if len(full) > len(device) && strings.HasPrefix(full, device) && (full[len(device)] == '/' || full[len(device)] == ':') {
		return full[len(device)+1:]
	}
	return full
}

// stripURN cuts a urn:dev:<type>:<id>: prefix (RFC 9039 device URNs; the id holds no ':'), reporting
// whether the separator after the id was there.
func stripURN(s string) (string, bool) {
	const p = "urn:dev:"
	if !strings.HasPrefix(s, p) {
		return "", false
	}
	rest := s[len(p):]
	for range 2 { // <type>: then <id>:
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return "", false
		}
		rest = rest[i+1:]
	}
	return rest, true
}

// integralUnit is the unit of a SenML sum: the record's unit times seconds.
func integralUnit(u string) (string, bool) {
	switch u {
	case "", "1":
		return u, true
	case "W":
		return "J", true
	case "m3/s":
		return "m3", true
	case "l/s", "L/s":
		return "l", true
	}
	return "", false
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// kindOrInf describes a value rejected as "not a finite number".
func kindOrInf(v *jsonScalar) string {
	if v.kind == kindNumber {
		return "out of range"
	}
	return v.kind.String()
}
