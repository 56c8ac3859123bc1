package reporting

import (
	"fmt"
	"maps"
	"slices"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Defaults of Config.
const (
	// DefaultGasPCS converts a gas meter's m³ into kWh PCS (gross calorific value, as GRDF bills them). French
	// network H gas is about 11 to 11.6 kWh/m³ PCS; the low-calorific B gas of the north, still supplied in
	// parts of Hauts-de-France until its conversion to H gas ends (around 2029), is nearer 10. The factor
	// printed on the territory's GRDF bills is the one to configure. (simulators/model burns 10.5 kWh/m³.)
	DefaultGasPCS = 11.2
	// DefaultReferenceDJU is the reference annual heating degree days (base 18 °C) used when no table is
	// configured. It is a PLACEHOLDER in the range of northern France (most of mainland France lies between
	// 2 000 and 2 900 DJU a year), not a surveyed normal: configure reference_dju with Météo-France (or
	// COSTIC) annual values of the station and years the décret tertiaire reference is taken on.
	DefaultReferenceDJU = 2400.0
	// DefaultYears is how far back the rollups go: the BACS decree (R175-3) keeps monthly data five years,
	// plus the current year.
	DefaultYears = 6
)

// Config tunes the rollups and the analytics. DefaultConfig fills it; the service loads its `reporting`
// section over it, then calls Validate.
type Config struct {
	// Since is the first day the rollups keep (its date in Europe/Paris); zero: Years back from today.
	Since time.Time `mapstructure:"since"`
	// Years is the span kept when Since is zero.
	Years int `mapstructure:"years"`
	// ChunkDays is the days each build query reads: one store query per metric per chunk.
	ChunkDays int `mapstructure:"chunk_days"`
	// RefreshEvery is how often Run re-reads the device-days the ingest hook marked dirty.
	RefreshEvery time.Duration `mapstructure:"refresh_every"`
	// RecheckEvery is how often Run re-reads the last RecentDays days of every device whatever the hook
	// saw: readings stored by another instance or by a backfill never reach this instance's hook. 0: never.
	RecheckEvery time.Duration `mapstructure:"recheck_every"`
	RecentDays   int           `mapstructure:"recent_days"`
	// MaxDeviceFilter is the most devices a store query names; above it the query reads every device of
	// the metric and keeps those it needs (a long alternation costs the engines more than the extra reads).
	MaxDeviceFilter int `mapstructure:"max_device_filter"`

	// GasPCS converts gas m³ to kWh PCS.
	GasPCS float64 `mapstructure:"gas_pcs_kwh_per_m3"`
	// ReferenceDJU is the annual heating degree days of the reference years (year → DJU); DJU_ref is their
	// mean. Empty: DefaultReferenceDJU.
	ReferenceDJU map[int]float64 `mapstructure:"reference_dju"`
	// DJUBase is the base temperature of the degree days, °C (the French convention: 18).
	DJUBase float64 `mapstructure:"dju_base"`
	// HeatingShare is, per heating fluid (gas, heat), the share of its consumption that heats and is
	// climate-corrected; the rest (hot water, cooking) is not. OPERAT corrects only the heating share.
	HeatingShare map[hv.Fluid]float64 `mapstructure:"heating_share"`
	// MaxHourlyDays bounds an hourly answer, read from the store itself.
	MaxHourlyDays int `mapstructure:"max_hourly_days"`

	// BACSMonthsKept is how many complete months of each meter's monthly consumption the state database keeps
	// (décret BACS: five years), whatever the store's retention.
	BACSMonthsKept int `mapstructure:"bacs_months_kept"`
	// BACSThresholdPct and BACSLossMonths make a loss of efficiency: BACSLossMonths consecutive months above
	// the same month of the previous year by more than BACSThresholdPct %.
	BACSThresholdPct float64 `mapstructure:"bacs_threshold_pct"`
	BACSLossMonths   int     `mapstructure:"bacs_loss_months"`

	// Location is where days begin (nil: Europe/Paris); Now is the clock (nil: time.Now). Tests set them.
	Location *time.Location   `mapstructure:"-"`
	Now      func() time.Time `mapstructure:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Years:            DefaultYears,
		ChunkDays:        14,
		RefreshEvery:     30 * time.Second,
		RecheckEvery:     10 * time.Minute,
		RecentDays:       2,
		MaxDeviceFilter:  256,
		GasPCS:           DefaultGasPCS,
		DJUBase:          18,
		HeatingShare:     map[hv.Fluid]float64{hv.Gas: 1, hv.Heat: 1},
		MaxHourlyDays:    93,
		BACSMonthsKept:   BACSMonthsKept,
		BACSThresholdPct: DefaultBACSThresholdPct,
		BACSLossMonths:   DefaultBACSMonths,
	}
}

// Validate checks the configuration, naming the first bad key.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("reporting.%s: %w: %s", key, hv.ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Since.IsZero() && (c.Years < 1 || c.Years > 50):
		return bad("years", "must be 1 to 50, got %d", c.Years)
	case c.ChunkDays < 1 || c.ChunkDays > 366:
		return bad("chunk_days", "must be 1 to 366, got %d", c.ChunkDays)
	case c.RefreshEvery < time.Second:
		return bad("refresh_every", "must be at least 1s, got %s", c.RefreshEvery)
	case c.RecheckEvery != 0 && c.RecheckEvery < c.RefreshEvery:
		return bad("recheck_every", "must be 0 (never) or at least refresh_every (%s), got %s", c.RefreshEvery, c.RecheckEvery)
	case c.RecentDays < 0 || c.RecentDays > 31:
		return bad("recent_days", "must be 0 to 31, got %d", c.RecentDays)
	case c.MaxDeviceFilter < 1:
		return bad("max_device_filter", "must be at least 1, got %d", c.MaxDeviceFilter)
	case !(c.GasPCS >= 5 && c.GasPCS <= 15):
		return bad("gas_pcs_kwh_per_m3", "must be 5 to 15 kWh/m³ (network gas is 10 to 11.6), got %v", c.GasPCS)
	case !(c.DJUBase >= 10 && c.DJUBase <= 25):
		return bad("dju_base", "must be 10 to 25 °C, got %v", c.DJUBase)
	case c.MaxHourlyDays < 1 || c.MaxHourlyDays > 400:
		return bad("max_hourly_days", "must be 1 to 400, got %d", c.MaxHourlyDays)
	case c.BACSMonthsKept < BACSMonthsKept || c.BACSMonthsKept > 1200:
		return bad("bacs_months_kept", "must be %d (five years, the décret BACS) to 1200, got %d", BACSMonthsKept, c.BACSMonthsKept)
	case !(c.BACSThresholdPct > 0 && c.BACSThresholdPct <= 1000):
		return bad("bacs_threshold_pct", "must be above 0 and at most 1000 %%, got %v", c.BACSThresholdPct)
	case c.BACSLossMonths < 1 || c.BACSLossMonths > 12:
		return bad("bacs_loss_months", "must be 1 to 12, got %d", c.BACSLossMonths)
	}
	for _, y := range slices.Sorted(maps.Keys(c.ReferenceDJU)) {
		if y < 1950 || y > 2100 {
			return bad(fmt.Sprintf("reference_dju.%d", y), "year out of range 1950-2100")
		}
		if v := c.ReferenceDJU[y]; !(v > 0 && v < 10000) {
			return bad(fmt.Sprintf("reference_dju.%d", y), "must be a positive annual DJU below 10 000, got %v", v)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(c.HeatingShare)) {
		if f != hv.Gas && f != hv.Heat {
			// Electric heating shares the meter with everything else: no split is known, so it is not corrected.
			return bad("heating_share."+string(f), "only gas and heat are climate-corrected")
		}
		if v := c.HeatingShare[f]; !(v >= 0 && v <= 1) {
			return bad("heating_share."+string(f), "must be 0 to 1, got %v", v)
		}
	}
	return nil
}

// referenceDJU is DJU_ref: the mean of the table, or the placeholder default.
func (c Config) referenceDJU() (float64, bool) {
	if len(c.ReferenceDJU) == 0 {
		return DefaultReferenceDJU, false
	}
	var sum float64
	for _, y := range slices.Sorted(maps.Keys(c.ReferenceDJU)) { // sorted: the same sum every time
		sum += c.ReferenceDJU[y]
	}
	return sum / float64(len(c.ReferenceDJU)), true
}
