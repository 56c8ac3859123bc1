package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/simulators"
)

// openForReport loads the configuration and the registry and opens the configured store, for a report run
// from the command line. The caller closes the store.
func openForReport(cmd *cobra.Command) (*Config, *registry.Registry, hv.Store, error) {
	cfg, err := LoadConfig(cmd.Flag("config").Value.String())
	if err != nil {
		return nil, nil, nil, err
	}
	reg, err := loadRegistry(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openStore(cmd.Context(), cfg, newLogger(cfg.Log))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w (a running service holds the embedded store: stop it first)", err)
	}
	return cfg, reg, store, nil
}

// loadReferences reads reporting.tertiaire_references and checks it against the registry. Without a file the
// demo (runner not nil) declares its simulated buildings' references, the service none.
func loadReferences(cfg *Config, reg *registry.Registry, runner *simulators.Runner) (reporting.References, error) {
	if cfg.Reporting.References == "" {
		if runner == nil {
			return nil, nil
		}
		refs := reporting.References{}
		for _, r := range runner.References(cfg.Reporting.GasPCS) {
			refs[r.Site] = reporting.Reference{Site: r.Site, Year: r.Year, KWh: r.KWh, DJU: r.DJU}
		}
		return refs, nil
	}
	refs, err := reporting.LoadReferences(cfg.Reporting.References)
	if err == nil {
		err = refs.Check(reg.Sites())
	}
	if err != nil {
		return nil, fmt.Errorf("reporting.tertiaire_references: %w", err)
	}
	return refs, nil
}

// yearAnalytics checks --year and returns the analytics over rollups built from the configured store since
// that year's first day, the registry, and what closes the store.
func yearAnalytics(cmd *cobra.Command, year int) (*reporting.Analytics, *registry.Registry, func(), error) {
	if year < 2000 || year > 2200 {
		return nil, nil, nil, fmt.Errorf("--year: want a year, e.g. %d", time.Now().Year()-1)
	}
	cfg, reg, store, err := openForReport(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	rc := cfg.Reporting.Config
	rc.Since = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
	rollups := reporting.NewRollups(store, rc, nil)
	if err := rollups.Build(cmd.Context()); err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	an := reporting.NewAnalytics(store, rollups, func() *registry.Registry { return reg }, rc)
	refs, err := loadReferences(cfg, reg, nil)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	an.SetReferences(refs)
	return an, reg, func() { store.Close() }, nil
}

// checkEPCIs refuses an --epci that is not an EPCI of the territory.
func checkEPCIs(reg *registry.Registry, epcis []string) error {
	for _, e := range epcis {
		if _, ok := reg.Territory().EPCI(e); !ok {
			return fmt.Errorf("--epci: %q is not an EPCI of the territory", e)
		}
	}
	return nil
}

// reportCmd groups the regulatory reports computed from the configured store.
func reportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Regulatory reports from the configured store"}
	var (
		year  int
		epcis []string
	)
	operat := &cobra.Command{
		Use:   "operat",
		Short: "OPERAT preparation CSV of a year: the buildings subject to the décret tertiaire, one row per energy (see reporting/OPERAT.md)",
		Long: `Print the OPERAT preparation file of --year (CSV, ';', UTF-8) for the buildings flagged tertiaire in the
registry: each energy's consumption of the Paris calendar year from the stored interval deltas (gas in m³
with reporting.gas_pcs_kwh_per_m3), surface, reference year, indicative activity category. With the
embedded store the service must be stopped (it holds the store).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			began := time.Now()
			an, reg, closeStore, err := yearAnalytics(cmd, year)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := checkEPCIs(reg, epcis); err != nil {
				return err
			}
			rows, err := an.OperatExport(cmd.Context(), year, epcis)
			if err != nil {
				return err
			}
			if err := reporting.WriteOPERAT(cmd.OutOrStdout(), year, rows); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "operat %d: %d rows in %s\n", year, len(rows), time.Since(began).Round(time.Millisecond))
			return nil
		},
	}
	operat.Flags().IntVar(&year, "year", time.Now().Year()-1, "calendar year (Paris)")
	operat.Flags().StringSliceVar(&epcis, "epci", nil, "only these EPCI (SIREN codes); default the whole département")
	cmd.AddCommand(operat)

	var asJSON bool
	tertiaire := &cobra.Command{
		Use:   "tertiaire",
		Short: "Décret tertiaire trajectories: each building against its declared reference (CSV, or --json)",
		Long: `Print every building subject to the décret tertiaire (the registry's tertiaire flag) in the --epci given
(default the whole département) against its trajectory: the reference declared in
reporting.tertiaire_references, the −40/−50/−60 % milestones, the last twelve complete months measured
(climate-adjusted to the reference year's degree days), the gap to the linear target and a status. CSV (';',
columns in reporting/trajectory.go) or the API's JSON with --json. With the embedded store the service must
be stopped (it holds the store).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			began := time.Now()
			an, reg, closeStore, err := yearAnalytics(cmd, time.Now().Year()-1)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := checkEPCIs(reg, epcis); err != nil {
				return err
			}
			rep, err := an.Tertiaire(cmd.Context(), reporting.TertiaireRequest{EPCIs: epcis})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(rep)
			} else {
				err = reporting.WriteTertiaire(cmd.OutOrStdout(), rep)
			}
			if err != nil {
				return err
			}
			sm := rep.Summary
			fmt.Fprintf(cmd.ErrOrStderr(), "tertiaire %s: %d buildings, %d with a reference, %d on track, %+.1f %% against the references; %s\n",
				sm.LatestPeriod, sm.Buildings, sm.WithReference, sm.OnTrack, sm.ChangePct, time.Since(began).Round(time.Millisecond))
			for _, n := range rep.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
			}
			return nil
		},
	}
	tertiaire.Flags().StringSliceVar(&epcis, "epci", nil, "only these EPCI (SIREN codes); default the whole département")
	tertiaire.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON instead of the CSV")
	cmd.AddCommand(tertiaire)
	return cmd
}

// exportCmd groups the exports computed from the configured store.
func exportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Exports from the configured store"}
	var year int
	opendata := &cobra.Command{
		Use:   "opendata",
		Short: "Open-data CSV of a year: consumption per commune, month, sector and fluid (Licence Ouverte v2.0)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			an, _, closeStore, err := yearAnalytics(cmd, year)
			if err != nil {
				return err
			}
			defer closeStore()
			rows, err := an.OpenData(cmd.Context(), year)
			if err != nil {
				return err
			}
			return reporting.WriteOpenData(cmd.OutOrStdout(), rows, "hyperviseur, syndicat d'énergie de l'Aisne")
		},
	}
	opendata.Flags().IntVar(&year, "year", time.Now().Year()-1, "calendar year (Paris)")
	cmd.AddCommand(opendata)
	cmd.AddCommand(exportSeriesCmd(), exportConsumptionCmd())
	return cmd
}
