package configs

import (
	"embed"
	"io/fs"
)

// rules holds configs/rules/*.yaml, the default rule set.
//
//go:embed rules/*.yaml
var rules embed.FS

// Rules returns the default rule set's files, at the top of the returned file system (default.yaml…): load
// them with rules.LoadRulesFS.
func Rules() fs.FS {
	sub, err := fs.Sub(rules, "rules")
	if err != nil {
		panic("configs: rules: " + err.Error()) // cannot happen: "rules" is a valid path
	}
	return sub
}
