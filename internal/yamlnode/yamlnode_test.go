package yamlnode

import (
	"errors"
	"strings"
	"testing"
)

func TestTop(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		mapping   bool
		line      int
		problem   string
	}{
		{"mapping", "a: 1\n", true, 0, ""},
		{"empty", "", false, 0, ""},
		{"null", "~\n", false, 0, ""},
		{"list", "- a\n- b\n", false, 1, "the document must be a mapping with a, b"},
		{"two documents", "a: 1\n---\nb: 2\n", false, 2, "more than one YAML document"}, // the second starts at its ---
		{"syntax", "a: [1\n", false, 0, "did not find expected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			top, line, problem := Top([]byte(c.doc), "a, b")
			if (top != nil) != c.mapping || line != c.line || (c.problem == "") != (problem == "") || !strings.Contains(problem, c.problem) {
				t.Errorf("Top = %v, %d, %q; want mapping %v, line %d, %q", top != nil, line, problem, c.mapping, c.line, c.problem)
			}
		})
	}
}

func TestCollector(t *testing.T) {
	c := Collector{Max: 2}
	if c.Err() != nil {
		t.Fatal("no problem, yet an error")
	}
	for _, m := range []string{"a", "b", "c", "d"} {
		c.Add(errors.New(m))
	}
	if got := c.Err().Error(); got != "a\nb\n… and 2 more problems" || c.Count() != 4 {
		t.Errorf("Err = %q, Count %d", got, c.Count())
	}
}
