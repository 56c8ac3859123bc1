package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
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
	return reporting.NewAnalytics(store, rollups, func() *registry.Registry { return reg }, rc), reg, func() { store.Close() }, nil
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
			for _, e := range epcis {
				if _, ok := reg.Territory().EPCI(e); !ok {
					return fmt.Errorf("--epci: %q is not an EPCI of the territory", e)
				}
			}
			rows, err := an.OperatExport(cmd.Context(), year, epcis, nil)
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
	return cmd
}
