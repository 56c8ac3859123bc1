package testenv

import (
	"syscall"
	"time"
)

// CPUTime is the user+system CPU time this process has used: benchmarks report it per item because it stays
// meaningful on a busy machine where wall time does not.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
