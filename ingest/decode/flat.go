package decode

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Flat JSON: {"ts": …, "<name>": number, …} on hv/<device>/up. The time key is "ts", "time" or "timestamp"
// (at most one of them): an RFC 3339 string or a Unix number in s, ms, µs or ns chosen by magnitude
// (timeparse.go); absent means the receive time. Every other key is a sample: numbers as they are,
// booleans as 0/1; strings, null, objects and arrays are rejected naming the key, since a flat payload is
// meant to carry measurements only. There are no units: the key says the unit (energy_kwh) or the device's
// unit hints do. Samples come out sorted by name: JSON objects have no order.
func init() { Register("flat", DecoderFunc(decodeFlat)) }

// Reusing the map saves its buckets on every reading; keys are still allocated by encoding/json.
var flatPool = sync.Pool{New: func() any { m := make(map[string]jsonValue, 8); return &m }}

// maxPooledKeys keeps one huge object from pinning its map in the pool.
const maxPooledKeys = 64

var flatTimeKeys = [...]string{"ts", "time", "timestamp"}

func decodeFlat(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	device, err := topicDevice(topic)
	if err != nil {
		return dst, err
	}
	pooled := flatPool.Get().(*map[string]jsonValue)
	obj := *pooled
	defer func() {
		// encoding/json sets the map to nil for the payload null: such a map must not go back to the pool,
		// where the next decode would write into it.
		if obj != nil && len(obj) <= maxPooledKeys {
			clear(obj)
			*pooled = obj
			flatPool.Put(pooled)
		}
	}()
	if !scanFlatObject(payload, obj) {
		clear(obj)
		if err := json.Unmarshal(payload, &obj); err != nil {
			return dst, jsonError("flat", err)
		}
	}
	if obj == nil {
		return dst, fmt.Errorf("%w: flat: payload is null, not an object", ErrMalformed)
	}
	var ts time.Time
	timeKey := ""
	for _, k := range flatTimeKeys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		if timeKey != "" {
			return dst, fmt.Errorf("%w: flat: both %q and %q give the time", ErrMalformed, timeKey, k)
		}
		timeKey = k
		if ts, err = jsonTime(&v); err != nil {
			return dst, fmt.Errorf("%w: flat: key %q: %v", ErrMalformed, k, err)
		}
	}
	start := len(dst)
	for k, v := range obj {
		if k == "" {
			return dst[:start], fmt.Errorf("%w: flat: empty key", ErrMalformed)
		}
		if k == timeKey {
			continue
		}
		var f float64
		switch v.kind {
		case kindNumber:
			if !finite(v.num) {
				return dst[:start], fmt.Errorf("%w: flat: key %q: number out of range", ErrMalformed, clip(k))
			}
			f = v.num
		case kindBool:
			f = b2f(v.b)
		default:
			return dst[:start], fmt.Errorf("%w: flat: key %q: value is %s, not a number or boolean", ErrMalformed, clip(k), v.kind)
		}
		dst = append(dst, Sample{Device: device, Name: k, Value: f, Time: ts})
	}
	sortByName(dst[start:])
	return dst, nil
}

// jsonTime reads a timestamp that may be an RFC 3339 string or a Unix number; null counts as absent.
func jsonTime(v *jsonValue) (time.Time, error) {
	switch v.kind {
	case kindNull:
		return time.Time{}, nil
	case kindNumber:
		return unixNumber(v.num)
	case kindString:
		s, err := v.str()
		if err != nil {
			return time.Time{}, err
		}
		return parseRFC3339(s)
	}
	return time.Time{}, fmt.Errorf("timestamp is %s, not a string or number", v.kind)
}

// sortByName orders samples by name, then value, so that output does not depend on map order even when a
// flattened name repeats ({"a_b":1,"a":{"b":2}}).
func sortByName(s []Sample) {
	slices.SortFunc(s, func(a, b Sample) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
}
