package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"

	hv "github.com/useda02/hyperviseur"
)

const (
	headerSize     = 8 // uint32 payload length + uint32 CRC32C, little endian
	payloadVersion = 1
	// maxPayload bounds the length field so a corrupt header cannot make Open or Replay allocate gigabytes.
	maxPayload = 1 << 30
	// minReadingBytes is the smallest encoded reading (six 1-byte indexes, a 1-byte time, 8-byte value);
	// the decoder uses it to refuse counts that the payload cannot hold before allocating for them.
	minReadingBytes = 6 + 1 + 8

	offsetName    = "consumed"
	offsetVersion = 1
	offsetSize    = 1 + 8 + 8 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn marks a record cut short by the end of the segment: the normal state of a tail after a crash.
var errTorn = errors.New("torn record")

// recordCRC covers the length field too, so a flipped length bit is detected rather than trusted.
func recordCRC(lenField, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, lenField), castagnoli, payload)
}

// encoder turns a batch into one framed record. Encoders are pooled so that a steady stream of Appends does
// not allocate a string table and buffers per batch.
type encoder struct {
	rec  []byte // header + payload
	body []byte // the readings, assembled after the string table they refer to
	idx  map[string]uint64
	strs []string
}

var encoders = sync.Pool{New: func() any { return &encoder{idx: make(map[string]uint64)} }}

func getEncoder() *encoder { return encoders.Get().(*encoder) }

func putEncoder(e *encoder) {
	// One huge batch must not pin its buffers for the life of the process.
	if cap(e.rec) > 4<<20 || len(e.idx) > 1<<14 {
		return
	}
	encoders.Put(e)
}

func (e *encoder) intern(s string) uint64 {
	if i, ok := e.idx[s]; ok {
		return i
	}
	i := uint64(len(e.strs))
	e.idx[s] = i
	e.strs = append(e.strs, s)
	return i
}

// encode frames rs (non-empty) as one record; the result is valid until the next call.
func (e *encoder) encode(rs []hv.Reading) ([]byte, error) {
	clear(e.idx)
	e.strs = e.strs[:0]
	b := e.body[:0]
	t0 := rs[0].Time
	for i := range rs {
		r := &rs[i]
		b = binary.AppendUvarint(b, e.intern(r.Device))
		b = binary.AppendUvarint(b, e.intern(string(r.Metric)))
		b = binary.AppendUvarint(b, e.intern(r.Site))
		b = binary.AppendUvarint(b, e.intern(r.Commune))
		b = binary.AppendUvarint(b, e.intern(r.EPCI))
		b = binary.AppendUvarint(b, e.intern(string(r.Fluid)))
		// Wrapping subtraction: decoding adds it back with the same wrap, so even MinInt64..MaxInt64 survive.
		b = binary.AppendVarint(b, r.Time-t0)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Value))
	}
	e.body = b

	rec := append(e.rec[:0], make([]byte, headerSize)...)
	rec = append(rec, payloadVersion)
	rec = binary.AppendUvarint(rec, uint64(len(e.strs)))
	for _, s := range e.strs {
		rec = binary.AppendUvarint(rec, uint64(len(s)))
		rec = append(rec, s...)
	}
	rec = binary.AppendUvarint(rec, uint64(len(rs)))
	rec = binary.AppendVarint(rec, t0)
	rec = append(rec, e.body...)
	e.rec = rec

	n := len(rec) - headerSize
	if n > maxPayload {
		return nil, fmt.Errorf("encode batch of %d readings: %d bytes: %w: record larger than %d bytes",
			len(rs), n, hv.ErrInvalid, maxPayload)
	}
	binary.LittleEndian.PutUint32(rec[0:4], uint32(n))
	binary.LittleEndian.PutUint32(rec[4:8], recordCRC(rec[0:4], rec[headerSize:]))
	return rec, nil
}

// decoder reads a payload; the first failure sticks so the decoding loop stays readable.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("decode payload: %s: %w", what, ErrCorrupt)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(strs []string, what string) string {
	i := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if i >= uint64(len(strs)) {
		d.fail(what + " index out of the string table")
		return ""
	}
	return strs[i]
}

// decodePayload decodes one record payload into a fresh slice: the caller's write function may keep it.
func decodePayload(p []byte) ([]hv.Reading, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("decode payload: empty: %w", ErrCorrupt)
	}
	if p[0] != payloadVersion {
		// The CRC held, so this is a record from another version of the program, not damage.
		return nil, fmt.Errorf("decode payload: version %d: %w: this build reads version %d",
			p[0], ErrCorrupt, payloadVersion)
	}
	d := decoder{b: p[1:]}
	nstr := d.uvarint("string count")
	if nstr > uint64(len(d.b)) {
		d.fail("string count beyond payload")
	}
	if d.err != nil {
		return nil, d.err
	}
	// One allocation for the whole table (length prefixes included) instead of one per string: the
	// readings' labels are substrings of it.
	section := d.b
	for range nstr {
		n := d.uvarint("string length")
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail("string beyond payload")
		}
		if d.err != nil {
			return nil, d.err
		}
		d.b = d.b[n:]
	}
	table := string(section[:len(section)-len(d.b)])
	strs := make([]string, nstr)
	for i, t := 0, (decoder{b: section}); i < len(strs); i++ {
		n := t.uvarint("string length")
		start := len(section) - len(t.b)
		strs[i] = table[start : start+int(n)]
		t.b = t.b[n:]
	}
	n := d.uvarint("reading count")
	t0 := d.varint("base time")
	if d.err == nil && (n == 0 || n > uint64(len(d.b))/minReadingBytes) {
		d.fail("reading count does not fit the payload")
	}
	if d.err != nil {
		return nil, d.err
	}
	rs := make([]hv.Reading, n)
	for i := range rs {
		r := &rs[i]
		r.Device = d.str(strs, "device")
		r.Metric = hv.Metric(d.str(strs, "metric"))
		r.Site = d.str(strs, "site")
		r.Commune = d.str(strs, "commune")
		r.EPCI = d.str(strs, "epci")
		r.Fluid = hv.Fluid(d.str(strs, "fluid"))
		r.Time = t0 + d.varint("time")
		if d.err == nil && len(d.b) < 8 {
			d.fail("value beyond payload")
		}
		if d.err != nil {
			return nil, d.err
		}
		r.Value = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("decode payload: %d trailing bytes: %w", len(d.b), ErrCorrupt)
	}
	return rs, nil
}

// readRecord reads the record at off, where the segment's valid data ends at end. It returns the payload
// (in buf, grown as needed) and the offset of the next record. errTorn: the record runs past end;
// ErrCorrupt: a bad length or checksum.
func readRecord(f io.ReaderAt, off, end int64, buf []byte) (payload, grown []byte, next int64, err error) {
	if end-off < headerSize {
		return nil, buf, off, errTorn
	}
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return nil, buf, off, fmt.Errorf("read record header at %d: %w", off, err)
	}
	n := int64(binary.LittleEndian.Uint32(h[0:4]))
	if n > maxPayload {
		return nil, buf, off, fmt.Errorf("record at %d: length %d: %w", off, n, ErrCorrupt)
	}
	if end-off-headerSize < n {
		return nil, buf, off, errTorn
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	if _, err := f.ReadAt(payload, off+headerSize); err != nil {
		return nil, buf, off, fmt.Errorf("read record at %d: %w", off, err)
	}
	if recordCRC(h[0:4], payload) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, buf, off, fmt.Errorf("record at %d: checksum mismatch: %w", off, ErrCorrupt)
	}
	return payload, buf, off + headerSize + n, nil
}

// writeOffset commits how far segment seq has been replayed. Temp file, fsync, rename, directory fsync:
// after a crash the file holds either the old or the new offset, never a mix.
func writeOffset(dir string, seq uint64, off int64) error {
	var b [offsetSize]byte
	b[0] = offsetVersion
	binary.LittleEndian.PutUint64(b[1:9], seq)
	binary.LittleEndian.PutUint64(b[9:17], uint64(off))
	binary.LittleEndian.PutUint32(b[17:21], crc32.Checksum(b[:17], castagnoli))

	tmp := filepath.Join(dir, offsetName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("commit replay offset: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, offsetName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("commit replay offset: %w", err)
	}
	return nil
}

// readOffset returns the committed (segment, offset); ok is false when none was ever committed.
func readOffset(dir string) (seq uint64, off int64, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, offsetName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read replay offset: %w", err)
	}
	if len(b) != offsetSize || b[0] != offsetVersion ||
		crc32.Checksum(b[:17], castagnoli) != binary.LittleEndian.Uint32(b[17:21]) {
		return 0, 0, false, fmt.Errorf("read replay offset: %w", ErrCorrupt)
	}
	seq = binary.LittleEndian.Uint64(b[1:9])
	off = int64(binary.LittleEndian.Uint64(b[9:17]))
	if off < 0 {
		return 0, 0, false, fmt.Errorf("read replay offset: negative offset: %w", ErrCorrupt)
	}
	return seq, off, true, nil
}

// syncDir makes file creations, renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
