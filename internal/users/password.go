package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id rather than bcrypt: it is memory-hard (a GPU farm pays for memory, not
// only for cycles), it is what RFC 9106 and OWASP recommend first, and it takes the whole password where
// bcrypt silently ignores everything after 72 bytes. The encoded hash carries its parameters and salt (the
// PHC string format), so the parameters can be raised later: a hash made with older ones still verifies and
// is rehashed at the next successful login.

// Params are the argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultParams are OWASP's first argon2id configuration (46 MiB, 1 pass, 1 lane): about 50 ms on one core
// here, and the memory bounded by Store's limit on concurrent hashes.
var DefaultParams = Params{Memory: 46 * 1024, Time: 1, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MinPasswordLen and MaxPasswordLen bound a password; the maximum bounds what is hashed per attempt.
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

var errBadHash = errors.New("not an argon2id hash")

// HashPassword returns the encoded argon2id hash of password with a fresh random salt.
func HashPassword(password string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// decodeHash parses an encoded hash into its parameters, salt and key.
func decodeHash(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("%w: version %q", errBadHash, parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return p, nil, nil, fmt.Errorf("%w: parameters %q", errBadHash, parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) == 0 {
		return p, nil, nil, fmt.Errorf("%w: salt", errBadHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return p, nil, nil, fmt.Errorf("%w: key", errBadHash)
	}
	return p, salt, key, nil
}

// CheckPassword reports whether password matches the encoded hash, comparing in constant time. An
// undecodable hash is an error, never a match.
func CheckPassword(encoded, password string) (bool, error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether an encoded hash was made with parameters other than p.
func NeedsRehash(encoded string, p Params) bool {
	got, _, key, err := decodeHash(encoded)
	return err != nil || got != p || len(key) != keyLen
}

// GeneratePassword returns a random password of 24 characters (about 143 bits) from an alphabet without
// look-alike characters, for a password read once from a terminal or a file.
func GeneratePassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789" // 57 symbols, no l 1 I O 0
	const n = 24
	out := make([]byte, 0, n)
	buf := make([]byte, 64)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			// Rejection sampling: keep bytes below the largest multiple of the alphabet size, so every symbol
			// is equally likely.
			if int(b) < 256-256%len(alphabet) && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// CheckPasswordPolicy refuses a password too short or too long to be hashed.
func CheckPasswordPolicy(password string) error {
	switch n := len([]rune(password)); {
	case n < MinPasswordLen:
		return fmt.Errorf("password: at least %d characters, got %d", MinPasswordLen, n)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("password: at most %d bytes", MaxPasswordLen)
	}
	return nil
}
