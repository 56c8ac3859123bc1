package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesTestCommand: passing files print SUCCESS and exit 0; a failing file or one that cannot be run
// makes the command fail, with the report on stdout and the file's errors on stderr.
func TestRulesTestCommand(t *testing.T) {
	testdata := filepath.Join("..", "..", "rules", "ruletest", "testdata")
	run := func(args ...string) (stdout, stderr string, err error) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := rulesTestCmd() // not yet under `rules`: run on its own
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(args)
		err = cmd.Execute()
		return out.String(), errOut.String(), err
	}

	out, _, err := run(filepath.Join(testdata, "default.yaml"), filepath.Join(testdata, "inline.yaml"))
	if err != nil {
		t.Fatalf("passing files: %v\n%s", err, out)
	}
	if n := strings.Count(out, "  SUCCESS\n"); n != 2 {
		t.Fatalf("%d SUCCESS for 2 passing files:\n%s", n, out)
	}

	out, _, err = run(filepath.Join(testdata, "failing.yaml"), filepath.Join(testdata, "inline.yaml"))
	if err == nil || !strings.Contains(err.Error(), "1 of 2 files failed") {
		t.Fatalf("a failing file: err %v", err)
	}
	if !strings.Contains(out, "  FAILED:\n") || !strings.Contains(out, `fuite-eau{device="eau-ecole"}   <- not firing`) ||
		strings.Count(out, "  SUCCESS\n") != 1 {
		t.Fatalf("report:\n%s", out)
	}

	_, errOut, err := run(filepath.Join(testdata, "bad", "unknown-key.bad.yaml"))
	if err == nil || !strings.Contains(errOut, `line 8: unknown key "valeus"`) {
		t.Fatalf("a file that cannot be run: err %v, stderr %q", err, errOut)
	}

	if _, _, err := run(); err == nil {
		t.Fatal("no file: no error")
	}
}
