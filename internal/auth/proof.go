package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// NonceSize is the size of a hub challenge.
const NonceSize = 32

// ErrBadProof means a proof of possession does not verify.
var ErrBadProof = errors.New("proof of possession does not verify")

// Proof purposes keep an enrollment signature from being replayed as a
// refresh and the other way round.
const (
	purposeEnroll  = "outpost/enroll/v1"
	purposeRefresh = "outpost/refresh/v1"
)

func proofMessage(purpose string, nonce []byte, parts ...[]byte) []byte {
	h := sha256.New()
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(nonce)
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write(p)
	}
	return h.Sum(nil)
}

// SignEnroll signs the enrollment proof over the hub's nonce and the public
// key being registered.
func SignEnroll(key ed25519.PrivateKey, nonce []byte) []byte {
	pub := key.Public().(ed25519.PublicKey)
	return ed25519.Sign(key, proofMessage(purposeEnroll, nonce, pub))
}

// VerifyEnroll checks an enrollment proof.
func VerifyEnroll(pub, nonce, sig []byte) error {
	if err := checkProofInputs(pub, nonce, sig); err != nil {
		return err
	}
	if !ed25519.Verify(pub, proofMessage(purposeEnroll, nonce, pub), sig) {
		return ErrBadProof
	}
	return nil
}

// SignRefresh signs the refresh proof over the hub's nonce and the agent id.
func SignRefresh(key ed25519.PrivateKey, nonce []byte, agentID string) []byte {
	return ed25519.Sign(key, proofMessage(purposeRefresh, nonce, []byte(agentID)))
}

// VerifyRefresh checks a refresh proof against the agent's registered key.
func VerifyRefresh(pub, nonce, sig []byte, agentID string) error {
	if err := checkProofInputs(pub, nonce, sig); err != nil {
		return err
	}
	if !ed25519.Verify(pub, proofMessage(purposeRefresh, nonce, []byte(agentID)), sig) {
		return ErrBadProof
	}
	return nil
}

func checkProofInputs(pub, nonce, sig []byte) error {
	switch {
	case len(pub) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadProof, len(pub), ed25519.PublicKeySize)
	case len(nonce) != NonceSize:
		return fmt.Errorf("%w: nonce is %d bytes, want %d", ErrBadProof, len(nonce), NonceSize)
	case len(sig) != ed25519.SignatureSize:
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadProof, len(sig), ed25519.SignatureSize)
	}
	return nil
}

// Fingerprint is the hex SHA-256 of a public key, as shown to operators.
func Fingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}
