package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// simulateCmd groups the simulator tools; `fleet` writes the registry of the simulated Aisne fleet.
func simulateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "simulate", Short: "Simulated fleet of the Aisne"}
	var o fleet.Options
	fleetCmd := &cobra.Command{
		Use:   "fleet",
		Short: "Write the registry YAML of the simulated fleet (deterministic for a seed) to standard output",
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := generateFleet(o)
			if err != nil {
				return err
			}
			b, err := f.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	fleetCmd.Flags().Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed gives the same fleet")
	fleetCmd.Flags().StringSliceVar(&o.EPCIs, "epci", nil, "only these EPCI (SIREN codes); default the whole département")
	fleetCmd.Flags().StringSliceVar(&o.Communes, "commune", nil, "only these communes (INSEE codes)")
	var pcs float64
	refsCmd := &cobra.Command{
		Use:   "references",
		Short: "Write the décret tertiaire references file of the simulated fleet (reporting.tertiaire_references) to standard output",
		Long: `Write what each simulated building subject to the décret tertiaire declared for its reference year: its
model's consumption over that year, raised by the savings it has made since (drawn per building, 5 to 40 %).
Same --seed and --epci as the fleet's; gas in kWh PCS at --gas-pcs.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := generateFleet(o)
			if err != nil {
				return err
			}
			refs := reporting.References{}
			for _, r := range simulators.NewRunner(f, o.Seed, time.Now()).References(pcs) {
				refs[r.Site] = reporting.Reference{Site: r.Site, Year: r.Year, KWh: r.KWh, DJU: r.DJU}
			}
			return reporting.WriteReferences(cmd.OutOrStdout(), refs)
		},
	}
	refsCmd.Flags().Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed gives the same fleet")
	refsCmd.Flags().StringSliceVar(&o.EPCIs, "epci", nil, "only these EPCI (SIREN codes); default the whole département")
	refsCmd.Flags().Float64Var(&pcs, "gas-pcs", reporting.DefaultGasPCS, "kWh PCS per m³ of gas")
	cmd.AddCommand(fleetCmd, refsCmd, backfillCmd())
	return cmd
}

// generateFleet generates the simulated fleet over the embedded territory.
func generateFleet(o fleet.Options) (*fleet.Fleet, error) {
	t, err := registry.DefaultTerritory()
	if err != nil {
		return nil, err
	}
	return fleet.Generate(t, o)
}

// backfillCmd writes the fleet's hourly history into the configured store.
func backfillCmd() *cobra.Command {
	var (
		o        fleet.Options
		from, to string
	)
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Write the simulated fleet's hourly history into the configured store (the service must not hold an embedded store)",
		Long: `Write the hourly history of the simulated fleet (same --seed and --epci as the demo's) for [--from, --to)
into the store the configuration names: indexes with their deltas, lighting level, energy and burning hours (along the lighting plan's programs),
outdoor temperatures. A device with readings already stored resumes from its newest one. The embedded
store is written as whole blocks, so the service must be stopped; InfluxDB takes it while the service runs.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, err := parseDay("--from", from)
			if err != nil {
				return err
			}
			end := time.Now().Truncate(simulators.HistoryStep)
			if to != "" {
				if end, err = parseDay("--to", to); err != nil {
					return err
				}
			}
			if !start.Before(end) {
				return fmt.Errorf("--from %s: not before --to %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
			}
			cfg, err := LoadConfig(cmd.Flag("config").Value.String())
			if err != nil {
				return err
			}
			territory, err := registry.DefaultTerritory()
			if err != nil {
				return err
			}
			f, err := fleet.Generate(territory, o)
			if err != nil {
				return fmt.Errorf("--epci: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := newLogger(cfg.Log)
			if err := os.MkdirAll(cfg.Storage.Path, 0o750); err != nil {
				return fmt.Errorf("storage.path %s: %w", cfg.Storage.Path, err)
			}
			store, err := openStore(ctx, cfg, log)
			if err != nil {
				return fmt.Errorf("%w (a running service holds the embedded store: stop it first)", err)
			}
			defer store.Close()
			out := cmd.ErrOrStderr()
			began := time.Now()
			devices := map[string]hv.Device{}
			for _, d := range f.Devices {
				devices[d.ID] = d.Device
			}
			sites := map[string]hv.Site{}
			for _, s := range f.Sites {
				sites[s.ID] = s
			}
			schedule, err := historySchedule(cfg, func(id string) (hv.Device, hv.Site, bool) {
				d, ok := devices[id]
				return d, sites[d.Site], ok
			})
			if err != nil {
				return err
			}
			n, err := backfillHistory(ctx, store, simulators.NewRunner(f, o.Seed, end), schedule, start, end, 2*time.Second,
				func(p progress) { fmt.Fprintln(out, "history:", p) })
			if err != nil {
				return err
			}
			took := time.Since(began)
			fmt.Fprintf(out, "history: %d readings of %d devices written from %s to %s in %s (%.2f M readings/s)\n",
				n, len(f.Devices), start.Format(time.RFC3339), end.Format(time.RFC3339), took.Round(time.Millisecond),
				float64(n)/took.Seconds()/1e6)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first day (2025-01-01) or instant (RFC 3339) of the history; required")
	cmd.Flags().StringVar(&to, "to", "", "end of the history, excluded (default: this hour)")
	cmd.Flags().Uint64Var(&o.Seed, "seed", 1, "fleet seed: the demo's fleet is seed 1")
	cmd.Flags().StringSliceVar(&o.EPCIs, "epci", nil, "only the fleet of these EPCI (SIREN codes); default the whole département")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

// parseDay reads a day (2025-01-01, midnight UTC) or an RFC 3339 instant.
func parseDay(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want a day (2025-01-01) or an RFC 3339 time", flag, s)
	}
	return t, nil
}
