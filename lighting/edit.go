package lighting

import (
	"bytes"
	"fmt"
)

// ParseProgramDef reads one program definition sent through the API: a JSON object with the keys of a
// program in the plan's YAML (durations as "5m"), checked on its own; the caller then validates it against
// the whole plan (Plan.WithProgram).
func ParseProgramDef(name string, body []byte) (ProgramDef, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return ProgramDef{}, fmt.Errorf("%s: %w: want a JSON object", name, ErrInvalid)
	}
	// JSON is YAML's flow style: the plan's strict loader checks keys, types and values, with their line.
	doc := append(append([]byte(`{"programs": [`), body...), "]}"...)
	p, err := ParsePlan(name, doc)
	if err != nil {
		return ProgramDef{}, err
	}
	if len(p.Programs) != 1 {
		return ProgramDef{}, fmt.Errorf("%s: %w: want one program", name, ErrInvalid)
	}
	return p.Programs[0], nil
}
