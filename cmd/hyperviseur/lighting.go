package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

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
	cmd.AddCommand(sunCmd)
	return cmd
}
