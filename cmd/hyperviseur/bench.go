package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/load"
)

// benchCmd is the load generator: synthetic meters publishing to a running service, measured through its
// /metrics. `bench registry` writes the registry the service needs to know those meters.
func benchCmd() *cobra.Command {
	var (
		cfg       load.BenchConfig
		jsonOut   bool
		tokenFile string
		defaultN  = 100_000
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generator: N meters publish QoS 1 to a running service; prints throughput, publish→store latency, CPU, memory, loss",
		Long: `Load generator: N synthetic meters (bench-000001…) publish flat JSON {"ts","energy_kwh","power_w"} with QoS 1
on hv/<id>/up, at --rate messages/s in total (0: as fast as the broker acknowledges), over --connections MQTT
connections. Then it waits until the service's /metrics says every message is durable, and prints messages/s
and readings/s stored, publish→store latency p50/p99 (from the service's hyperviseur_ingest_lag_seconds
histogram; with --ws, publish→websocket too, measured on the live feed), service CPU per reading, peak RSS,
heap in use, and loss (published − stored).

The service must know the meters: give it the output of 'hyperviseur bench registry --devices N' in
registry.files, and run the bench against an otherwise idle service (its counters are read as deltas).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if flags.Changed("duration") {
				if flags.Changed("messages") {
					return errors.New("bench: give --messages or --duration, not both")
				}
				cfg.Load.Messages = 0
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Progress = cmd.ErrOrStderr()
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				cfg.Token = strings.TrimSpace(string(b))
			}
			res, err := load.Bench(ctx, cfg)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			return res.Err()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Load.Broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker the service reads")
	f.StringVar(&cfg.Load.Username, "username", "", "MQTT username")
	f.StringVar(&cfg.Load.Password, "password", "", "MQTT password")
	f.StringVar(&cfg.MetricsURL, "metrics", "http://127.0.0.1:8080/metrics", "the service's /metrics")
	f.IntVar(&cfg.Load.Devices, "devices", 1000, "synthetic meters (registered with 'bench registry')")
	f.Float64Var(&cfg.Load.Rate, "rate", 0, "total messages per second; 0: as fast as the broker acknowledges")
	f.IntVar(&cfg.Load.Messages, "messages", defaultN, "messages to publish in total (or --duration)")
	f.DurationVar(&cfg.Load.Duration, "duration", 0, "publish for this long instead of a number of messages")
	f.IntVar(&cfg.Load.Connections, "connections", 4, "MQTT connections the meters are spread over")
	f.IntVar(&cfg.Load.InFlight, "inflight", 1000, "unacknowledged publishes per connection")
	f.IntVar(&cfg.PID, "pid", 0, "the service's process id when it runs on this machine: RSS from /proc/<pid>/status, and VmHWM")
	f.DurationVar(&cfg.Wait, "wait", 2*time.Minute, "after publishing, how long to wait for the service to store everything")
	f.DurationVar(&cfg.Settle, "settle", 0, "after the run, wait up to this long for the service's next GC before reading its memory (Go collects at least every 2m)")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	f.StringVar(&cfg.WSURL, "ws", "", "the service's live websocket, e.g. ws://127.0.0.1:8080/api/v1/ws: measures publish→websocket latency too")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API token for --ws (e.g. data/admin.token)")

	var n int
	reg := &cobra.Command{
		Use:   "registry",
		Short: "Write the registry YAML of the bench meters to standard output (for registry.files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := registry.DefaultTerritory()
			if err != nil {
				return err
			}
			return load.WriteRegistry(cmd.OutOrStdout(), t, n)
		},
	}
	reg.Flags().IntVar(&n, "devices", 1000, "synthetic meters")
	cmd.AddCommand(reg)
	return cmd
}
