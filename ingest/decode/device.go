package decode

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxDeviceLen bounds a device id: it becomes a topic segment, a series label and a registry key.
const maxDeviceLen = 128

// checkDevice rejects ids that could not be used back as an MQTT topic segment (hv/<device>/cmd) or that
// would poison labels: empty, too long, wildcards, '/', control characters, invalid UTF-8. It returns a
// bare reason; callers wrap it with ErrMalformed and where the id came from.
func checkDevice(id string) error {
	if id == "" {
		return errors.New("empty device id")
	}
	if len(id) > maxDeviceLen {
		return fmt.Errorf("device id longer than %d bytes", maxDeviceLen)
	}
	ascii := true
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("device id %q has a control character", clip(id))
		case c == '/' || c == '+' || c == '#':
			return fmt.Errorf("device id %q contains %q", clip(id), c)
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.ValidString(id) {
		return fmt.Errorf("device id %q is not valid UTF-8", clip(id))
	}
	return nil
}

// topicDevice returns the device of a hv/<device>/up topic: the segment before the last, so that a prefix
// added in front (a bridge, a shared subscription) does not change it.
func topicDevice(topic string) (string, error) {
	last := strings.LastIndexByte(topic, '/')
	if last < 0 {
		return "", fmt.Errorf("%w: topic %q has no device segment", ErrMalformed, clip(topic))
	}
	dev := topic[strings.LastIndexByte(topic[:last], '/')+1 : last]
	if err := checkDevice(dev); err != nil {
		return "", fmt.Errorf("%w: topic %q: %v", ErrMalformed, clip(topic), err)
	}
	return dev, nil
}
