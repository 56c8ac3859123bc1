// Package yamlnode holds the few yaml.v3 node helpers the strict loaders share (registry, rules, rule
// tests): they read a document as nodes first, so every error can name its line.
package yamlnode

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
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

// Top decodes data as exactly one YAML document and returns its top node: nil for an empty document (or
// null), else a mapping. problem, with the line it is on (0 when unknown), says why it is not.
func Top(data []byte, want string) (top *yaml.Node, line int, problem string) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, ""
		}
		return nil, 0, ErrorText(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, extra.Line, "more than one YAML document: keep one per file"
	}
	top = &root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if IsNull(top) {
		return nil, 0, ""
	}
	if top.Kind != yaml.MappingNode {
		return nil, top.Line, "the document must be a mapping with " + want
	}
	return top, 0, ""
}

// Collector gathers a load's problems, keeping the first Max (default 20), so one bad file gives one
// readable report.
type Collector struct {
	Max  int
	errs []error
	n    int
}

// Add records a problem.
func (c *Collector) Add(err error) {
	c.n++
	if len(c.errs) < cmp.Or(c.Max, 20) {
		c.errs = append(c.errs, err)
	}
}

// Count is the number of problems recorded.
func (c *Collector) Count() int { return c.n }

// Err joins the problems kept, saying how many more there were; nil without any.
func (c *Collector) Err() error {
	if c.n == 0 {
		return nil
	}
	if c.n > len(c.errs) {
		return errors.Join(append(c.errs, fmt.Errorf("… and %d more problems", c.n-len(c.errs)))...)
	}
	return errors.Join(c.errs...)
}
