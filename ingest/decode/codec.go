package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// LoRaWAN codec output (ChirpStack "object", TTS "decoded_payload") is free-form JSON written by whoever wrote
// the device's codec. Numbers and booleans (0/1) become samples; nested objects flatten with "_"
// ({"meter":{"energy":1}} → meter_energy) and arrays with the index (channels_0); strings and null are
// skipped, as codecs mix labels and versions with measurements. Samples come out sorted by name.

// maxCodecDepth bounds nesting: each level is decoded again from its raw text, so depth costs
// depth × size, and no meter codec nests this deep.
const maxCodecDepth = 8

// decodeCodecObject appends the samples of one codec object. what names the field in errors.
func decodeCodecObject(format, what string, raw []byte, device string, ts time.Time, dst []Sample) ([]Sample, error) {
	if raw[0] != '{' {
		// Both network servers carry codec output as a protobuf Struct: never a bare array.
		return dst, fmt.Errorf("%w: %s: %s is an array, not an object", ErrMalformed, format, what)
	}
	start := len(dst)
	dst, err := flattenCodec(raw, "", 0, device, ts, dst)
	if err != nil {
		return dst[:start], fmt.Errorf("%w: %s: %s: %v", ErrMalformed, format, what, err)
	}
	sortByName(dst[start:])
	return dst, nil
}

func flattenCodec(raw []byte, prefix string, depth int, device string, ts time.Time, dst []Sample) ([]Sample, error) {
	if depth >= maxCodecDepth {
		return dst, fmt.Errorf("key %q: nested deeper than %d levels", clip(prefix), maxCodecDepth)
	}
	emit := func(name string, v *jsonValue) ([]Sample, error) {
		switch v.kind {
		case kindNumber:
			if !finite(v.num) {
				return dst, fmt.Errorf("key %q: number out of range", clip(name))
			}
			return append(dst, Sample{Device: device, Name: name, Value: v.num, Time: ts}), nil
		case kindBool:
			return append(dst, Sample{Device: device, Name: name, Value: b2f(v.b), Time: ts}), nil
		case kindComposite:
			return flattenCodec(v.raw, name, depth+1, device, ts, dst)
		}
		return dst, nil // strings and null carry no measurement
	}
	var err error
	if raw[0] == '[' {
		var arr []jsonValue
		if err := json.Unmarshal(raw, &arr); err != nil {
			return dst, err
		}
		for i := range arr {
			if dst, err = emit(join(prefix, strconv.Itoa(i)), &arr[i]); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
	var obj map[string]jsonValue
	if err := json.Unmarshal(raw, &obj); err != nil {
		return dst, err
	}
	for k, v := range obj {
		if k == "" {
			if prefix == "" {
				return dst, errors.New("empty key")
			}
			return dst, fmt.Errorf("empty key under %q", clip(prefix))
		}
		if dst, err = emit(join(prefix, k), &v); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "_" + key
}
