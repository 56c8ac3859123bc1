package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
)

// lightingCmd groups the street-lighting tools; `sun` prints the astronomical clock of a commune.
func lightingCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "lighting", Short: "Street-lighting tools"}
	var (
		commune, from string
		days          int
	)
	sunCmd := &cobra.Command{
		Use:   "sun",
		Short: "Sunrise, sunset and civil twilight (RFC 3339 UTC) at a commune's centroid, as JSON",
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := registry.DefaultTerritory()
			if err != nil {
				return err
			}
			c, ok := t.Commune(commune)
			if !ok {
				return fmt.Errorf("--commune: %q is not an INSEE code of the territory", commune)
			}
			start, n, err := sun.ParseRange(from, days, time.Now())
			if err != nil {
				return fmt.Errorf("--%w", err)
			}
			out := make([]sun.DayJSON, 0, n)
			for _, d := range sun.Range(start, n, c.Lat, c.Lon, sun.Paris()) {
				out = append(out, d.JSON())
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	sunCmd.Flags().StringVar(&commune, "commune", "02408", "INSEE code of the commune (default Laon)")
	sunCmd.Flags().StringVar(&from, "from", "", "first day, YYYY-MM-DD (default today, Paris)")
	sunCmd.Flags().IntVar(&days, "days", 1, "number of days (1–367)")
	cmd.AddCommand(sunCmd, lightingReportCmd("savings"), lightingReportCmd("compliance"))
	return cmd
}

// lightingReportCmd runs a lighting report on the configured store and registry: savings per group and night,
// or compliance with the switch-off hours per commune and night. JSON, or CSV with --csv; the wall time goes to
// stderr. With the embedded store the service must be stopped (it holds the store).
func lightingReportCmd(kind string) *cobra.Command {
	var from, to string
	var csv bool
	short := map[string]string{
		"savings":    "Energy used per group and night against a full-power all-night schedule (kWh, %, €)",
		"compliance": "Lighting out of the local decrees' switch-off hours and the arrêté du 27 décembre 2018, per commune and night",
	}[kind]
	c := &cobra.Command{
		Use:   kind,
		Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error {
			first, err := time.ParseInLocation(time.DateOnly, from, sun.Paris())
			if err != nil {
				return fmt.Errorf("--from: want YYYY-MM-DD, the first night's evening")
			}
			last := first
			if to != "" {
				if last, err = time.ParseInLocation(time.DateOnly, to, sun.Paris()); err != nil {
					return fmt.Errorf("--to: want YYYY-MM-DD, the last night's evening")
				}
			}
			cfg, reg, store, err := openForReport(cmd)
			if err != nil {
				return err
			}
			defer store.Close()
			plan, err := loadPlan(cfg.Lighting.Files)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			began := time.Now()
			out := cmd.OutOrStdout()
			var result any
			switch kind {
			case "savings":
				nights, err := lighting.Savings(ctx, store, reg, lighting.PlanGroups(plan), first, last, plan.TariffEURPerKWh)
				if err != nil {
					return err
				}
				if csv {
					err = lighting.WriteSavingsCSV(out, nights)
				}
				result = nights
			default:
				rep, err := lighting.Compliance(ctx, store, reg, plan, first, last)
				if err != nil {
					return err
				}
				if csv {
					err = lighting.WriteViolationsCSV(out, rep.Violations)
				}
				result = rep
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s to %s in %s\n", kind, first.Format(time.DateOnly), last.Format(time.DateOnly),
				time.Since(began).Round(time.Millisecond))
			if csv {
				return nil
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(result)
		},
	}
	c.Flags().StringVar(&from, "from", "", "first night, YYYY-MM-DD (the evening's date, Paris)")
	c.Flags().StringVar(&to, "to", "", "last night, YYYY-MM-DD (default --from)")
	c.Flags().BoolVar(&csv, "csv", false, "CSV instead of JSON (compliance: the violations)")
	return c
}
