package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/useda02/hyperviseur/rules/ruletest"
)

// rulesTestCmd is `hyperviseur rules test FILE...`: unit tests of rules, input series and the alerts expected
// to fire, run on simulated time (the format is in the rules/ruletest package doc), like promtool test rules.
func rulesTestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test FILE...",
		Short: "Run unit tests of rules: input series and the alerts expected to fire, on simulated time",
		Long: `Run unit tests of rules, like promtool test rules. A test file names rule files (or holds rules
inline), a registry, a start time and tests: input series in promtool's expanding notation ("100+0.3x26",
"1000 _ 1500x3") and, at offsets from the start, the alerts expected to fire. Each test runs the rules as
the service does, on a fresh store, on simulated time. The format is documented in the rules/ruletest
package (go doc github.com/useda02/hyperviseur/rules/ruletest).

The exit status is non-zero when a test fails or a file cannot be run.`,
		Args:         cobra.MinimumNArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			failed := 0
			for _, f := range args {
				ok, err := ruletest.RunTests(ctx, f, cmd.OutOrStdout())
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "  FAILED:\n%v\n", err)
				}
				if !ok {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("rules test: %d of %d files failed", failed, len(args))
			}
			return nil
		},
	}
}
