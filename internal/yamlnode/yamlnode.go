// Package yamlnode holds the few yaml.v3 node helpers the strict loaders share (registry, rules, rule
// tests): they read a document as nodes first, so every error can name its line.
package yamlnode

import (
	"errors"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Fields maps the YAML keys of a struct type (its `yaml` tags, else its lower-cased field names) to their
// types: what a strict loader accepts at that level.
func Fields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// IsNull reports an absent or null node.
func IsNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// ErrorText flattens the decoder's multi-line type errors into one line; each part already names its line.
func ErrorText(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
