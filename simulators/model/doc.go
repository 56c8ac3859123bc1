// Package model holds the pure behaviour models of the simulated Aisne fleet: the French calendar (public
// holidays, zone B school holidays), building occupancy, an Aisne climate, building consumption and
// street-light power.
//
// Nothing here reads the clock, publishes or keeps hidden state: every function takes the time as an
// argument and every random draw comes from a seed (math/rand/v2 PCG), so a fleet and its 13-month backfill
// replay identically from one seed, and the shape tests (weekday/weekend, winter/summer) are exact.
// Weather values are safe for concurrent use; Index and OperatingHours belong to one simulated meter each.
//
// Local time is Europe/Paris (time/tzdata is embedded so the models behave the same in a minimal container).
package model
