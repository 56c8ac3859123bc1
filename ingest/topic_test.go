package ingest

import "testing"

func TestTopicMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"hv/+/up", "hv/meter-1/up", true},
		{"hv/+/up", "hv/meter-1/down", false},
		{"hv/+/up", "hv/a/b/up", false},
		{"hv/lp", "hv/lp", true},
		{"hv/lp", "hv/lp/x", false},
		{"application/+/device/+/event/up", "application/7/device/0018b2/event/up", true},
		{"application/+/device/+/event/up", "application/7/device/0018b2/event/join", false},
		{"v3/+/devices/+/up", "v3/app@ttn/devices/dev-1/up", true},
		{"hv/#", "hv/a/b/c", true},
		{"hv/#", "hv", true},
		{"#", "anything/at/all", true},
		{"$share/hyperviseur/hv/+/up", "hv/x/up", true},
		{"hv/+", "hv/", true},
		{"hv/+/up", "hv//up", true},
	}
	for _, tt := range tests {
		if got := TopicMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}
