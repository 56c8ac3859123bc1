package decode

import (
	"encoding/json"
	"fmt"
	"time"
)

// The Things Stack v3 uplink (v3/+/devices/+/up). The device is end_device_ids.device_id, the id the
// operator chose in TTS (dev_eui is not always set). The time is uplink_message.received_at (when the
// network server got it), else the envelope's received_at. Values come from
// uplink_message.decoded_payload (codec.go); without it the end device has no payload formatter.
func init() { Register("tts", DecoderFunc(decodeTTS)) }

type ttsUplink struct {
	EndDeviceIDs struct {
		DeviceID string `json:"device_id"`
	} `json:"end_device_ids"`
	ReceivedAt    string `json:"received_at"`
	UplinkMessage struct {
		DecodedPayload jsonValue `json:"decoded_payload"`
		ReceivedAt     string    `json:"received_at"`
	} `json:"uplink_message"`
}

func decodeTTS(topic string, payload []byte, dst []Sample) ([]Sample, error) {
	var up ttsUplink
	if err := json.Unmarshal(payload, &up); err != nil {
		return dst, jsonError("tts", err)
	}
	device := up.EndDeviceIDs.DeviceID
	if device == "" {
		return dst, fmt.Errorf("%w: tts: no end_device_ids.device_id", ErrMalformed)
	}
	if err := checkDevice(device); err != nil {
		return dst, fmt.Errorf("%w: tts: end_device_ids.device_id: %v", ErrMalformed, err)
	}
	var ts time.Time
	for _, f := range [...]struct{ name, v string }{
		{"uplink_message.received_at", up.UplinkMessage.ReceivedAt},
		{"received_at", up.ReceivedAt},
	} {
		if f.v == "" {
			continue
		}
		var err error
		if ts, err = parseRFC3339(f.v); err != nil {
			return dst, fmt.Errorf("%w: tts: %s: %v", ErrMalformed, f.name, err)
		}
		break
	}
	switch p := &up.UplinkMessage.DecodedPayload; p.kind {
	case kindAbsent, kindNull:
		return dst, fmt.Errorf("%w: tts: no uplink_message.decoded_payload: end device has no payload formatter", ErrMalformed)
	case kindComposite:
		return decodeCodecObject("tts", "decoded_payload", p.raw, device, ts, dst)
	default:
		return dst, fmt.Errorf("%w: tts: decoded_payload is %s, not an object", ErrMalformed, p.kind)
	}
}
