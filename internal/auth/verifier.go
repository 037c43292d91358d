package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"sync"
)

// maxCached bounds the verified-credential cache; when full it starts over.
const maxCached = 100_000

// Verifier checks passwords against argon2id hashes and remembers what it verified, so a client
// that sends the same credentials on every request pays for argon2id once. The proxy's view and the
// account API share one.
type Verifier struct {
	cacheKey [32]byte
	mu       sync.Mutex          // guards verified
	verified map[[32]byte]string // digest of (login, password) → the hash it was verified against

	// slots bounds concurrent argon2 verifications: each takes ~19 MiB and tens of milliseconds,
	// and wrong passwords are never cached.
	slots chan struct{}
}

// NewVerifier returns a verifier with an empty cache and a random cache key.
func NewVerifier() *Verifier {
	v := &Verifier{verified: make(map[[32]byte]string), slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	rand.Read(v.cacheKey[:])
	return v
}

// Verify reports whether password is login's password, given the stored hash ("" when the login
// does not exist: a dummy hash is checked then, so the answer takes as long as a wrong password).
// Credentials verified before against the same hash are answered from memory; a changed hash (a
// new password) makes the old entry useless at once.
func (v *Verifier) Verify(ctx context.Context, login, password, hash string) (bool, error) {
	key := v.digest(login, password)
	if hash != "" && v.cachedHash(key) == hash {
		return true, nil
	}
	select {
	case v.slots <- struct{}{}:
		defer func() { <-v.slots }()
	case <-ctx.Done():
		return false, ctx.Err()
	}
	check := hash
	if check == "" {
		check = dummyHash()
	}
	ok, err := CheckPassword(check, password)
	if err != nil || !ok || hash == "" {
		return false, nil
	}
	v.remember(key, hash)
	return true, nil
}

func (v *Verifier) digest(login, password string) [32]byte {
	h := sha256.New()
	h.Write(v.cacheKey[:])
	h.Write([]byte(login))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func (v *Verifier) cachedHash(key [32]byte) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.verified[key]
}

func (v *Verifier) remember(key [32]byte, hash string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= maxCached {
		clear(v.verified)
	}
	v.verified[key] = hash
}

// dummyHash is verified against when a login is unknown, so that answer takes as long as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("exitmesh-unknown-login")
	if err != nil {
		panic(err)
	}
	return h
})
