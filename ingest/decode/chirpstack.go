package decode

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ChirpStack v4 uplink event (application/+/device/+/event/up). The device is deviceInfo.devEui in lower
// case, whatever the topic says: the envelope is what the network server vouches for. The time is "time"
// (when the gateway received it) if present, else the receive time. Values come from "object", the codec
// output (codec.go); without it the device profile has no codec and there is nothing to store, which is
// worth an error so the operator sees it.
func init() { Register("chirpstack", DecoderFunc(decodeChirpStack)) }

type chirpstackUplink struct {
	Time       string `json:"time"`
	DeviceInfo struct {
		DevEUI string `json:"devEui"`
	} `json:"deviceInfo"`
	Object jsonValue `json:"object"`
}

func decodeChirpStack(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	var up chirpstackUplink
	if err := json.Unmarshal(payload, &up); err != nil {
		return dst, jsonError("chirpstack", err)
	}
	device := up.DeviceInfo.DevEUI
	if device == "" {
		return dst, fmt.Errorf("%w: chirpstack: no deviceInfo.devEui", ErrMalformed)
	}
	if err := checkDevice(device); err != nil {
		return dst, fmt.Errorf("%w: chirpstack: deviceInfo.devEui: %v", ErrMalformed, err)
	}
	device = strings.ToLower(device)
	var ts time.Time
	if up.Time != "" {
		var err error
		if ts, err = parseRFC3339(up.Time); err != nil {
			return dst, fmt.Errorf("%w: chirpstack: time: %v", ErrMalformed, err)
		}
	}
	switch up.Object.kind {
	case kindAbsent, kindNull:
		return dst, fmt.Errorf("%w: chirpstack: no decoded object: device profile has no codec", ErrMalformed)
	case kindComposite:
		return decodeCodecObject("chirpstack", "object", up.Object.raw, device, ts, dst)
	}
	return dst, fmt.Errorf("%w: chirpstack: object is %s, not an object", ErrMalformed, up.Object.kind)
}
