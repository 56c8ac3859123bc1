// Command hyperviseur is the urban hypervisor of the Aisne: `serve` runs the service, `demo` runs it with a
// simulated fleet on embedded defaults, `config check` validates a configuration.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/useda02/hyperviseur/dashboard"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise the module version is used.
var version = ""

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "hyperviseur:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	var configFile, cpuProfile string
	root := &cobra.Command{
		Use:           "hyperviseur",
		Short:         "Urban hypervisor of the Aisne: energy and fluid consumption, street-lighting control",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&configFile, "config", "c", "", "configuration file (YAML); every key can also be set as HV_<SECTION>_<KEY>")
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) { pprof.StopCPUProfile() }

	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the service",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runService(cmd.Context(), configFile, nil)
		},
	}
	demoOpts := &demoOptions{}
	demo := &cobra.Command{
		Use:   "demo",
		Short: "Run the service with the simulated Aisne fleet (its own registry) publishing to it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runService(cmd.Context(), configFile, demoOpts)
		},
	}
	demo.Flags().Uint64Var(&demoOpts.Seed, "seed", 1, "fleet seed: the same seed gives the same fleet")
	demo.Flags().StringSliceVar(&demoOpts.EPCIs, "epci", nil, "only the fleet of these EPCI (SIREN codes); default the whole département")
	demo.Flags().IntVar(&demoOpts.HistoryMonths, "history-months", 13,
		"months of hourly history written before going live (only the missing part when the store has some); 0: none")
	demo.Flags().Float64Var(&demoOpts.Speed, "speed", 1, "clock speed; above 1 the last day is replayed accelerated, then real time")
	demo.Flags().StringArrayVar(&demoOpts.Faults, "fault", nil,
		"inject a fault, KIND:DEVICE[:from=TIME][:until=TIME|:for=DURATION][:param=N] (repeatable; kinds: leak, heating_weekend, night_overconsumption, day_burner, lamp_failure, dimming_failure, offline, index_reset, clock_skew, duplicates, out_of_order, malformed)")
	versionCmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "hyperviseur", buildVersion())
		},
	}
	configCmd := &cobra.Command{Use: "config", Short: "Configuration tools"}
	configCmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration (defaults, file, HV_* environment) and the registry it names",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := LoadConfig(configFile)
			if err != nil {
				return err
			}
			reg, err := loadRegistry(cfg)
			if err != nil {
				return err
			}
			if _, err := loadReferences(cfg, reg, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	})
	tokenCmd := &cobra.Command{
		Use:   "token",
		Short: "Create an API token: prints the token once and the sha256 to put in auth.tokens",
		RunE: func(cmd *cobra.Command, _ []string) error {
			plain, sum, err := dashboard.GenerateToken()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token:  %s\nsha256: %s\n", plain, sum)
			return nil
		},
	}
	root.AddCommand(serve, demo, versionCmd, configCmd, tokenCmd, simulateCmd(), lightingCmd(), usersCmd(&configFile), reportCmd(), exportCmd(), benchCmd(), rulesCmd(&configFile))
	return root
}

// runService runs until SIGINT or SIGTERM.
func runService(parent context.Context, configFile string, demo *demoOptions) error {
	cfg, err := LoadConfig(configFile)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg, log, demo)
}

func newLogger(c LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
