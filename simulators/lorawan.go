package simulators

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// The fleet's LoRaWAN lighting controllers cannot subscribe to hv/<device>/…: the service queues their
// programs and commands as downlinks on their network server (lighting.EncodeDownlink), and the server
// tells it whether the device acknowledged them. The simulator plays both the network servers, under the
// fleet's applications, and the controllers behind them.
//
// Only the network server's word comes back: a LoRaWAN ack says the device received the downlink, not
// whether it applied it, so a program or command the controller refuses (stale, expired, malformed) is
// still acknowledged, and the controller's own "rejected" ack is dropped. The service can only tell from
// the reported level. Class A latency is not simulated: a downlink is applied and acknowledged on receipt,
// not at the device's next uplink.

// Downlink topic filters of the simulated network servers: the fleet's applications only.
var (
	chirpStackDownTopics = "application/" + fleet.ChirpStackApplication + "/device/+/command/down"
	ttsDownTopics        = "v3/" + fleet.TTSApplication + "/devices/+/down/push"
)

// chirpStackAckEvent is a ChirpStack v4 ack event (application/<app>/device/<devEui>/event/ack), the fields
// a real one carries that a simulated device can know.
type chirpStackAckEvent struct {
	DeduplicationID string `json:"deduplicationId"`
	Time            string `json:"time"`
	DeviceInfo      struct {
		ApplicationID     string `json:"applicationId"`
		DeviceProfileName string `json:"deviceProfileName"`
		DeviceName        string `json:"deviceName"`
		DevEUI            string `json:"devEui"`
	} `json:"deviceInfo"`
	QueueItemID  string `json:"queueItemId"`
	Acknowledged bool   `json:"acknowledged"`
	FCntDown     uint32 `json:"fCntDown"`
}

// ttsDownAck is a The Things Stack v3 down/ack message (v3/<app>@<tenant>/devices/<id>/down/ack): the
// acknowledged downlink, with its correlation ids, which carry the service's id.
type ttsDownAck struct {
	EndDeviceIDs struct {
		DeviceID       string `json:"device_id"`
		ApplicationIDs struct {
			ApplicationID string `json:"application_id"`
		} `json:"application_ids"`
	} `json:"end_device_ids"`
	CorrelationIDs []string `json:"correlation_ids"`
	ReceivedAt     string   `json:"received_at"`
	DownlinkAck    struct {
		FPort          int             `json:"f_port"`
		FCnt           uint32          `json:"f_cnt"`
		DecodedPayload json.RawMessage `json:"decoded_payload"`
		Confirmed      bool            `json:"confirmed"`
		Priority       string          `json:"priority"`
		CorrelationIDs []string        `json:"correlation_ids"`
	} `json:"downlink_ack"`
}

// HandleDownlink plays the network server and the LoRaWAN controller behind it for a downlink the service
// published at time at (simulated clock): a ChirpStack command/down or a The Things Stack down/push. The
// controller applies the program or command it carries (ApplyProgram, ApplyCommand), and HandleDownlink
// returns what the network server then publishes: for each confirmed downlink, a ChirpStack ack event
// (queueItemId, the downlink's id; acknowledged) or a The Things Stack down/ack (the downlink's correlation
// ids). An unconfirmed downlink gets none, as on the real servers.
//
// A topic that is not a downlink to a LoRaWAN controller of the fleet, through its own network server and
// application, gives nothing. A body the network server could not queue (malformed, an object the codec
// cannot encode) gives no ack and an error. A downlink the controller refuses is acked all the same (see
// above) and err says why, for the log.
func (r *Runner) HandleDownlink(topic string, payload []byte, at time.Time) ([]Message, error) {
	parts := strings.Split(topic, "/")
	if len(parts) != 6 {
		return nil, nil
	}
	switch {
	case parts[0] == "application" && parts[2] == "device" && parts[4] == "command" && parts[5] == "down":
		d := r.loraController(parts[3], hv.NetworkChirpStack, parts[1])
		if d == nil {
			return nil, nil
		}
		return r.chirpStackDown(d, payload, at)
	case parts[0] == "v3" && parts[2] == "devices" && parts[4] == "down" && parts[5] == "push":
		d := r.loraController(parts[3], hv.NetworkTTS, parts[1])
		if d == nil {
			return nil, nil
		}
		return r.ttsDown(d, payload, at)
	}
	return nil, nil
}

// loraController is the fleet's lighting controller device reached through network server network under
// application app; nil for any other.
func (r *Runner) loraController(device, network, app string) *simDevice {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[device]
	if !ok || d.Kind != hv.DeviceLightingController || d.Downlink == nil ||
		d.Downlink.Network != network || d.Downlink.Application != app {
		return nil
	}
	return d
}

func (r *Runner) chirpStackDown(d *simDevice, payload []byte, at time.Time) ([]Message, error) {
	var down lighting.ChirpStackDown
	if err := json.Unmarshal(payload, &down); err != nil {
		return nil, fmt.Errorf("chirpstack downlink to %s: %w: %v", d.ID, lighting.ErrInvalid, err)
	}
	switch {
	case down.ID == "":
		// ChirpStack would make one up, which the service could not match: the service always sets it.
		return nil, fmt.Errorf("chirpstack downlink to %s: %w: no id", d.ID, lighting.ErrInvalid)
	case down.DevEUI != "" && !strings.EqualFold(down.DevEUI, d.ID):
		return nil, fmt.Errorf("chirpstack downlink to %s: %w: body names devEui %q", d.ID, lighting.ErrInvalid, down.DevEUI)
	}
	fcnt, err := r.receive(d.ID, down.Object, at)
	if errors.Is(err, errNotQueued) {
		return nil, fmt.Errorf("chirpstack downlink %s to %s: %w", down.ID, d.ID, err)
	}
	if err != nil {
		err = fmt.Errorf("chirpstack downlink %s to %s: %w", down.ID, d.ID, err)
	}
	if !down.Confirmed {
		return nil, err
	}
	var e chirpStackAckEvent
	ts := at.UTC().Format(time.RFC3339Nano)
	e.DeduplicationID = fmt.Sprintf("%016x", hash(d.ID+down.ID+ts))
	e.Time = ts
	e.DeviceInfo.ApplicationID = d.Downlink.Application
	e.DeviceInfo.DeviceProfileName = d.Profile
	e.DeviceInfo.DeviceName = d.ID
	e.DeviceInfo.DevEUI = d.ID
	e.QueueItemID, e.Acknowledged, e.FCntDown = down.ID, true, fcnt
	b, merr := json.Marshal(e)
	if merr != nil {
		return nil, fmt.Errorf("chirpstack ack of %s: %w", d.ID, merr)
	}
	topic := "application/" + d.Downlink.Application + "/device/" + d.ID + "/event/ack"
	return []Message{{Topic: topic, Payload: b, Device: d.ID}}, err
}

func (r *Runner) ttsDown(d *simDevice, payload []byte, at time.Time) ([]Message, error) {
	var push lighting.TTSDownPush
	if err := json.Unmarshal(payload, &push); err != nil {
		return nil, fmt.Errorf("tts downlink to %s: %w: %v", d.ID, lighting.ErrInvalid, err)
	}
	var out []Message
	var errs []error
	for i, dl := range push.Downlinks {
		fcnt, err := r.receive(d.ID, dl.DecodedPayload, at)
		if err != nil {
			errs = append(errs, fmt.Errorf("tts downlink %d of %d to %s %v: %w", i+1, len(push.Downlinks), d.ID, dl.CorrelationIDs, err))
		}
		if errors.Is(err, errNotQueued) || !dl.Confirmed {
			continue
		}
		var e ttsDownAck
		e.EndDeviceIDs.DeviceID = d.ID
		e.EndDeviceIDs.ApplicationIDs.ApplicationID = ttsApplicationID(d.Downlink.Application)
		e.CorrelationIDs = dl.CorrelationIDs
		e.ReceivedAt = at.UTC().Format(time.RFC3339Nano)
		a := &e.DownlinkAck
		a.FPort, a.FCnt, a.DecodedPayload, a.Confirmed = dl.FPort, fcnt, dl.DecodedPayload, true
		a.Priority, a.CorrelationIDs = dl.Priority, dl.CorrelationIDs
		b, err := json.Marshal(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("tts ack of %s: %w", d.ID, err))
			continue
		}
		out = append(out, Message{Topic: "v3/" + d.Downlink.Application + "/devices/" + d.ID + "/down/ack", Payload: b, Device: d.ID})
	}
	return out, errors.Join(errs...)
}

// errNotQueued marks a downlink the network server could not encode for the device, so never sent.
var errNotQueued = errors.New("not queued: the device codec cannot encode the object")

// receive hands controller device the downlink object it received at time at and returns the downlink
// frame counter it came with. The error wraps errNotQueued when the object is not a program or command,
// which the device's codec would have refused to encode; otherwise it is the controller's refusal, which
// does not stop the network server's ack.
func (r *Runner) receive(device string, object []byte, at time.Time) (uint32, error) {
	kind, body, err := lighting.DecodeDownlinkObject(object)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errNotQueued, err)
	}
	switch kind {
	case lighting.DownlinkProgram:
		_, err = r.ApplyProgram(device, body, at) // its ack has no way back
	default:
		var b []byte
		if b, err = r.ApplyCommand(device, body, at); err == nil {
			var a lighting.Ack
			if json.Unmarshal(b, &a) == nil && a.Status == lighting.AckRejected {
				err = fmt.Errorf("command %q refused: %s", a.ID, a.Reason)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, cerr := r.controllerOf(device)
	if cerr != nil {
		return 0, cerr
	}
	d.ctl.fCntDown++
	return d.ctl.fCntDown, err
}
