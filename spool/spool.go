// Package spool is the disk queue ingest falls back to when the store is down: an append-only, fsync'd,
// segmented log of reading batches. A batch is acknowledged to MQTT once Append returns nil, and replayed
// into the store, oldest first, when it is back.
//
// # On disk
//
// A spool is one directory holding:
//
//	0000000000000001.seg   segments, oldest first
//	consumed               how far the oldest segment has been replayed
//	LOCK                   flock'd while a process has the spool open (one process per directory)
//
// A segment is a sequence of records and nothing else (no file header). Append rotates to a new segment
// when the current one would grow past Options.SegmentBytes (8 MiB by default), and each Open starts a new
// segment, so the segments it found are never written again. A new segment is numbered above every segment
// present and above the one the consumed file names, so an old offset never applies to a new file.
//
// A record is
//
//	uint32 LE  payload length
//	uint32 LE  CRC32C (Castagnoli) of the 4 length bytes followed by the payload
//	payload
//
// and its payload (version 1) is
//
//	byte     version = 1
//	uvarint  number of strings S, then S × (uvarint length, UTF-8 bytes)
//	uvarint  number of readings N (≥ 1)
//	varint   t0 = Time of the first reading (zig-zag, Unix ms)
//	N × { uvarint Device, Metric, Site, Commune, EPCI, Fluid as indexes into the string table;
//	      varint Time−t0 (zig-zag, wrapping); 8 bytes LE IEEE-754 bits of Value }
//
// The per-record string table makes the labels that every reading of a device repeats cost one byte each:
// a batch of 500 readings (50 meters × 10 metrics) takes 19 bytes per reading, 8 of them the value.
//
// The consumed file is 21 bytes: a version byte (1), the segment number and byte offset (uint64 LE each)
// and a CRC32C of those 17 bytes. It is replaced by write-temp, fsync, rename, directory fsync, so it
// always holds either the old or the new offset.
//
// # Durability
//
// When Append returns nil, the record and, for a new segment, the directory entry have been fsync'd: the
// batch survives kill -9 and power loss (on storage that honours fsync). Replay removes a batch once write
// accepted it: by committing the offset after it, or, for the last record of a segment, by deleting the
// segment and fsyncing the directory. A crash between an accepted write and that commit replays the batch
// again on the next run: delivery to the store is at least once, which is harmless because store writes
// are idempotent (the same device, metric, labels and time are stored once). No batch is ever lost or
// reordered by a crash.
//
// Open recovers from a crash: it checks every pending record, and truncates a segment at the first torn
// (cut short) or corrupt (bad length or checksum) record, logging what was cut and counting it in
// Truncated. Only an unacknowledged Append can leave a torn tail; damage anywhere else is a disk fault, and
// it costs the rest of that one segment, logged as an error. A missing or damaged consumed file makes the
// whole spool replay again (duplicates, never loss). A record damaged on disk after Open makes Replay stop
// with ErrCorrupt; the next Open cuts it.
//
// # Concurrency
//
// Append and Replay may run at once: Replay reads only records whose Append has returned and commits
// outside the lock Append takes, so each waits on the other only for an in-memory update. Appends are
// serialised, one fsync each; Replays run one at a time; Close waits for a running Replay.
//
// # Limits
//
// MaxBytes bounds the pending bytes (Bytes): an Append that would exceed it fails with ErrFull and writes
// nothing, so ingest stops acknowledging and MQTT keeps the messages. Disk use may exceed it by the already
// replayed prefix of the oldest segment, at most one segment. A warning is logged once when pending bytes
// reach 80 % of MaxBytes and once when the spool is full; both re-arm when Replay brings it back under
// 80 %. Replay streams one record at a time, so memory stays bounded by the largest batch whatever the
// size of the spool.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	hv "github.com/useda02/hyperviseur"
)

// Errors of the spool; each is wrapped with what was being done.
var (
	// ErrFull means the batch would take the spool over its MaxBytes; nothing was written.
	ErrFull = errors.New("spool full")
	// ErrClosed is returned by calls on a closed spool.
	ErrClosed = errors.New("spool closed")
	// ErrLocked means another process has the spool directory open.
	ErrLocked = errors.New("spool directory in use")
	// ErrCorrupt marks a record or offset file that fails its checksum or cannot be decoded.
	ErrCorrupt = errors.New("spool data corrupt")
)

// DefaultSegmentBytes is the size at which Append starts a new segment.
const DefaultSegmentBytes = 8 << 20

const (
	segSuffix = ".seg"
	lockName  = "LOCK"
)

// Options tune a spool.
type Options struct {
	MaxBytes     int64 // bound on pending bytes; required
	SegmentBytes int64 // rotation size; 0 means DefaultSegmentBytes
}

type segment struct {
	seq  uint64
	size int64 // bytes of complete, fsync'd records
}

// Spool is an on-disk queue of reading batches. It is safe for concurrent use.
type Spool struct {
	dir       string
	maxBytes  int64
	highWater int64 // 80 % of maxBytes
	segBytes  int64
	log       *slog.Logger
	lock      *os.File

	// replaying is a one-slot semaphore: one Replay at a time, and Close waits for it.
	replaying chan struct{}

	mu         sync.Mutex
	closed     bool
	segs       []segment // oldest first; the last one is the tail when tail != nil
	headOff    int64     // replayed prefix of segs[0]
	total      int64     // sum of segs sizes
	batches    int       // records not yet replayed
	tail       *os.File  // nil: the next Append starts a new segment
	nextSeq    uint64
	warnedHigh bool
	warnedFull bool
	truncated  int

	// Mirrors of the pending counters so a metrics scrape never waits behind an fsync.
	bytes   atomic.Int64
	pending atomic.Int64
}

// Open opens (or creates) the spool in dir, recovering from a crash: a torn or corrupt tail record is
// truncated (counted and logged), complete records are kept.
func Open(dir string, maxBytes int64, logger *slog.Logger) (*Spool, error) {
	return OpenWithOptions(dir, Options{MaxBytes: maxBytes}, logger)
}

// OpenWithOptions is Open with a chosen segment size.
func OpenWithOptions(dir string, opts Options, logger *slog.Logger) (*Spool, error) {
	if dir == "" {
		return nil, fmt.Errorf("open spool: directory: %w: must be set", hv.ErrInvalid)
	}
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("open spool %s: max bytes %d: %w: must be positive", dir, opts.MaxBytes, hv.ErrInvalid)
	}
	if opts.SegmentBytes < 0 {
		return nil, fmt.Errorf("open spool %s: segment bytes %d: %w: must not be negative",
			dir, opts.SegmentBytes, hv.ErrInvalid)
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// Segment fsyncs make entries inside dir durable, not dir's own entry in its parent.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("open spool %s: %w", dir, err)
		}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s := &Spool{
		dir:       dir,
		maxBytes:  opts.MaxBytes,
		highWater: opts.MaxBytes - opts.MaxBytes/5,
		segBytes:  opts.SegmentBytes,
		log:       logger.With("spool", dir),
		lock:      lock,
		replaying: make(chan struct{}, 1),
	}
	if err := s.recover(); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	if s.batches > 0 {
		s.log.Info("spool has batches to replay", "batches", s.batches, "bytes", s.total-s.headOff,
			"segments", len(s.segs))
	}
	return s, nil
}

// recover rebuilds the in-memory state from the directory, cutting torn or corrupt records.
func (s *Spool) recover() error {
	if err := os.Remove(filepath.Join(s.dir, offsetName+".tmp")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale offset: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)

	oseq, ooff, _, err := readOffset(s.dir)
	if errors.Is(err, ErrCorrupt) {
		// Replaying from the start duplicates batches, which the store absorbs; skipping any would lose them.
		s.log.Warn("spool replay offset damaged: replaying everything again", "err", err)
		oseq, ooff = 0, 0
	} else if err != nil {
		return err
	}

	maxSeq := oseq
	removed := false
	var buf []byte
	for i, seq := range seqs {
		maxSeq = max(maxSeq, seq)
		start := int64(0)
		switch {
		case seq < oseq:
			// Replay only commits an offset in a segment after deleting every older one; this one was
			// fully replayed and its deletion did not reach the disk before a crash.
			if err := os.Remove(s.segPath(seq)); err != nil {
				return fmt.Errorf("remove replayed segment %d: %w", seq, err)
			}
			removed = true
			continue
		case seq == oseq:
			start = ooff
		}
		size, count, err := s.scanSegment(seq, start, i == len(seqs)-1, &buf)
		if err != nil {
			return err
		}
		if start >= size {
			if err := os.Remove(s.segPath(seq)); err != nil {
				return fmt.Errorf("remove replayed segment %d: %w", seq, err)
			}
			removed = true
			continue
		}
		if len(s.segs) == 0 {
			s.headOff = start
		}
		s.segs = append(s.segs, segment{seq: seq, size: size})
		s.total += size
		s.batches += count
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
	s.nextSeq = maxSeq + 1
	return nil
}

// scanSegment checks the records of segment seq from start and truncates it at the first torn or corrupt
// one. It returns the size of the valid data and the number of records from start.
func (s *Spool) scanSegment(seq uint64, start int64, last bool, buf *[]byte) (size int64, count int, err error) {
	f, err := os.OpenFile(s.segPath(seq), os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open segment %d: %w", seq, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat segment %d: %w", seq, err)
	}
	size = st.Size()
	off := start
	for off < size {
		var next int64
		_, *buf, next, err = readRecord(f, off, size, *buf)
		if err != nil && !errors.Is(err, errTorn) && !errors.Is(err, ErrCorrupt) {
			return 0, 0, fmt.Errorf("scan segment %d: %w", seq, err)
		}
		if err != nil {
			if terr := f.Truncate(off); terr != nil {
				return 0, 0, fmt.Errorf("truncate segment %d at %d: %w", seq, off, terr)
			}
			if serr := f.Sync(); serr != nil {
				return 0, 0, fmt.Errorf("truncate segment %d at %d: %w", seq, off, serr)
			}
			s.truncated++
			attrs := []any{"segment", seq, "offset", off, "dropped_bytes", size - off, "err", err}
			if last {
				// The expected trace of a crash during an Append that was never acknowledged.
				s.log.Warn("spool: cut torn record at the end of the last segment", attrs...)
			} else {
				s.log.Error("spool: cut corrupt record and the rest of its segment", attrs...)
			}
			return off, count, nil
		}
		off = next
		count++
	}
	return size, count, nil
}

func parseSegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(base) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 10, 64)
	return seq, err == nil && seq > 0
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016d%s", seq, segSuffix))
}

// Append writes one batch as one record and fsyncs before returning: when it returns nil the batch
// survives kill -9 and power loss. It fails with ErrFull, writing nothing, when the batch would take the
// spool over its MaxBytes. An empty batch is a no-op.
func (s *Spool) Append(rs []hv.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	e := getEncoder()
	defer putEncoder(e)
	rec, err := e.encode(rs)
	if err != nil {
		return fmt.Errorf("spool append: %w", err)
	}
	n := int64(len(rec))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("spool append: %w", ErrClosed)
	}
	if pending := s.total - s.headOff; pending+n > s.maxBytes {
		if !s.warnedFull {
			s.warnedFull = true
			s.log.Warn("spool full: rejecting batches until replay frees space",
				"bytes", pending, "max_bytes", s.maxBytes, "batches", s.batches)
		}
		return fmt.Errorf("spool append %d readings (%d bytes, %d pending of %d): %w",
			len(rs), n, pending, s.maxBytes, ErrFull)
	}
	if s.tail != nil && s.segs[len(s.segs)-1].size > 0 && s.segs[len(s.segs)-1].size+n > s.segBytes {
		s.sealLocked()
	}
	if s.tail == nil {
		if err := s.newSegmentLocked(); err != nil {
			return fmt.Errorf("spool append: %w", err)
		}
	}
	seg := &s.segs[len(s.segs)-1]
	_, err = s.tail.WriteAt(rec, seg.size)
	if err == nil {
		err = s.tail.Sync()
	}
	if err != nil {
		// Cut what may have reached the file and leave the segment: whatever the failed write or fsync left
		// behind, the next record goes to a fresh file, and Open cuts any remains after a restart.
		_ = s.tail.Truncate(seg.size)
		s.sealLocked()
		return fmt.Errorf("spool append: write segment %d: %w", seg.seq, err)
	}
	seg.size += n
	s.total += n
	s.batches++
	s.publishLocked()
	return nil
}

func (s *Spool) newSegmentLocked() error {
	seq := s.nextSeq
	// Never retry a number: a failed attempt may have left its file behind, and O_EXCL would then fail forever.
	s.nextSeq++
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create segment %d: %w", seq, err)
	}
	// Without the directory fsync a power loss could drop the file and every batch acknowledged in it.
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("create segment %d: %w", seq, err)
	}
	s.segs = append(s.segs, segment{seq: seq})
	s.tail = f
	return nil
}

// sealLocked stops appending to the tail segment.
func (s *Spool) sealLocked() {
	// Every record in it was fsync'd before its Append returned: a close error cannot lose an acknowledged
	// batch, and nothing will be written through this descriptor again.
	_ = s.tail.Close()
	s.tail = nil
}

// publishLocked refreshes the lock-free counters and logs threshold crossings.
func (s *Spool) publishLocked() {
	pending := s.total - s.headOff
	s.bytes.Store(pending)
	s.pending.Store(int64(s.batches))
	switch high := pending > 0 && pending >= s.highWater; {
	case high && !s.warnedHigh:
		s.warnedHigh = true
		s.log.Warn("spool above 80% of its limit", "bytes", pending, "max_bytes", s.maxBytes, "batches", s.batches)
	case !high && (s.warnedHigh || s.warnedFull):
		s.warnedHigh, s.warnedFull = false, false
		s.log.Info("spool back under 80% of its limit", "bytes", pending, "max_bytes", s.maxBytes,
			"batches", s.batches)
	}
}

// Replay hands the spooled batches, oldest first, to write; each batch that write accepts is removed
// durably. It stops at the first error from write and returns it unchanged, with the number of readings
// replayed; the refused batch stays first in line. It returns once nothing is pending, including batches
// appended while it ran, or when ctx is done. Concurrent Replays run one after the other. write owns the
// slice it is given.
func (s *Spool) Replay(ctx context.Context, write func(ctx context.Context, rs []hv.Reading) error) (int, error) {
	select {
	case s.replaying <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("spool replay: %w", ctx.Err())
	}
	defer func() { <-s.replaying }()

	var (
		f    *os.File // open on segment fseq, for reading
		fseq uint64
		buf  []byte
		n    int
	)
	closeFile := func() {
		if f != nil {
			_ = f.Close()
			f = nil
		}
	}
	defer closeFile()
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("spool replay: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return n, fmt.Errorf("spool replay: %w", ErrClosed)
		}
		if len(s.segs) == 0 {
			s.mu.Unlock()
			return n, nil
		}
		// Only this goroutine removes segments or moves headOff, so head stays valid after unlocking; an
		// Append can only make the tail longer, and records up to head.size are complete and fsync'd.
		head, off := s.segs[0], s.headOff
		sealed := len(s.segs) > 1 || s.tail == nil
		s.mu.Unlock()

		if off >= head.size {
			if !sealed {
				return n, nil
			}
			if fseq == head.seq {
				closeFile()
			}
			if err := s.dropHead(head.seq); err != nil {
				return n, err
			}
			continue
		}
		if f == nil || fseq != head.seq {
			closeFile()
			var err error
			if f, err = os.Open(s.segPath(head.seq)); err != nil {
				return n, fmt.Errorf("spool replay: open segment %d: %w", head.seq, err)
			}
			fseq = head.seq
		}
		payload, grown, next, err := readRecord(f, off, head.size, buf)
		buf = grown
		if err != nil {
			// Open checked this record: it was damaged on disk since. Keep it for Open to cut after a
			// restart rather than skip data here.
			return n, fmt.Errorf("spool replay: segment %d: %w", head.seq, err)
		}
		rs, err := decodePayload(payload)
		if err != nil {
			return n, fmt.Errorf("spool replay: segment %d offset %d: %w", head.seq, off, err)
		}
		if err := write(ctx, rs); err != nil {
			return n, err
		}
		n += len(rs)
		if err := s.consume(head.seq, next); err != nil {
			return n, err
		}
	}
}

// consume records that the batch ending at next in the head segment seq was accepted.
func (s *Spool) consume(seq uint64, next int64) error {
	s.mu.Lock()
	if next >= s.segs[0].size {
		// The segment is done: the Replay loop deletes it, which commits it. If it is the tail, seal it
		// first, so no Append lands in a file about to be removed.
		if len(s.segs) == 1 && s.tail != nil {
			s.sealLocked()
		}
		s.advanceLocked(next)
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	// The fsyncs happen outside the lock so Appends are not held up by the replay's commits.
	if err := writeOffset(s.dir, seq, next); err != nil {
		return fmt.Errorf("spool replay: %w", err)
	}
	s.mu.Lock()
	s.advanceLocked(next)
	s.mu.Unlock()
	return nil
}

func (s *Spool) advanceLocked(next int64) {
	s.headOff = next
	s.batches--
	s.publishLocked()
}

// dropHead deletes the fully replayed oldest segment seq.
func (s *Spool) dropHead(seq uint64) error {
	rmErr := os.Remove(s.segPath(seq))
	if rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		return fmt.Errorf("spool replay: remove segment %d: %w", seq, rmErr)
	}
	s.mu.Lock()
	s.total -= s.segs[0].size
	s.segs = s.segs[1:]
	s.headOff = 0
	s.publishLocked()
	s.mu.Unlock()
	// Until this fsync a crash may bring the segment back, and its last batch is replayed once more.
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("spool replay: remove segment %d: %w", seq, err)
	}
	return nil
}

// Bytes returns the bytes pending on disk (for the spool-bytes metric).
func (s *Spool) Bytes() int64 { return s.bytes.Load() }

// Pending returns the number of batches pending.
func (s *Spool) Pending() int { return int(s.pending.Load()) }

// Truncated returns how many torn or corrupt records Open cut off.
func (s *Spool) Truncated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncated
}

// Close closes the spool; it waits for a running Replay to return, so cancel that Replay's context first.
func (s *Spool) Close() error {
	s.replaying <- struct{}{}
	defer func() { <-s.replaying }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.tail != nil {
		s.sealLocked()
	}
	// Closing the lock file releases the flock.
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}
