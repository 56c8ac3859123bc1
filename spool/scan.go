package spool

import (
	"context"
	"fmt"
	"os"

	hv "github.com/useda02/hyperviseur"
)

// Scan hands every pending batch, oldest first, to fn without consuming anything. Ingest uses it at start to
// bring its index state up to the readings still waiting here, which the store has not seen yet. It excludes
// Replay while it runs; Appends made meanwhile may or may not be seen.
func (s *Spool) Scan(ctx context.Context, fn func(rs []hv.Reading) error) error {
	select {
	case s.replaying <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("spool scan: %w", ctx.Err())
	}
	defer func() { <-s.replaying }()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("spool scan: %w", ErrClosed)
	}
	segs := append([]segment(nil), s.segs...)
	off := s.headOff
	s.mu.Unlock()

	var buf []byte
	for i, seg := range segs {
		if i > 0 {
			off = 0
		}
		if err := func() error {
			f, err := os.Open(s.segPath(seg.seq))
			if err != nil {
				return fmt.Errorf("spool scan: open segment %d: %w", seg.seq, err)
			}
			defer f.Close()
			for off < seg.size {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("spool scan: %w", err)
				}
				payload, grown, next, err := readRecord(f, off, seg.size, buf)
				buf = grown
				if err != nil {
					return fmt.Errorf("spool scan: segment %d: %w", seg.seq, err)
				}
				rs, err := decodePayload(payload)
				if err != nil {
					return fmt.Errorf("spool scan: segment %d offset %d: %w", seg.seq, off, err)
				}
				if err := fn(rs); err != nil {
					return err
				}
				off = next
			}
			return nil
		}(); err != nil {
			return err
		}
	}
	return nil
}
