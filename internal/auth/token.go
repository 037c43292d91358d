package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"sync"
	"time"
)

// API tokens (API.md §2.2) look like "exm_" followed by 40 random base62 characters (about 238 bits)
// and 6 of a checksum: the fixed prefix lets secret scanners find a leaked one, the checksum lets them
// (and the node) tell a token from a random string without asking the store. A token is stored only as
// its SHA-256: its entropy makes a slow password hash pointless.
const (
	TokenPrefix    = "exm_"
	tokenRandom    = 40
	tokenCheck     = 6
	tokenLen       = len(TokenPrefix) + tokenRandom + tokenCheck
	tokenShown     = len(TokenPrefix) + 8 // the prefix a list shows
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// NewToken returns a new random token, the prefix a list shows of it, and its hash.
func NewToken() (token, shown, hash string) {
	var b strings.Builder
	b.Grow(tokenLen)
	b.WriteString(TokenPrefix)
	var buf [1]byte
	for b.Len() < len(TokenPrefix)+tokenRandom {
		rand.Read(buf[:]) // never fails (crypto/rand)
		if buf[0] < 248 { // 248 = 4·62: keeps every character equally likely
			b.WriteByte(base62Alphabet[buf[0]%62])
		}
	}
	b.WriteString(tokenChecksum(b.String()[len(TokenPrefix):]))
	token = b.String()
	return token, token[:tokenShown], TokenHash(token)
}

// tokenChecksum is the CRC-32 of the random part in 6 base62 characters.
func tokenChecksum(random string) string {
	c := uint64(crc32.ChecksumIEEE([]byte(random)))
	out := make([]byte, tokenCheck)
	for i := tokenCheck - 1; i >= 0; i-- {
		out[i] = base62Alphabet[c%62]
		c /= 62
	}
	return string(out)
}

// WellFormedToken reports whether s has the shape and checksum of a token (it may still be unknown).
func WellFormedToken(s string) bool {
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	body := s[len(TokenPrefix):]
	for i := range len(body) {
		if strings.IndexByte(base62Alphabet, body[i]) < 0 {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(tokenChecksum(body[:tokenRandom])), []byte(body[tokenRandom:])) == 1
}

// TokenHash is the hex SHA-256 of a token, as the store keeps it.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenUses collects when tokens were last used, so the store learns of it in one batch per flush
// instead of one write per request. The zero value is ready; a nil *TokenUses records nothing.
type TokenUses struct {
	mu   sync.Mutex // guards used
	used map[int64]time.Time
}

// Record notes that the token id was used at.
func (u *TokenUses) Record(id int64, at time.Time) {
	if u == nil {
		return
	}
	u.mu.Lock()
	if u.used == nil {
		u.used = make(map[int64]time.Time)
	}
	if at.After(u.used[id]) {
		u.used[id] = at
	}
	u.mu.Unlock()
}

// TokenToucher is the store's side of TokenUses.
type TokenToucher interface {
	TouchTokens(ctx context.Context, used map[int64]time.Time) error
}

// Flush writes the uses recorded since the last flush; on failure they are kept for the next one.
func (u *TokenUses) Flush(ctx context.Context, st TokenToucher) error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	batch := u.used
	u.used = nil
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := st.TouchTokens(ctx, batch); err != nil {
		for id, at := range batch {
			u.Record(id, at)
		}
		return err
	}
	return nil
}
