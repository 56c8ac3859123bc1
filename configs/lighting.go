package configs

import (
	"embed"
	"io/fs"
)

// lighting holds configs/lighting/*.yaml, the default street-lighting plan.
//
//go:embed lighting/*.yaml
var lighting embed.FS

// Lighting returns the default lighting plan's files, at the top of the returned file system (default.yaml…):
// load them with lighting.LoadPlan.
func Lighting() fs.FS {
	sub, err := fs.Sub(lighting, "lighting")
	if err != nil {
		panic("configs: lighting: " + err.Error()) // cannot happen: "lighting" is a valid path
	}
	return sub
}
