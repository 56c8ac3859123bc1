package lighting

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	hv "github.com/useda02/hyperviseur"
)

// LoRaWAN controllers cannot subscribe to hv/<device>/…: programs and commands reach them as downlinks queued
// on their network server, with the same JSON as an object the server's device-profile codec encodes
// (ChirpStack `object`, The Things Stack `decoded_payload`). The network server then tells whether the
// confirmed downlink was acknowledged by the device: that is the ack the service tracks (a LoRaWAN ack says
// the device received it; the reported level says whether it applied it).

// DefaultFPort is the LoRaWAN port programs and commands go out on when the registry does not say.
const DefaultFPort = 10

// Downlink kinds, the "kind" key of the object, so the device's codec knows which it encodes.
const (
	DownlinkProgram = "program"
	DownlinkCommand = "cmd"
)

// Topic filters the service subscribes to for downlink acknowledgements.
const (
	ChirpStackAckTopics = "application/+/device/+/event/ack"
	TTSAckTopics        = "v3/+/devices/+/down/ack"
	TTSNackTopics       = "v3/+/devices/+/down/nack"
	TTSFailedTopics     = "v3/+/devices/+/down/failed"
)

// ttsCorrelationPrefix marks the correlation id carrying the service's command id.
const ttsCorrelationPrefix = "hv:cmd:"

// ChirpStackDown is the body of a ChirpStack v4 downlink command (application/<app>/device/<devEui>/command/down).
// ID must be a UUID: ChirpStack keeps it as the queue item id and returns it in the ack event.
type ChirpStackDown struct {
	ID        string          `json:"id"`
	DevEUI    string          `json:"devEui"`
	Confirmed bool            `json:"confirmed"`
	FPort     int             `json:"fPort"`
	Object    json.RawMessage `json:"object"`
}

// ChirpStackAck is the part of a ChirpStack v4 ack event (application/<app>/device/<devEui>/event/ack) the
// service reads: which queue item, and whether the device acknowledged it (false: the downlink timed out).
type ChirpStackAck struct {
	DeviceInfo struct {
		DevEUI string `json:"devEui"`
	} `json:"deviceInfo"`
	QueueItemID  string `json:"queueItemId"`
	Acknowledged bool   `json:"acknowledged"`
}

// TTSDownPush is the body of a The Things Stack v3 downlink push (v3/<app>@<tenant>/devices/<id>/down/push).
type TTSDownPush struct {
	Downlinks []TTSDownlink `json:"downlinks"`
}

// TTSDownlink is one queued downlink; the service's command id travels in CorrelationIDs and comes back in
// the ack, nack or failed event.
type TTSDownlink struct {
	FPort          int             `json:"f_port"`
	DecodedPayload json.RawMessage `json:"decoded_payload"`
	Confirmed      bool            `json:"confirmed"`
	Priority       string          `json:"priority"`
	CorrelationIDs []string        `json:"correlation_ids"`
}

// TTSDownEvent is the part of a The Things Stack down/ack, down/nack or down/failed message the service reads.
type TTSDownEvent struct {
	EndDeviceIDs struct {
		DeviceID string `json:"device_id"`
	} `json:"end_device_ids"`
	CorrelationIDs []string `json:"correlation_ids"`
	DownlinkAck    *struct {
		CorrelationIDs []string `json:"correlation_ids"`
	} `json:"downlink_ack,omitempty"`
	DownlinkNack *struct {
		CorrelationIDs []string `json:"correlation_ids"`
	} `json:"downlink_nack,omitempty"`
	DownlinkFailed *struct {
		Downlink struct {
			CorrelationIDs []string `json:"correlation_ids"`
		} `json:"downlink"`
	} `json:"downlink_failed,omitempty"`
}

// Downlink is an encoded downlink: the topic and body to publish (QoS 1, not retained: the network server
// queues it).
type Downlink struct {
	Topic   string
	Payload []byte
}

// EncodeDownlink wraps a program or command object (kind DownlinkProgram or DownlinkCommand, body its JSON)
// for the device's network server. id is the service's id of the message (a UUID).
func EncodeDownlink(device string, dl *hv.Downlink, kind, id string, body []byte) (Downlink, error) {
	if dl == nil {
		return Downlink{}, fmt.Errorf("downlink to %s: %w: no LoRaWAN route", device, ErrInvalid)
	}
	object, err := withKind(kind, body)
	if err != nil {
		return Downlink{}, fmt.Errorf("downlink to %s: %w", device, err)
	}
	port := dl.FPort
	if port == 0 {
		port = DefaultFPort
	}
	var topic string
	var payload any
	switch dl.Network {
	case hv.NetworkChirpStack:
		topic = "application/" + dl.Application + "/device/" + device + "/command/down"
		payload = ChirpStackDown{ID: id, DevEUI: device, Confirmed: true, FPort: port, Object: object}
	case hv.NetworkTTS:
		topic = "v3/" + dl.Application + "/devices/" + device + "/down/push"
		payload = TTSDownPush{Downlinks: []TTSDownlink{{FPort: port, DecodedPayload: object, Confirmed: true,
			Priority: "NORMAL", CorrelationIDs: []string{ttsCorrelationPrefix + id}}}}
	default:
		return Downlink{}, fmt.Errorf("downlink to %s: %w: network %q", device, ErrInvalid, dl.Network)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return Downlink{}, fmt.Errorf("downlink to %s: %w", device, err)
	}
	return Downlink{Topic: topic, Payload: b}, nil
}

// withKind adds "kind" to a JSON object.
func withKind(kind string, body []byte) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrInvalid)
	}
	k, _ := json.Marshal(kind)
	m["kind"] = k
	return json.Marshal(m)
}

// DecodeDownlinkObject splits a downlink object back into its kind and the program or command JSON, as a
// device's codec would (the simulated LoRaWAN controllers use it).
func DecodeDownlinkObject(object []byte) (kind string, body []byte, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(object, &m); err != nil || m == nil {
		return "", nil, fmt.Errorf("downlink object: %w: not a JSON object", ErrInvalid)
	}
	if err := json.Unmarshal(m["kind"], &kind); err != nil || (kind != DownlinkProgram && kind != DownlinkCommand) {
		return "", nil, fmt.Errorf("downlink object: %w: kind must be %q or %q", ErrInvalid, DownlinkProgram, DownlinkCommand)
	}
	delete(m, "kind")
	body, err = json.Marshal(m)
	return kind, body, err
}

// ErrNotAck marks a network-server message that is not about a downlink of the service.
var ErrNotAck = errors.New("not a downlink acknowledgement of the service")

// DownlinkAck is a network server's word on a downlink: delivered (the device acknowledged it) or not.
type DownlinkAck struct {
	Device    string
	ID        string
	Delivered bool
}

// ParseDownlinkAck reads a ChirpStack ack event or a The Things Stack down/ack, nack or failed message.
func ParseDownlinkAck(topic string, payload []byte) (DownlinkAck, error) {
	parts := strings.Split(topic, "/")
	switch {
	case len(parts) == 6 && parts[0] == "application" && parts[2] == "device" && parts[4] == "event" && parts[5] == "ack":
		var a ChirpStackAck
		if err := json.Unmarshal(payload, &a); err != nil {
			return DownlinkAck{}, fmt.Errorf("chirpstack ack: %w: %v", ErrInvalid, err)
		}
		if a.QueueItemID == "" {
			return DownlinkAck{}, fmt.Errorf("chirpstack ack: %w: no queueItemId", ErrInvalid)
		}
		return DownlinkAck{Device: parts[3], ID: a.QueueItemID, Delivered: a.Acknowledged}, nil
	case len(parts) == 6 && parts[0] == "v3" && parts[2] == "devices" && parts[4] == "down":
		var e TTSDownEvent
		if err := json.Unmarshal(payload, &e); err != nil {
			return DownlinkAck{}, fmt.Errorf("tts %s: %w: %v", parts[5], ErrInvalid, err)
		}
		ids := e.CorrelationIDs
		switch {
		case e.DownlinkAck != nil:
			ids = append(ids, e.DownlinkAck.CorrelationIDs...)
		case e.DownlinkNack != nil:
			ids = append(ids, e.DownlinkNack.CorrelationIDs...)
		case e.DownlinkFailed != nil:
			ids = append(ids, e.DownlinkFailed.Downlink.CorrelationIDs...)
		}
		for _, c := range ids {
			if id, ok := strings.CutPrefix(c, ttsCorrelationPrefix); ok && id != "" {
				return DownlinkAck{Device: parts[3], ID: id, Delivered: parts[5] == "ack"}, nil
			}
		}
		return DownlinkAck{}, fmt.Errorf("tts %s: %w", parts[5], ErrNotAck)
	}
	return DownlinkAck{}, fmt.Errorf("%s: %w", topic, ErrNotAck)
}
