package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// logCounter counts log records by message, so tests can check a warning is logged once, not per batch.
type logCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func newLogCounter() *logCounter { return &logCounter{msgs: make(map[string]int)} }

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message]++
	return nil
}
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCounter) WithGroup(string) slog.Handler      { return h }

func (h *logCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

func openSpool(t *testing.T, dir string, opts Options, logger *slog.Logger) *Spool {
	t.Helper()
	s, err := OpenWithOptions(dir, opts, logger)
	if err != nil {
		t.Fatalf("open spool: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func closeSpool(t *testing.T, s *Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close spool: %v", err)
	}
}

// batch is batch number id: its size and content follow from id so any test can rebuild it to compare.
func batch(id int) []hv.Reading {
	n := 1 + id%5
	rs := make([]hv.Reading, n)
	for j := range rs {
		rs[j] = hv.Reading{
			Device:  fmt.Sprintf("cpt-%03d", (id+j)%7),
			Metric:  hv.EnergyKWh,
			Value:   float64(id) + float64(j)/8,
			Time:    int64(id)*1_000_000 + int64(j),
			Site:    "mairie-laon",
			Commune: "02408",
			EPCI:    "200043495",
			Fluid:   hv.Electricity,
		}
	}
	return rs
}

func batchID(rs []hv.Reading) int { return int(rs[0].Time / 1_000_000) }

func appendBatches(t *testing.T, s *Spool, ids ...int) {
	t.Helper()
	for _, id := range ids {
		if err := s.Append(batch(id)); err != nil {
			t.Fatalf("append batch %d: %v", id, err)
		}
	}
}

func seq(from, to int) []int {
	var ids []int
	for i := from; i < to; i++ {
		ids = append(ids, i)
	}
	return ids
}

// drain replays everything and returns the batches in the order write saw them.
func drain(t *testing.T, s *Spool) [][]hv.Reading {
	t.Helper()
	var got [][]hv.Reading
	n, err := s.Replay(context.Background(), func(_ context.Context, rs []hv.Reading) error {
		got = append(got, rs)
		return nil
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	total := 0
	for _, rs := range got {
		total += len(rs)
	}
	if n != total {
		t.Fatalf("replay reported %d readings, write saw %d", n, total)
	}
	if s.Pending() != 0 || s.Bytes() != 0 {
		t.Fatalf("after a full replay: pending %d batches, %d bytes; want 0, 0", s.Pending(), s.Bytes())
	}
	return got
}

// drainIDs replays everything and checks each batch against the one its id names.
func drainIDs(t *testing.T, s *Spool) []int {
	t.Helper()
	var ids []int
	for _, rs := range drain(t, s) {
		id := batchID(rs)
		assertReadings(t, rs, batch(id))
		ids = append(ids, id)
	}
	return ids
}

func assertIDs(t *testing.T, got, want []int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("batches replayed:\n got %v\nwant %v", got, want)
	}
}

// assertReadings compares values by their bits, so NaN and -0 count as round-tripped only if exact.
func assertReadings(t *testing.T, got, want []hv.Reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d readings, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		gv, wv := math.Float64bits(g.Value), math.Float64bits(w.Value)
		g.Value, w.Value = 0, 0
		if g != w || gv != wv {
			t.Fatalf("reading %d:\n got %+v (value bits %#x)\nwant %+v (value bits %#x)", i, got[i], gv, want[i], wv)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func segBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range segFiles(t, dir) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	many := make([]hv.Reading, 300) // more strings than a one-byte index can name
	for i := range many {
		many[i] = hv.Reading{Device: fmt.Sprintf("lum-%04d", i), Metric: hv.LevelPct, Value: float64(i % 101),
			Time: 1_735_689_600_000 + int64(i)*600_000, Commune: "02691", Fluid: hv.Electricity}
	}
	batches := [][]hv.Reading{
		{{Device: "compteur-é€😀", Metric: hv.EnergyKWh, Value: -1.5e300, Time: math.MinInt64,
			Site: "Hôtel de ville — Saint-Quentin", Commune: "02691", EPCI: "200071983", Fluid: hv.Electricity},
			{Device: "compteur-é€😀", Metric: hv.PowerW, Value: math.MaxFloat64, Time: math.MaxInt64,
				Site: "Hôtel de ville — Saint-Quentin", Commune: "02691", EPCI: "200071983", Fluid: hv.Electricity},
			{Device: "日本語", Metric: hv.TemperatureC, Value: -273.15, Time: -1, Site: "ø", Fluid: hv.Weather},
			{Value: math.Inf(-1)},
			{Value: math.Inf(1), Time: 1},
			{Value: math.NaN(), Time: math.MinInt64},
			{Value: math.Copysign(0, -1)},
			{Value: math.SmallestNonzeroFloat64, Time: math.MaxInt64},
			{Device: strings.Repeat("x", 70_000), Metric: hv.Metric("energy_kwh_delta"), Value: 1e-300,
				Fluid: hv.Fluid("\x00\xff invalid utf-8")}},
		many,
	}
	for id := range 40 {
		batches = append(batches, batch(id))
	}
	for _, tc := range []struct {
		name   string
		reopen bool
	}{
		{name: "same process"},
		{name: "after reopen", reopen: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{MaxBytes: 1 << 20, SegmentBytes: 512}
			s := openSpool(t, dir, opts, nil)
			for i, rs := range batches {
				if err := s.Append(rs); err != nil {
					t.Fatalf("append batch %d: %v", i, err)
				}
			}
			if err := s.Append(nil); err != nil {
				t.Fatalf("append empty batch: %v", err)
			}
			if n := len(segFiles(t, dir)); n < 5 {
				t.Fatalf("%d segments on disk; want the small segment size to rotate often", n)
			}
			if got, want := s.Bytes(), segBytes(t, dir); got != want {
				t.Fatalf("Bytes() = %d, segments hold %d", got, want)
			}
			if got := s.Pending(); got != len(batches) {
				t.Fatalf("Pending() = %d, want %d", got, len(batches))
			}
			if tc.reopen {
				closeSpool(t, s)
				s = openSpool(t, dir, opts, nil)
				if got := s.Pending(); got != len(batches) {
					t.Fatalf("Pending() after reopen = %d, want %d", got, len(batches))
				}
				if got, want := s.Bytes(), segBytes(t, dir); got != want {
					t.Fatalf("Bytes() after reopen = %d, segments hold %d", got, want)
				}
			}
			got := drain(t, s)
			if len(got) != len(batches) {
				t.Fatalf("replayed %d batches, want %d", len(got), len(batches))
			}
			for i := range got {
				assertReadings(t, got[i], batches[i])
			}
			if files := segFiles(t, dir); len(files) != 0 {
				t.Fatalf("segments left after a full replay: %v", files)
			}
			appendBatches(t, s, 7)
			assertIDs(t, drainIDs(t, s), []int{7})
		})
	}
}

func TestOpenOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		noDir bool
		opts  Options
	}{
		{name: "no directory", noDir: true, opts: Options{MaxBytes: 1}},
		{name: "zero max bytes", opts: Options{}},
		{name: "negative max bytes", opts: Options{MaxBytes: -1}},
		{name: "negative segment bytes", opts: Options{MaxBytes: 1, SegmentBytes: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.noDir {
				dir = ""
			}
			if _, err := OpenWithOptions(dir, tc.opts, nil); !errors.Is(err, hv.ErrInvalid) {
				t.Fatalf("open with %+v: got %v, want ErrInvalid", tc.opts, err)
			}
		})
	}
}

func TestLockedAndClosed(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Options{MaxBytes: 1 << 20}, nil)
	if _, err := Open(dir, 1<<20, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open of the same directory: got %v, want ErrLocked", err)
	}
	appendBatches(t, s, 1)
	closeSpool(t, s)
	closeSpool(t, s) // idempotent
	if err := s.Append(batch(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: got %v, want ErrClosed", err)
	}
	noop := func(context.Context, []hv.Reading) error { return nil }
	if _, err := s.Replay(context.Background(), noop); !errors.Is(err, ErrClosed) {
		t.Fatalf("replay after close: got %v, want ErrClosed", err)
	}
	s = openSpool(t, dir, Options{MaxBytes: 1 << 20}, nil)
	assertIDs(t, drainIDs(t, s), []int{1})
}

func TestErrFull(t *testing.T) {
	dir := t.TempDir()
	logs := newLogCounter()
	s := openSpool(t, dir, Options{MaxBytes: 4096, SegmentBytes: 1024}, slog.New(logs))

	fill := func(from int) int {
		t.Helper()
		for id := from; ; id++ {
			err := s.Append(batch(id))
			if errors.Is(err, ErrFull) {
				return id
			}
			if err != nil {
				t.Fatalf("append batch %d: %v", id, err)
			}
			if s.Bytes() > 4096 {
				t.Fatalf("Bytes() = %d over MaxBytes", s.Bytes())
			}
		}
	}
	refused := fill(0)
	bytes, pending, onDisk := s.Bytes(), s.Pending(), segBytes(t, dir)
	for range 3 {
		if err := s.Append(batch(refused)); !errors.Is(err, ErrFull) {
			t.Fatalf("append to a full spool: got %v, want ErrFull", err)
		}
	}
	if s.Bytes() != bytes || s.Pending() != pending || segBytes(t, dir) != onDisk {
		t.Fatalf("a refused append changed the spool: bytes %d→%d, pending %d→%d, on disk %d→%d",
			bytes, s.Bytes(), pending, s.Pending(), onDisk, segBytes(t, dir))
	}
	if got := logs.count("spool above 80% of its limit"); got != 1 {
		t.Fatalf("80%% warning logged %d times, want once", got)
	}
	if got := logs.count("spool full: rejecting batches until replay frees space"); got != 1 {
		t.Fatalf("full warning logged %d times, want once", got)
	}

	assertIDs(t, drainIDs(t, s), seq(0, refused))
	if err := s.Append(batch(refused)); err != nil {
		t.Fatalf("append after replay freed space: %v", err)
	}
	// The warnings re-arm once replay brought the spool back under 80 %.
	refused2 := fill(refused + 1)
	if err := s.Append(batch(refused2)); !errors.Is(err, ErrFull) {
		t.Fatalf("append to a full spool: got %v, want ErrFull", err)
	}
	if got := logs.count("spool above 80% of its limit"); got != 2 {
		t.Fatalf("80%% warning logged %d times over two fill-ups, want 2", got)
	}
	if got := logs.count("spool full: rejecting batches until replay frees space"); got != 2 {
		t.Fatalf("full warning logged %d times over two fill-ups, want 2", got)
	}

	// A batch larger than the whole spool is refused outright, even when empty.
	drainIDs(t, s)
	huge := make([]hv.Reading, 1000)
	if err := s.Append(huge); !errors.Is(err, ErrFull) {
		t.Fatalf("append of a batch larger than MaxBytes: got %v, want ErrFull", err)
	}
	if s.Bytes() != 0 || segBytes(t, dir) != 0 {
		t.Fatalf("a refused append wrote %d bytes (%d on disk)", s.Bytes(), segBytes(t, dir))
	}
}

func TestReplayStopsAtFirstError(t *testing.T) {
	errStore := errors.New("store unavailable")
	const total = 6
	for _, tc := range []struct {
		name   string
		failAt int // id of the batch the store refuses
		reopen bool
	}{
		{name: "first batch", failAt: 0},
		{name: "middle batch", failAt: 2},
		{name: "last batch", failAt: total - 1},
		{name: "middle batch, resumed after reopen", failAt: 3, reopen: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{MaxBytes: 1 << 20, SegmentBytes: 200} // a few batches per segment
			s := openSpool(t, dir, opts, nil)
			appendBatches(t, s, seq(0, total)...)

			var seen []int
			n, err := s.Replay(context.Background(), func(_ context.Context, rs []hv.Reading) error {
				if batchID(rs) == tc.failAt {
					return errStore
				}
				seen = append(seen, batchID(rs))
				return nil
			})
			if err != errStore {
				t.Fatalf("replay: got error %v, want the write's error unchanged", err)
			}
			wantN := 0
			for id := range tc.failAt {
				wantN += len(batch(id))
			}
			if n != wantN {
				t.Fatalf("replay reported %d readings, want %d", n, wantN)
			}
			assertIDs(t, seen, seq(0, tc.failAt))
			if got := s.Pending(); got != total-tc.failAt {
				t.Fatalf("Pending() = %d, want %d", got, total-tc.failAt)
			}
			if tc.reopen {
				closeSpool(t, s)
				s = openSpool(t, dir, opts, nil)
			}
			assertIDs(t, drainIDs(t, s), seq(tc.failAt, total))
		})
	}

	t.Run("cancelled context", func(t *testing.T) {
		s := openSpool(t, t.TempDir(), Options{MaxBytes: 1 << 20}, nil)
		appendBatches(t, s, 0, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, err := s.Replay(ctx, func(context.Context, []hv.Reading) error {
			t.Fatal("write called with a cancelled context")
			return nil
		})
		if !errors.Is(err, context.Canceled) || n != 0 {
			t.Fatalf("replay with a cancelled context: %d, %v; want 0, context.Canceled", n, err)
		}
		assertIDs(t, drainIDs(t, s), []int{0, 1})
	})
}

// copyDir copies a spool directory so each damage case starts from the same bytes.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestRecoverTornOrCorruptTail(t *testing.T) {
	// Batches 0, 1 in a first segment; 2, 3 in the last one (each Open starts a new segment). The last
	// record, batch 3, is the one a crash during its Append can tear.
	golden := t.TempDir()
	opts := Options{MaxBytes: 1 << 20}
	s := openSpool(t, golden, opts, nil)
	appendBatches(t, s, 0, 1)
	closeSpool(t, s)
	s = openSpool(t, golden, opts, nil)
	appendBatches(t, s, 2)
	start := s.Bytes()
	appendBatches(t, s, 3)
	end := s.Bytes()
	closeSpool(t, s)
	segs := segFiles(t, golden)
	if len(segs) != 2 {
		t.Fatalf("want 2 segments, got %v", segs)
	}
	last := filepath.Base(segs[1])
	st, err := os.Stat(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	recStart, recEnd := st.Size()-(end-start), st.Size()

	check := func(t *testing.T, dir string, wantTruncated int, appendAfter bool) {
		t.Helper()
		s := openSpool(t, dir, opts, nil)
		if got := s.Truncated(); got != wantTruncated {
			t.Fatalf("Truncated() = %d, want %d", got, wantTruncated)
		}
		if got := s.Pending(); got != 3 {
			t.Fatalf("Pending() = %d, want 3", got)
		}
		want := []int{0, 1, 2}
		if appendAfter { // a sample only: each append is two more fsyncs in a loop over every byte
			appendBatches(t, s, 4)
			want = append(want, 4)
		}
		assertIDs(t, drainIDs(t, s), want)
	}
	t.Run("truncated", func(t *testing.T) {
		for cut := recStart; cut < recEnd; cut++ {
			t.Run(strconv.FormatInt(cut, 10), func(t *testing.T) {
				dir := copyDir(t, golden)
				if err := os.Truncate(filepath.Join(dir, last), cut); err != nil {
					t.Fatal(err)
				}
				want := 1
				if cut == recStart { // the crash left nothing of the record: nothing to cut
					want = 0
				}
				check(t, dir, want, cut%8 == 0)
			})
		}
	})
	t.Run("corrupt byte", func(t *testing.T) {
		for pos := recStart; pos < recEnd; pos++ {
			t.Run(strconv.FormatInt(pos, 10), func(t *testing.T) {
				dir := copyDir(t, golden)
				path := filepath.Join(dir, last)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[pos] ^= 0x5a
				if err := os.WriteFile(path, b, 0o640); err != nil {
					t.Fatal(err)
				}
				check(t, dir, 1, pos%8 == 0)
			})
		}
	})
	t.Run("corrupt earlier segment", func(t *testing.T) {
		// Disk damage in a sealed segment costs the rest of that segment only.
		dir := copyDir(t, golden)
		path := filepath.Join(dir, filepath.Base(segs[0]))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 0xff // inside batch 1
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		logs := newLogCounter()
		s := openSpool(t, dir, opts, slog.New(logs))
		if s.Truncated() != 1 || logs.count("spool: cut corrupt record and the rest of its segment") != 1 {
			t.Fatalf("Truncated() = %d, error logged %d times; want 1, 1", s.Truncated(),
				logs.count("spool: cut corrupt record and the rest of its segment"))
		}
		assertIDs(t, drainIDs(t, s), []int{0, 2, 3})
	})
	t.Run("damaged offset file", func(t *testing.T) {
		// Losing the replay offset replays again (duplicates the store absorbs) rather than skipping data.
		dir := copyDir(t, golden)
		s := openSpool(t, dir, opts, nil)
		var seen []int
		_, err := s.Replay(context.Background(), func(_ context.Context, rs []hv.Reading) error {
			if batchID(rs) == 3 {
				return errors.New("store down")
			}
			seen = append(seen, batchID(rs))
			return nil
		})
		if err == nil {
			t.Fatal("replay: want the write's error")
		}
		assertIDs(t, seen, []int{0, 1, 2})
		closeSpool(t, s)
		if err := os.WriteFile(filepath.Join(dir, offsetName), []byte("garbage"), 0o640); err != nil {
			t.Fatal(err)
		}
		s = openSpool(t, dir, opts, nil)
		assertIDs(t, drainIDs(t, s), []int{2, 3})
	})
}

func TestRecoverLostSegmentDeletion(t *testing.T) {
	// A crash after Replay deleted a segment but before the directory fsync brings the segment back, while
	// the offset already points into a later one: Open must delete it again, not replay it.
	dir := t.TempDir()
	opts := Options{MaxBytes: 1 << 20}
	s := openSpool(t, dir, opts, nil)
	appendBatches(t, s, 0, 1)
	closeSpool(t, s)
	s = openSpool(t, dir, opts, nil)
	appendBatches(t, s, 2, 3, 4)
	first := segFiles(t, dir)[0]
	saved, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Replay(context.Background(), func(_ context.Context, rs []hv.Reading) error {
		if batchID(rs) == 4 {
			return errors.New("store down")
		}
		return nil
	})
	if err == nil {
		t.Fatal("replay: want the write's error")
	}
	closeSpool(t, s)
	if err := os.WriteFile(first, saved, 0o640); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, dir, opts, nil)
	assertIDs(t, drainIDs(t, s), []int{4})
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("replayed segment %s still on disk: %v", first, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	rec, err := getEncoder().encode(batch(4))
	if err != nil {
		t.Fatal(err)
	}
	valid := slices.Clone(rec[headerSize:])
	if _, err := decodePayload(valid); err != nil {
		t.Fatalf("decode valid payload: %v", err)
	}
	cases := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"trailing byte", append(slices.Clone(valid), 0)},
		// version 1, one string "a", one reading whose device index 5 is outside the table.
		{"index out of table", []byte{1, 1, 1, 'a', 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"zero readings", []byte{1, 0, 0, 0}},
		{"huge string count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge reading count", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}},
	}
	for cut := 1; cut < len(valid); cut++ {
		cases = append(cases, struct {
			name string
			p    []byte
		}{fmt.Sprintf("cut at %d", cut), valid[:cut]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodePayload(tc.p); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode: got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestConcurrentAppendReplay(t *testing.T) {
	s := openSpool(t, t.TempDir(), Options{MaxBytes: 1 << 30, SegmentBytes: 1024}, nil)
	const (
		appenders = 2
		perWriter = 150
	)
	errFlaky := errors.New("store hiccup")
	var (
		mu   sync.Mutex
		got  []int
		rnd  = rand.New(rand.NewPCG(1, 2))
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	write := func(_ context.Context, rs []hv.Reading) error {
		mu.Lock()
		defer mu.Unlock()
		if rnd.IntN(8) == 0 {
			return errFlaky
		}
		got = append(got, batchID(rs))
		return nil
	}
	for a := range appenders {
		wg.Go(func() {
			for i := range perWriter {
				if err := s.Append(batch(a*10_000 + i)); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Go(func() {
			for {
				_, err := s.Replay(context.Background(), write)
				if err != nil && !errors.Is(err, errFlaky) {
					t.Errorf("replay: %v", err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	for s.Pending() > 0 {
		if _, err := s.Replay(context.Background(), write); err != nil && !errors.Is(err, errFlaky) {
			t.Fatalf("replay: %v", err)
		}
	}
	if s.Bytes() != 0 {
		t.Fatalf("Bytes() = %d with nothing pending", s.Bytes())
	}
	if len(got) != appenders*perWriter {
		t.Fatalf("replayed %d batches, want %d", len(got), appenders*perWriter)
	}
	for a := range appenders {
		var mine []int
		for _, id := range got {
			if id/10_000 == a {
				mine = append(mine, id)
			}
		}
		assertIDs(t, mine, seq(a*10_000, a*10_000+perWriter))
	}
}

// The kill -9 tests re-execute the test binary as a child running TestHelperProcess.
const (
	envHelperDir   = "HV_SPOOL_HELPER_DIR"
	envHelperMode  = "HV_SPOOL_HELPER_MODE"
	envHelperStart = "HV_SPOOL_HELPER_START"
)

var killOpts = Options{MaxBytes: 1 << 30, SegmentBytes: 4 << 10}

// TestMain runs the kill -9 tests' child instead of the tests when one of them started this binary.
func TestMain(m *testing.M) {
	if dir := os.Getenv(envHelperDir); dir != "" {
		helperProcess(dir)
	}
	os.Exit(m.Run())
}

// helperProcess is the child of the kill -9 tests. In "append" mode it appends batches from
// HV_SPOOL_HELPER_START on and prints each id once Append returned; in "replay" mode it replays the spool
// with a write that prints each id it is given, as a store would acknowledge it. It never returns.
func helperProcess(dir string) {
	s, err := OpenWithOptions(dir, killOpts, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch os.Getenv(envHelperMode) {
	case "append":
		start, _ := strconv.Atoi(os.Getenv(envHelperStart))
		for id := start; ; id++ {
			if err := s.Append(batch(id)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Fprintln(os.Stdout, id) // os.Stdout is unbuffered: the parent sees it before the next Append
		}
	case "replay":
		_, err := s.Replay(context.Background(), func(_ context.Context, rs []hv.Reading) error {
			fmt.Fprintln(os.Stdout, batchID(rs))
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stdout, "done")
		select {} // wait for the kill, like a service would keep running
	}
	os.Exit(2)
}

// runAndKill starts the helper, SIGKILLs it once it printed killAfter lines, and returns every line it
// printed before dying.
func runAndKill(t *testing.T, dir, mode string, start, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelperDir+"="+dir, envHelperMode+"="+mode,
		envHelperStart+"="+strconv.Itoa(start))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == killAfter || sc.Text() == "done" {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill helper: %v", err)
			}
			break
		}
	}
	// Lines the child printed before the kill landed are acknowledgements too.
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die of SIGKILL: %v\nstderr: %s", err, stderr.String())
	}
	return lines
}

func atoiLines(t *testing.T, lines []string) []int {
	t.Helper()
	var ids []int
	for _, l := range lines {
		if l == "done" {
			continue
		}
		id, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("helper printed %q", l)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestAppendSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	written := 0
	for round := range 4 {
		acked := atoiLines(t, runAndKill(t, dir, "append", written, 20+rnd.IntN(200)))
		assertIDs(t, acked, seq(written, written+len(acked)))
		s := openSpool(t, dir, killOpts, nil)
		// Every acknowledged batch is there; one more may be, written but killed before its ack was printed.
		if p := s.Pending(); p != written+len(acked) && p != written+len(acked)+1 {
			t.Fatalf("round %d: %d batches spooled after %d acknowledged", round, p, written+len(acked))
		}
		written = s.Pending()
		t.Logf("round %d: %d acknowledged, %d spooled, %d torn records cut", round, len(acked), written, s.Truncated())
		closeSpool(t, s)
	}
	s := openSpool(t, dir, killOpts, nil)
	assertIDs(t, drainIDs(t, s), seq(0, written))
}

func TestReplaySurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, killOpts, nil)
	const total = 400
	appendBatches(t, s, seq(0, total)...)
	closeSpool(t, s)

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	next := 0 // first batch still spooled
	for round := 0; next < total; round++ {
		stored := atoiLines(t, runAndKill(t, dir, "replay", 0, 1+rnd.IntN(60)))
		if len(stored) > 0 {
			// The child starts where the spool says; a batch whose commit the kill cut is written again.
			assertIDs(t, stored, seq(stored[0], stored[0]+len(stored)))
			if stored[0] != next {
				t.Fatalf("round %d: replay started at batch %d, spool had %d first", round, stored[0], next)
			}
		}
		s := openSpool(t, dir, killOpts, nil)
		first := total - s.Pending()
		// Nothing stored is lost, and at most the one batch in flight at the kill is replayed twice.
		switch last := next + len(stored) - 1; {
		case len(stored) == 0 && first != next:
			t.Fatalf("round %d: nothing stored, yet the spool moved from batch %d to %d", round, next, first)
		case len(stored) > 0 && first != last && first != last+1:
			t.Fatalf("round %d: stored up to batch %d, spool now starts at %d", round, last, first)
		}
		t.Logf("round %d: %d batches stored, spool now starts at %d", round, len(stored), first)
		next = first
		closeSpool(t, s)
	}
	s = openSpool(t, dir, killOpts, nil)
	if s.Pending() != 0 {
		t.Fatalf("%d batches left", s.Pending())
	}
}

func FuzzDecodePayload(f *testing.F) {
	e := getEncoder()
	for _, id := range []int{0, 3, 4} {
		rec, err := e.encode(batch(id))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(slices.Clone(rec[headerSize:]))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		rs, err := decodePayload(p)
		if err != nil {
			return
		}
		rec, err := getEncoder().encode(rs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodePayload(rec[headerSize:])
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		assertReadings(t, again, rs)
	})
}

// benchBatch is a realistic ingest batch: 50 meters of one site reporting 10 metrics each.
func benchBatch(n int, base int64) []hv.Reading {
	metrics := []hv.Metric{hv.EnergyKWh, hv.PowerW, hv.VoltageV, hv.CurrentA, hv.PowerFactor,
		hv.TemperatureC, hv.LevelPct, hv.IlluminanceLux, hv.Presence, hv.OperatingHours}
	rs := make([]hv.Reading, n)
	for i := range rs {
		dev := i / len(metrics)
		rs[i] = hv.Reading{
			Device:  fmt.Sprintf("a84041000181%04x", dev),
			Metric:  metrics[i%len(metrics)],
			Value:   12345.678 + float64(i)*0.37,
			Time:    base + int64(dev)*1500,
			Site:    fmt.Sprintf("site-%02d", dev%5),
			Commune: "02691",
			EPCI:    "200071983",
			Fluid:   hv.Electricity,
		}
	}
	return rs
}

func BenchmarkEncode(b *testing.B) {
	rs := benchBatch(500, 1_735_689_600_000)
	e := getEncoder()
	var n int
	b.ReportAllocs()
	for b.Loop() {
		rec, err := e.encode(rs)
		if err != nil {
			b.Fatal(err)
		}
		n = len(rec)
	}
	b.ReportMetric(float64(n)/500, "B/reading")
}

func BenchmarkDecode(b *testing.B) {
	rec, err := getEncoder().encode(benchBatch(500, 1_735_689_600_000))
	if err != nil {
		b.Fatal(err)
	}
	payload := slices.Clone(rec[headerSize:])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePayload(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	s, err := OpenWithOptions(b.TempDir(), Options{MaxBytes: 1 << 40}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rs := benchBatch(500, 1_735_689_600_000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Append(rs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.Bytes())/float64(b.N*len(rs)), "B/reading")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/batch")
}

func BenchmarkReplay(b *testing.B) {
	s, err := OpenWithOptions(b.TempDir(), Options{MaxBytes: 1 << 40}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rs := benchBatch(500, 1_735_689_600_000)
	for range b.N {
		if err := s.Append(rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n, err := s.Replay(context.Background(), func(context.Context, []hv.Reading) error { return nil })
	b.StopTimer()
	if err != nil || n != b.N*len(rs) {
		b.Fatalf("replay: %d readings, %v", n, err)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/batch")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}
