// Package reporting answers the consumption questions of the EPCI pilots and the syndicate's technicians:
// how much a site, a commune, an EPCI or the département used of each fluid, by hour, day, month or year,
// per m² or per inhabitant, climate-corrected, against the year before, and which buildings use the most
// per m².
//
// Two parts:
//
//   - Rollups (rollup.go) keep every device's daily consumption in memory, built from the store at start and
//     kept exact as readings arrive late, out of order or twice: the ingest hook only marks days dirty and
//     the store is re-read for them. Day, month and year answers come from there.
//   - Analytics (analytics.go) turn them into answers. Hourly answers are read from the store itself.
//
// # Units and conversions
//
// Each fluid is read from one delta series and given in its own unit and, but for water, in kWh:
//
//	fluid        series            unit   kWh
//	electricity  energy_kwh_delta  kWh    as is
//	heat         heat_kwh_delta    kWh    as is (the heat delivered, as the heat network bills it)
//	gas          volume_m3_delta   m³     × gas_pcs_kwh_per_m3 (default 11.2 kWh PCS/m³, see DefaultGasPCS)
//	water        volume_m3_delta   m³     none: water is not energy
//
// kWh are final energy, gas in PCS (gross calorific value) as GRDF bills it; PCI is about PCS / 1.11 for
// natural gas. A gas meter reporting kWh rather than m³ is not read.
//
// Per m² divides by the surfaces of the sites in scope that have a meter of that fluid; sites without a
// surface (street-lighting cabinets, buildings whose surface is unknown) are left out of the numerator too,
// so the ratio is of like with like. Per inhabitant divides by the population of the communes of the scope
// (a site's: its commune's; an EPCI's: all its communes', whether they have sites or not).
//
// # Climate correction
//
// OPERAT-style, on whole calendar years only: corrected = E × (1 − s) + E × s × DJU_ref / DJU_year, where s
// is the heating share of the fluid (heating_share, default 1 for gas and heat), DJU_ref the mean of the
// configured table of annual reference DJU (reference_dju; default a placeholder, DefaultReferenceDJU) and
// DJU_year the heating degree days (base 18 °C, Météo-France min/max method, rules.DegreeDays) of the
// year at each site's nearest weather station, read from the store. Only heating fluids are corrected:
// electricity of electrically heated buildings mixes heating with everything else on one meter, and no split
// is known, so it is left as measured. A year the station does not cover day by day is not corrected, and a
// note says so: the store keeps 13 months, so the reference years come from the configured table, not from
// the store. Shorter periods are not corrected: the reference is annual.
package reporting
