package tsdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ptsdb "github.com/prometheus/prometheus/tsdb"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/store/storetest"
)

func open(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) hv.Store { return open(t, t.TempDir()) })
}

var t0 = storetest.T0

func power(dev string, at int64, v float64) hv.Reading {
	return hv.Reading{Device: dev, Metric: hv.PowerW, Time: at, Value: v, Site: "s1"}
}

func count(t *testing.T, s *Store, dev string, from, to int64) []hv.Point {
	t.Helper()
	got, err := s.Query(context.Background(), hv.Query{Metric: hv.PowerW, From: from, To: to, Devices: []string{dev}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		return nil
	}
	return got[0].Points
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Write(context.Background(), []hv.Reading{power("r", t0, 1), power("r", t0+1000, 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []hv.Reading{power("r", t0+2000, 3)}); !errors.Is(err, hv.ErrUnavailable) {
		t.Errorf("write after close: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("ping after close: nil")
	}
	s = open(t, dir)
	defer s.Close()
	if got := count(t, s, "r", t0, t0+hour()); len(got) != 2 || got[1].Value != 2 {
		t.Fatalf("after reopen: %v, want 2 points", got)
	}
	// the reopened store takes new samples after the replayed ones
	if err := s.Write(context.Background(), []hv.Reading{power("r", t0+2000, 3)}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "r", t0, t0+hour()); len(got) != 3 {
		t.Fatalf("after a write on the reopened store: %v, want 3 points", got)
	}
}

func hour() int64 { return time.Hour.Milliseconds() }

func TestOutOfOrderWindow(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	day := 24 * hour()
	if err := s.Write(ctx, []hv.Reading{power("o", t0+10*day, 10)}); err != nil {
		t.Fatal(err)
	}
	// 6 days and 23 h behind the newest sample: accepted, queried in order with the rest
	if err := s.Write(ctx, []hv.Reading{power("o", t0+3*day+hour(), 3), power("other", t0+4*day, 4)}); err != nil {
		t.Fatalf("out-of-order sample within the window: %v", err)
	}
	got := count(t, s, "o", t0, t0+11*day)
	if len(got) != 2 || got[0].Time != t0+3*day+hour() || got[1].Value != 10 {
		t.Fatalf("points: %v", got)
	}
	// 8 days behind: refused with ErrInvalid, the rest of the batch committed
	err := s.Write(ctx, []hv.Reading{power("o", t0+2*day, 2), power("o", t0+10*day+1000, 11)})
	if !errors.Is(err, hv.ErrInvalid) {
		t.Fatalf("sample older than the window: %v, want ErrInvalid", err)
	}
	if got := count(t, s, "o", t0, t0+11*day); len(got) != 3 || got[2].Value != 11 {
		t.Fatalf("after a partly refused batch: %v, want 3 points ending with 11", got)
	}
	if st := s.Stats(); st.TooOld != 1 {
		t.Errorf("stats: %+v, want TooOld 1", st)
	}
}

func TestConflictingSample(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.Write(ctx, []hv.Reading{power("c", t0, 1)}); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, []hv.Reading{power("c", t0, 2), power("c", t0+1000, 3)})
	if !errors.Is(err, hv.ErrInvalid) || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("conflicting value: %v, want ErrInvalid for 1 of 2", err)
	}
	got := count(t, s, "c", t0, t0+hour())
	if len(got) != 2 || got[0].Value != 1 || got[1].Value != 3 {
		t.Fatalf("points: %v, want the first value kept and the other reading stored", got)
	}
	if st := s.Stats(); st.Conflicts != 1 {
		t.Errorf("stats: %+v, want Conflicts 1", st)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{Retention: 24 * time.Hour}, nil); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("retention shorter than the OOO window: %v, want ErrInvalid", err)
	}
	s, err := Open(t.TempDir(), Options{Retention: 400 * 24 * time.Hour, OutOfOrderWindow: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// the 1 h window asked for is raised to the 7-day minimum
	ctx := context.Background()
	day := 24 * hour()
	if err := s.Write(ctx, []hv.Reading{power("o", t0+6*day, 6)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []hv.Reading{power("o", t0, 0)}); err != nil {
		t.Errorf("6 days out of order with a 1 h window asked: %v", err)
	}
}

func TestLabelsCacheSurvivesHeadGC(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.Write(ctx, []hv.Reading{power("g", t0, 1)}); err != nil {
		t.Fatal(err)
	}
	// compact the head into a block and garbage-collect its series: the cached ref goes stale
	if err := s.db.CompactHead(ptsdb.NewRangeHead(s.db.Head(), t0, t0+1)); err != nil {
		t.Fatal(err)
	}
	if n := s.db.Head().NumSeries(); n != 0 {
		t.Fatalf("head still holds %d series after compaction", n)
	}
	if err := s.Write(ctx, []hv.Reading{power("g", t0+1000, 2)}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "g", t0, t0+hour()); len(got) != 2 {
		t.Fatalf("points after head compaction: %v", got)
	}
}

// The crash test runs the writer in a child process that is killed with SIGKILL right after Write returns:
// what Write committed must be in the WAL the next Open replays.
const crashEnv = "HV_TSDB_CRASH_DIR"

// TestMain runs the crash child instead of the tests when the parent test started this binary as one.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func TestCrashKeepsCommittedWrites(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// the child prints how many readings it wrote, then waits to be killed
	var n int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "written "); ok {
			n, _ = strconv.Atoi(v)
			break
		}
	}
	if n == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("child did not report its writes")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); err != nil {
		t.Fatal(err)
	}

	s := open(t, dir) // the kernel released the dead child's lock
	defer s.Close()
	got := count(t, s, "crash", t0, t0+24*hour())
	if len(got) != n {
		t.Fatalf("after the crash: %d points, want %d", len(got), n)
	}
	if got[n-1].Value != float64(n-1) {
		t.Errorf("last point %+v", got[n-1])
	}
}

// crashChild writes committed batches to the store in dir, says how many, and waits to be killed: it never
// closes the store, so only what Write committed to the WAL can survive.
func crashChild(dir string) {
	s, err := Open(dir, Options{}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	const batches, per = 5, 100
	for b := range batches {
		rs := make([]hv.Reading, per)
		for i := range rs {
			k := b*per + i
			rs[i] = power("crash", t0+int64(k)*1000, float64(k))
		}
		if err := s.Write(context.Background(), rs); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
	}
	fmt.Printf("written %d\n", batches*per)
	time.Sleep(time.Minute) // never closes: the parent kills us
}

func TestMatchersQuoteRegexp(t *testing.T) {
	ms, err := matchers(hv.Query{Metric: hv.PowerW, Devices: []string{"a.b", "c|d"}, Sites: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(ms)
	want := `[__name__="power_w" device=~"a\\.b|c\\|d" site="x"]`
	if got != want {
		t.Errorf("matchers: %s, want %s", got, want)
	}
	if !ms[1].Matches("c|d") || ms[1].Matches("axb") || ms[1].Matches("a.bc") {
		t.Error("device matcher is not an anchored alternation of literals")
	}
}

// BenchmarkWrite measures the write path with batches of 1000 readings spread over 5000 series (the steady
// state of ingest: series known, samples in order).
func BenchmarkWrite(b *testing.B) {
	s := open(b, b.TempDir())
	defer s.Close()
	const batch, series = 1000, 5000
	load := storetest.NewMeterLoad(series, t0)
	rs := make([]hv.Reading, batch)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := testenv.CPUTime()
	for b.Loop() {
		load.Fill(rs)
		if err := s.Write(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	readings := float64(b.N * batch)
	perReading := float64(b.Elapsed().Nanoseconds()) / readings
	b.ReportMetric(perReading, "ns/reading")
	b.ReportMetric(1e9/perReading, "readings/s")
	// CPU time of the whole process (tsdb's background goroutines and GC included) is what the service's
	// budget is about, and it stays meaningful on a busy machine where wall time does not.
	b.ReportMetric(float64(testenv.CPUTime()-cpu0)/readings, "cpu-ns/reading")
}

func TestLastAcrossBlocksAndOutOfOrder(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UnixMilli()
	base := now - 10*hour()
	var rs []hv.Reading
	for i := range 300 { // 300 samples a minute apart: several chunks
		rs = append(rs, power("b", base+int64(i)*60_000, float64(i)))
		if i < 100 {
			rs = append(rs, power("only-block", base+int64(i)*60_000, float64(i)))
		}
	}
	if err := s.Write(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// move everything before base+4h into a block: all of "only-block", the start of "b"
	if err := s.db.CompactHead(ptsdb.NewRangeHead(s.db.Head(), base, base+4*hour()-1)); err != nil {
		t.Fatal(err)
	}
	if len(s.db.Blocks()) == 0 {
		t.Fatal("no block after compaction")
	}
	if n := s.db.Head().NumSeries(); n != 1 {
		t.Fatalf("head holds %d series, want only b", n)
	}
	// an out-of-order sample of "b", older than its newest: must not become the newest
	if err := s.Write(ctx, []hv.Reading{power("b", base+30_000, -1)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Last(ctx, []hv.Metric{hv.PowerW}, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Device != "b" || got[0].Time != base+299*60_000 || got[0].Value != 299 ||
		got[1].Device != "only-block" || got[1].Value != 99 || got[1].Time != base+99*60_000 || got[0].Site != "s1" {
		t.Fatalf("last: %+v", got)
	}
	// since after every sample: nothing
	if got, err := s.Last(ctx, []hv.Metric{hv.PowerW}, base+300*60_000); err != nil || len(got) != 0 {
		t.Fatalf("last since after the data: %+v %v", got, err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	const writers, batches, per = 4, 20, 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var err error
			for b := 0; b < batches && err == nil; b++ {
				rs := make([]hv.Reading, per)
				for i := range rs {
					// every writer writes the shared device "s" (same samples: duplicates) and its own
					k := b*per + i
					if i%2 == 0 {
						rs[i] = power("shared", t0+int64(k)*1000, float64(k))
					} else {
						rs[i] = power(fmt.Sprintf("w%d", w), t0+int64(k)*1000, float64(k))
					}
				}
				err = s.Write(context.Background(), rs)
			}
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil && !errors.Is(err, hv.ErrInvalid) {
			t.Fatal(err)
		}
	}
	if got := count(t, s, "w2", t0, t0+hour()); len(got) != batches*per/2 {
		t.Errorf("w2: %d points, want %d", len(got), batches*per/2)
	}
	if got := count(t, s, "shared", t0, t0+hour()); len(got) != batches*per/2 {
		t.Errorf("shared: %d points, want %d", len(got), batches*per/2)
	}
}

// TestBackfillBlocks: history goes in as whole blocks, one per block range, that survive a reopen; a reading
// outside its window fails the backfill as invalid.
func TestBackfillBlocks(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	from, to := t0-40*24*hour(), t0
	fill := func(_ context.Context, wFrom, wTo int64, worker, workers int, emit func([]hv.Reading) error) error {
		if worker != 0 {
			return nil
		}
		var rs []hv.Reading
		for at := wFrom; at < wTo; at += hour() {
			rs = append(rs, power("hist", at, float64(at)))
		}
		return emit(rs)
	}
	if err := s.Backfill(ctx, from, to, fill); err != nil {
		t.Fatal(err)
	}
	// one block per 31-day range aligned on the epoch that the 40 days touch, the head untouched
	if want := int(floorDiv(to-1, s.blockDur) - floorDiv(from, s.blockDur) + 1); len(s.db.Blocks()) != want || want < 2 {
		t.Errorf("%d blocks, want %d", len(s.db.Blocks()), want)
	}
	if n := s.db.Head().NumSeries(); n != 0 {
		t.Errorf("head holds %d series, want 0", n)
	}
	bad := func(_ context.Context, wFrom, _ int64, _, _ int, emit func([]hv.Reading) error) error {
		return emit([]hv.Reading{power("hist", wFrom-1, 1)})
	}
	if err := s.Backfill(ctx, to, to+hour(), bad); !errors.Is(err, hv.ErrInvalid) {
		t.Errorf("reading before its window: %v, want ErrInvalid", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if got := count(t, s, "hist", from, to); len(got) != 40*24 || got[0].Value != float64(from) {
		t.Fatalf("after reopen: %d points, want %d", len(got), 40*24)
	}
}

// TestBackfillRetention: history older than the retention is not written (it would be deleted at once).
func TestBackfillRetention(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Retention: 10 * 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var earliest int64
	fill := func(_ context.Context, wFrom, wTo int64, worker, _ int, emit func([]hv.Reading) error) error {
		if worker != 0 {
			return nil
		}
		if earliest == 0 {
			earliest = wFrom
		}
		var rs []hv.Reading
		for at := wFrom; at < wTo; at += hour() {
			rs = append(rs, power("old", at, 1))
		}
		return emit(rs)
	}
	if err := s.Backfill(context.Background(), t0-30*24*hour(), t0, fill); err != nil {
		t.Fatal(err)
	}
	if earliest != t0-10*24*hour() {
		t.Fatalf("history filled from %d, want the retention's edge %d", earliest, t0-10*24*hour())
	}
	if got := count(t, s, "old", t0-30*24*hour(), t0); len(got) != 10*24 {
		t.Fatalf("%d points kept, want %d", len(got), 10*24)
	}
}
