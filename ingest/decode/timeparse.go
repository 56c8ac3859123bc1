package decode

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// maxUnixSeconds is 9999-12-31T23:59:59Z: past it a time has no RFC 3339 form, so nothing downstream could
// store or print it.
const maxUnixSeconds = 253402300799

// Thresholds of the magnitude rule. 1e11 s is the year 5138, and 1e11 ms is March 1973: so any reading after
// 1973 in ms, µs or ns lands above the previous threshold, and any reading before 5138 in s below it.
const (
	secondsBelow = 1e11
	millisBelow  = 1e14
	microsBelow  = 1e17
)

// The helpers below return bare reasons; each decoder wraps them with ErrMalformed and where it was.

// now is the clock relative SenML times are resolved against; tests pin it.
var now = time.Now

// unixNumber turns a numeric timestamp into a time, choosing seconds, milliseconds, microseconds or
// nanoseconds by magnitude (see the thresholds above). Fractions are kept down to the microsecond: finer
// digits of a float64 near 1e9 s are rounding noise.
func unixNumber(v float64) (time.Time, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return time.Time{}, errors.New("timestamp is not a finite number")
	}
	if v < 0 {
		return time.Time{}, fmt.Errorf("timestamp %g is negative", v)
	}
	var us float64 // microseconds since the epoch
	switch {
	case v < secondsBelow:
		us = v * 1e6
	case v < millisBelow:
		us = v * 1e3
	case v < microsBelow:
		us = v
	default:
		us = v / 1e3
	}
	return unixMicros(math.Round(us))
}

// unixInt is unixNumber for integer timestamps (line protocol), exact to the nanosecond.
func unixInt(v int64) (time.Time, error) {
	if v < 0 {
		return time.Time{}, fmt.Errorf("timestamp %d is negative", v)
	}
	// No upper bound check: every branch tops out before the year 5138 (int64 ns end in 2262).
	switch {
	case v < secondsBelow:
		return time.Unix(v, 0).UTC(), nil
	case v < millisBelow:
		return time.UnixMilli(v).UTC(), nil
	case v < microsBelow:
		return time.UnixMicro(v).UTC(), nil
	}
	return time.Unix(0, v).UTC(), nil
}

// unixSeconds converts float seconds since the epoch (SenML), which may be negative only as an offset.
func unixSeconds(sec float64) (time.Time, error) {
	if math.IsNaN(sec) || math.IsInf(sec, 0) {
		return time.Time{}, errors.New("time is not a finite number")
	}
	return unixMicros(math.Round(sec * 1e6))
}

func unixMicros(us float64) (time.Time, error) {
	if us < 0 || us > maxUnixSeconds*1e6 {
		return time.Time{}, errors.New("timestamp out of range (before 1970 or after year 9999)")
	}
	return time.UnixMicro(int64(us)).UTC(), nil
}

// parseRFC3339 parses an RFC 3339 timestamp with optional fractional seconds, as ChirpStack, TTS and
// devices writing strings send them.
func parseRFC3339(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", clip(s))
	}
	if t.Unix() < 0 || t.Unix() > maxUnixSeconds {
		return time.Time{}, fmt.Errorf("timestamp %q out of range (before 1970 or after year 9999)", clip(s))
	}
	return t.UTC(), nil
}

// clip bounds payload text quoted in an error message, so a hostile payload cannot blow up the logs.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
