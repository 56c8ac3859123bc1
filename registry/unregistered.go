package registry

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds of the unregistered-device tracker. A broker open to the field can receive any id: memory stays
// under max × (MaxUnregisteredIDLen + MaxUnregisteredPayload) whatever is published.
const (
	DefaultMaxUnregistered = 1000
	MaxUnregisteredPayload = 1024 // bytes of the last payload kept
	MaxUnregisteredIDLen   = 256  // longer ids are kept truncated
)

// UnregisteredDevice is a device heard on the broker that the registry does not know: what a technician
// needs to register it (how often it talks, what it sends).
type UnregisteredDevice struct {
	ID          string    `json:"id"`
	Count       uint64    `json:"count"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	LastPayload string    `json:"last_payload"`
	Truncated   bool      `json:"truncated,omitempty"` // LastPayload is the first MaxUnregisteredPayload bytes
}

// Unregistered tracks devices heard but not registered, bounded: past its capacity the device heard least
// recently is forgotten. It is safe for concurrent use and Observe is O(1): it is called for every message of
// an unknown device.
type Unregistered struct {
	mu      sync.Mutex
	max     int
	byID    map[string]*unregEntry
	head    *unregEntry // most recently observed
	tail    *unregEntry // least recently observed: evicted first
	evicted uint64
}

type unregEntry struct {
	id          string
	count       uint64
	first, last time.Time
	payload     []byte
	truncated   bool
	prev, next  *unregEntry
}

// NewUnregistered returns a tracker of at most max devices (DefaultMaxUnregistered if max ≤ 0).
func NewUnregistered(max int) *Unregistered {
	if max <= 0 {
		max = DefaultMaxUnregistered
	}
	return &Unregistered{max: max, byID: make(map[string]*unregEntry, min(max, 1024))}
}

// Observe records a message from a device the registry does not know. It copies what it keeps of payload.
func (u *Unregistered) Observe(device string, payload []byte, at time.Time) {
	if len(device) > MaxUnregisteredIDLen {
		device = truncateUTF8(device, MaxUnregisteredIDLen)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.byID[device]
	switch {
	case ok:
		u.unlink(e)
	case len(u.byID) >= u.max:
		// Recycle the least recently heard entry and its payload buffer: a flood of new ids costs one id
		// string each, not a growing heap.
		e = u.tail
		u.unlink(e)
		delete(u.byID, e.id)
		u.evicted++
		*e = unregEntry{payload: e.payload[:0]}
		fallthrough
	default:
		if e == nil {
			e = &unregEntry{}
		}
		e.id = strings.Clone(device) // the caller's string may alias a reused read buffer
		e.first = at
		u.byID[e.id] = e
	}
	e.count++
	if at.After(e.last) {
		e.last = at
	}
	if at.Before(e.first) {
		e.first = at
	}
	n := len(payload)
	e.truncated = n > MaxUnregisteredPayload
	if e.truncated {
		n = validPrefix(payload, MaxUnregisteredPayload)
	}
	e.payload = append(e.payload[:0], payload[:n]...)
	u.pushFront(e)
}

// Forget drops a device, e.g. once it has been registered.
func (u *Unregistered) Forget(device string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e, ok := u.byID[device]; ok {
		u.unlink(e)
		delete(u.byID, device)
	}
}

// List returns the tracked devices, most recently seen first.
func (u *Unregistered) List() []UnregisteredDevice {
	u.mu.Lock()
	out := make([]UnregisteredDevice, 0, len(u.byID))
	for e := u.head; e != nil; e = e.next {
		out = append(out, UnregisteredDevice{
			ID: e.id, Count: e.count, FirstSeen: e.first, LastSeen: e.last,
			LastPayload: string(e.payload), Truncated: e.truncated,
		})
	}
	u.mu.Unlock()
	// The list is in observation order; timestamps from concurrent ingest workers can interleave slightly.
	slices.SortStableFunc(out, func(a, b UnregisteredDevice) int { return b.LastSeen.Compare(a.LastSeen) })
	return out
}

// Len is the number of devices tracked.
func (u *Unregistered) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.byID)
}

// Evicted counts devices forgotten to stay within the bound (a metric worth exporting: a steady rise means
// something publishes random ids).
func (u *Unregistered) Evicted() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.evicted
}

func (u *Unregistered) unlink(e *unregEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		u.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		u.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (u *Unregistered) pushFront(e *unregEntry) {
	e.next = u.head
	if u.head != nil {
		u.head.prev = e
	}
	u.head = e
	if u.tail == nil {
		u.tail = e
	}
}

// validPrefix returns a length ≤ n that does not cut a UTF-8 sequence in two, so the kept payload displays.
func validPrefix(b []byte, n int) int {
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

func truncateUTF8(s string, n int) string {
	return s[:validPrefix([]byte(s), n)]
}
