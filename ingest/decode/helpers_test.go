package decode

import (
	"testing"
	"time"
)

func TestSenMLName(t *testing.T) {
	tests := []struct {
		name, bn, n, device, want string
	}{
		{"device URN base name", "urn:dev:ow:10e2073a01080063:", "temp", "d", "temp"},
		{"URN without trailing colon names the device", "urn:dev:ow:10e2073a01080063", "", "d", ""},
		{"URN with measurement in bn", "urn:dev:mac:0024befffe804ff1:voltage", "", "d", "voltage"},
		{"URN split between bn and n", "urn:dev:ow:10e2073a01080063", ":temp", "d", "temp"},
		{"URN in n", "", "urn:dev:imei:490154203237518:energy", "d", "energy"},
		{"device slash base name", "m1/", "energy", "m1", "energy"},
		{"path base name keeps only after the last separator", "site/m1/", "energy", "m1", "energy"},
		{"base name equal to device", "m1", "energy", "m1", "energy"},
		{"base name equal to device, separator in n", "m1", "/energy", "m1", "energy"},
		{"device prefix in n", "", "m1/energy", "m1", "energy"},
		{"other prefix in n is kept", "", "3303/0/5700", "m1", "3303/0/5700"},
		{"plain base name concatenates", "energy", "_total", "m1", "energy_total"},
		{"no base name", "", "power", "m1", "power"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := senmlName(tt.bn, tt.n, tt.device); got != tt.want {
				t.Errorf("senmlName(%q, %q, %q) = %q, want %q", tt.bn, tt.n, tt.device, got, tt.want)
			}
		})
	}
}

func TestUnixByMagnitude(t *testing.T) {
	want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		v    int64
		want time.Time
	}{
		{"seconds", 1767225600, want},
		{"milliseconds", 1767225600000, want},
		{"microseconds", 1767225600000000, want},
		{"nanoseconds", 1767225600000000000, want},
		{"largest seconds", 99999999999, time.Unix(99999999999, 0).UTC()},
		{"smallest milliseconds (1973)", 100000000000, time.UnixMilli(100000000000).UTC()},
		{"zero is the epoch", 0, time.Unix(0, 0).UTC()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unixInt(tt.v)
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("unixInt(%d) = %v, %v; want %v", tt.v, got, err, tt.want)
			}
			gotF, err := unixNumber(float64(tt.v))
			if err != nil || !gotF.Equal(tt.want.Truncate(time.Microsecond)) {
				t.Errorf("unixNumber(%d) = %v, %v; want %v", tt.v, gotF, err, tt.want)
			}
		})
	}
	if _, err := unixInt(-1); err == nil {
		t.Error("negative timestamp accepted")
	}
	if _, err := unixNumber(1e300); err == nil {
		t.Error("timestamp after year 9999 accepted")
	}
}
