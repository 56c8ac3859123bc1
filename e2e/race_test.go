//go:build race

package e2e

// raceEnabled: the test binary runs under the race detector, so the service binary it starts is built with it
// too, and the real-load scenarios check the service's own concurrency.
const raceEnabled = true
