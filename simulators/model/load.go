package model

import (
	"math"
	"math/rand/v2"
	"time"
)

// Heating systems of a Building.
const (
	HeatingGas      = "gas"      // gas boiler: heat demand shows on the gas meter
	HeatingNetwork  = "heat"     // district heating: heat demand shows on the heat meter
	HeatingElectric = "electric" // convectors and electric water heaters: on the electricity meter
	HeatingNone     = "none"     // unheated (or heated by something not metered here)
)

// Gas conversion: natural gas (type H, as in the Aisne) carries ≈ 10.5 kWh (PCS) per m³; a condensing or
// recent boiler turns 90 % of it into useful heat.
const (
	GasKWhPerM3      = 10.5
	BoilerEfficiency = 0.9
)

// Building is one public building whose meters the fleet simulates. Its methods return instantaneous values
// at t: they are pure functions of the building, t and the weather, so any instant can be computed alone
// (backfill, live, accelerated) and gives the same value.
type Building struct {
	Usage     string  // one of Usages(); unknown usages behave like a mairie
	SurfaceM2 float64 // heated floor area
	Heating   string  // HeatingGas, HeatingNetwork, HeatingElectric or HeatingNone ("" is none)
	Seed      uint64  // draws the building's own intensity, insulation, timing and noise
}

// usageParams are per-m² intensities of one usage. Orders of magnitude: ADEME/OID tertiary benchmarks and
// French public-building audits — schools ≈ 20-30 kWh/m²/yr of electricity and 100-150 kWh/m²/yr of
// heating, offices ≈ 40-60 kWh/m²/yr of electricity, swimming pools an order of magnitude above everything.
type usageParams struct {
	baseW   float64 // W/m² always on: standby, ventilation, IT, fridges, pool pumps
	occW    float64 // W/m² more at full occupancy: lighting, equipment, kitchens
	hMin    float64 // W/K per m²: heat loss coefficient (G·V with ventilation), drawn in [hMin, hMax]
	hMax    float64
	comfort float64 // °C: degree-day base when occupied (setpoint minus free gains)
	setback float64 // °C: degree-day base in night/weekend setback
	cutoff  float64 // °C: no space heating when the day-scale mean is above this
	allYear bool    // heated outside the heating season (pool halls)
	dhwW    float64 // W/m² hot water always: storage losses, pool water
	dhwOccW float64 // W/m² more hot water at full occupancy: showers, canteens
	waterM3 float64 // m³/h per m² at full occupancy
	nightM3 float64 // fraction of waterM3 that flows with nobody in (cisterns, pool make-up)
}

var params = [...]usageParams{
	uMairie:      {baseW: 2, occW: 10, hMin: 1.4, hMax: 2.4, comfort: 18, setback: 14, cutoff: 15, dhwW: 0.2, dhwOccW: 0.5, waterM3: 0.00015, nightM3: 0.01},
	uEcole:       {baseW: 1.5, occW: 8, hMin: 1.6, hMax: 2.6, comfort: 18, setback: 14, cutoff: 15, dhwW: 0.2, dhwOccW: 1, waterM3: 0.0009, nightM3: 0.01},
	uCollege:     {baseW: 2, occW: 9, hMin: 1.4, hMax: 2.4, comfort: 18, setback: 14, cutoff: 15, dhwW: 0.3, dhwOccW: 1.5, waterM3: 0.0006, nightM3: 0.01},
	uGymnase:     {baseW: 1, occW: 8, hMin: 1.2, hMax: 2.2, comfort: 15, setback: 11, cutoff: 15, dhwW: 0.3, dhwOccW: 4, waterM3: 0.0003, nightM3: 0.01},
	uSalle:       {baseW: 0.8, occW: 10, hMin: 1.4, hMax: 2.6, comfort: 18, setback: 10, cutoff: 15, dhwW: 0.1, dhwOccW: 1, waterM3: 0.0004, nightM3: 0.01},
	uMediatheque: {baseW: 2.5, occW: 10, hMin: 1.4, hMax: 2.2, comfort: 18, setback: 14, cutoff: 15, dhwW: 0.1, dhwOccW: 0.3, waterM3: 0.00007, nightM3: 0.01},
	uPiscine:     {baseW: 12, occW: 8, hMin: 2.5, hMax: 3.5, comfort: 24, setback: 24, cutoff: 22, allYear: true, dhwW: 20, dhwOccW: 10, waterM3: 0.0017, nightM3: 0.03},
}

// Keys of the building's seeded draws: one independent number per key.
const (
	keyElecScale uint64 = iota + 1
	keyHeatLoss
	keyWaterScale
	keyShift
	keyElecNoise
	keyHeatNoise
	keyWaterNoise
	keyPresence // a street's presence sensor (lighting.go)
)

// draw is a uniform number in [0, 1) that depends only on seed and key.
func draw(seed, key uint64) float64 { return uniform(seed, key*golden) }

const golden = 0x9E3779B97F4A7C15 // spreads keys apart so their streams never overlap

// uniform hashes (seed, stream) to [0, 1): a PCG seeded with both, first output. Cheaper than keeping a
// generator per building, and stateless, so any instant can be asked in any order.
func uniform(seed, stream uint64) float64 {
	p := rand.NewPCG(seed, stream)
	return float64(p.Uint64()>>11) / (1 << 53)
}

// noise is smooth value noise in [-1, 1]: seeded random values every step seconds, smoothstep-interpolated,
// so a meter's noise does not jump between close samples and is the same whenever t is asked again.
func noise(seed, key uint64, t time.Time, step int64) float64 {
	s := t.Unix()
	i := floorDiv(s, step)
	f := float64(s-i*step) / float64(step)
	f = f * f * (3 - 2*f)
	a := 2*uniform(seed, key*golden+uint64(i)) - 1
	b := 2*uniform(seed, key*golden+uint64(i+1)) - 1
	return a + (b-a)*f
}

// Sample is every instantaneous value of a building at one instant, computed once.
type Sample struct {
	Occupancy float64 // fraction in use, [0, 1]
	OutdoorC  float64 // outdoor temperature used
	ElectricW float64 // electric power (power_w of the electricity meter)
	HeatW     float64 // useful heat demand: space heating + hot water (heat meter, boiler output)
	GasM3h    float64 // gas flow (flow_m3h of the gas meter); 0 unless Heating is gas
	WaterM3h  float64 // water flow (flow_m3h of the water meter)
}

// state is what every output needs, computed once per instant.
type state struct {
	p                usageParams
	occ, occAhead    float64
	tempC, meanC     float64
	winter           float64 // +1 mid-winter … -1 mid-summer
	inHeatingSeason  bool
	elecScale, hCoef float64
}

func (b Building) state(t time.Time, o *Outdoor) state {
	u := usageOf(b.Usage)
	st := state{p: params[u]}
	// Each building keeps its own clock within ±15 min: real sites do not all switch at the same second.
	shifted := t.Add(time.Duration((draw(b.Seed, keyShift) - 0.5) * float64(30*time.Minute)))
	d, sec := local(shifted)
	h := float64(sec) / 3600
	st.occ = occupancyAt(u, d, h)
	if o != nil {
		// Comfort starts two hours before people arrive (relance after the setback).
		if h+2 < 24 {
			st.occAhead = occupancyAt(u, d, h+2)
		} else {
			st.occAhead = occupancyAt(u, d+1, h+2-24)
		}
		st.tempC, st.meanC = o.TemperatureC, o.MeanC
		_, m, dd := d.civil()
		// Heating season of public buildings: contracts stop the heating from June to mid-September.
		st.inHeatingSeason = st.p.allYear || !(m >= time.June && m < time.September || m == time.September && dd < 15)
		st.hCoef = st.p.hMin + (st.p.hMax-st.p.hMin)*draw(b.Seed, keyHeatLoss)
	}
	st.winter = math.Cos(2 * math.Pi * (seconds(t) - coldestS) / tropicalYearS)
	st.elecScale = 0.8 + 0.45*draw(b.Seed, keyElecScale)
	return st
}

// heat returns the useful heat demand (W), space heating by degree-day slope and hot water.
func (b Building) heat(t time.Time, st state) (space, dhw float64) {
	if b.Heating == "" || b.Heating == HeatingNone {
		return 0, 0
	}
	p := st.p
	if st.inHeatingSeason && st.meanC < p.cutoff {
		base, boost := p.setback, 1.0
		switch {
		case st.occ > 0.1:
			base = p.comfort
		case st.occAhead > 0.1:
			base, boost = p.comfort, 1.3 // relance: the boiler runs flat out to recover the setback
		}
		space = boost * st.hCoef * b.SurfaceM2 * math.Max(0, base-st.tempC)
	}
	dhw = b.SurfaceM2 * (p.dhwW + p.dhwOccW*st.occ)
	f := 1 + 0.03*noise(b.Seed, keyHeatNoise, t, 600)
	return space * f, dhw * f
}

func (b Building) electric(t time.Time, st state, space, dhw float64) float64 {
	p := st.p
	light := 1 + 0.2*st.winter // more artificial light on short days
	w := b.SurfaceM2 * (p.baseW + p.occW*st.occ*light) * st.elecScale
	w *= 1 + 0.04*noise(b.Seed, keyElecNoise, t, 300)
	switch b.Heating {
	case HeatingElectric:
		w += space + dhw // Joule effect: one useful kWh per kWh
	case HeatingGas, HeatingNetwork:
		if space > 0 {
			w += 0.3 * b.SurfaceM2 // circulation pumps and burner fan
		}
	}
	return w
}

func (b Building) water(t time.Time, st state) float64 {
	p := st.p
	scale := 0.7 + 0.7*draw(b.Seed, keyWaterScale)
	// Water use is bursty (flushes, canteen, showers): ±50 % noise on a 10-minute scale.
	f := b.SurfaceM2 * p.waterM3 * (p.nightM3 + st.occ) * scale * (1 + 0.5*noise(b.Seed, keyWaterNoise, t, 600))
	return math.Max(0, f)
}

func gasFlow(heatW float64) float64 { return heatW / 1000 / (GasKWhPerM3 * BoilerEfficiency) }

// Sample returns every value of the building at t under weather w, sharing the work between them: use it
// when a simulated site reports several meters at once.
func (b Building) Sample(t time.Time, w *Weather) Sample { return b.SampleOutdoor(t, w.Outdoor(t)) }

// SampleOutdoor is Sample with the outdoor conditions computed by the caller: the weather is most of the
// cost, and every building near one station shares it at a given instant.
func (b Building) SampleOutdoor(t time.Time, o Outdoor) Sample {
	st := b.state(t, &o)
	space, dhw := b.heat(t, st)
	s := Sample{
		Occupancy: st.occ,
		OutdoorC:  st.tempC,
		ElectricW: b.electric(t, st, space, dhw),
		HeatW:     space + dhw,
		WaterM3h:  b.water(t, st),
	}
	if b.Heating == HeatingGas {
		s.GasM3h = gasFlow(s.HeatW)
	}
	return s
}

// ElectricPowerW returns the electric power (W) at t: base load (standby, ventilation, IT) ∝ surface,
// occupancy-driven lighting and equipment, small noise, plus the heating when Heating is electric.
func (b Building) ElectricPowerW(t time.Time, w *Weather) float64 {
	o := w.Outdoor(t)
	st := b.state(t, &o)
	space, dhw := b.heat(t, st)
	return b.electric(t, st, space, dhw)
}

// HeatingPowerW returns the useful heat demand (W) at t: heat-loss coefficient × surface × max(0, base − T),
// base 18 °C (15 °C gymnase, 24 °C piscine) when occupied or in the two hours before, a lower setback base
// otherwise; no space heating from June to mid-September nor when the day-scale mean is above 15 °C; plus
// hot water by usage (the piscine's pool water dominates). Zero when Heating is none.
func (b Building) HeatingPowerW(t time.Time, w *Weather) float64 {
	o := w.Outdoor(t)
	space, dhw := b.heat(t, b.state(t, &o))
	return space + dhw
}

// GasFlowM3h returns the gas flow (m³/h) at t: HeatingPowerW / (GasKWhPerM3 × BoilerEfficiency) when
// Heating is gas, 0 otherwise.
func (b Building) GasFlowM3h(t time.Time, w *Weather) float64 {
	if b.Heating != HeatingGas {
		return 0
	}
	return gasFlow(b.HeatingPowerW(t, w))
}

// WaterFlowM3h returns the water flow (m³/h) at t: proportional to occupancy and to a per-usage intensity
// (écoles and the piscine high), near zero at night.
func (b Building) WaterFlowM3h(t time.Time) float64 {
	return b.water(t, b.state(t, nil))
}

// Scales of Index for the canonical metrics.
const (
	ScaleWToKWh  = 1e-3 // power_w → energy_kwh or heat_kwh
	ScaleM3hToM3 = 1.0  // flow_m3h → volume_m3
)

// Index is a cumulative meter index (energy_kwh, heat_kwh, volume_m3) advanced from instantaneous rates by
// the trapezoid rule, so a simulated meter's index and its power or flow readings agree. Set Value to start
// from a meter's reading (or to simulate a reset).
type Index struct {
	Value float64 // the index, in its unit
	Scale float64 // index units per rate unit and hour: ScaleWToKWh, ScaleM3hToM3
	last  time.Time
	rate  float64
	ok    bool
}

// NewIndex returns an index starting at value.
func NewIndex(value, scale float64) *Index { return &Index{Value: value, Scale: scale} }

// Advance integrates from the previous call to t, the rate moving linearly from its previous value to rate,
// and returns the index. The first call only records the rate; a t before the previous one is ignored (the
// index of a meter never goes back with the clock) and an equal t just replaces the rate.
func (x *Index) Advance(t time.Time, rate float64) float64 {
	switch {
	case !x.ok:
		x.last, x.rate, x.ok = t, rate, true
	case t.After(x.last):
		x.Value += (x.rate + rate) / 2 * t.Sub(x.last).Hours() * x.Scale
		x.last, x.rate = t, rate
	case t.Equal(x.last):
		x.rate = rate
	}
	return x.Value
}
