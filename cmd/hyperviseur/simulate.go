package main

import (
	"github.com/spf13/cobra"

	"github.com/useda02/hyperviseur/registry"
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
			t, err := registry.DefaultTerritory()
			if err != nil {
				return err
			}
			f, err := fleet.Generate(t, o)
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
	cmd.AddCommand(fleetCmd)
	return cmd
}
