package taskspec

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/outposthq/outpost/internal/seal"
)

// KindSecret writes a Kubernetes Secret from a value sealed to the target
// environment's key, or deletes it.
const KindSecret = "secret"

// maxFingerprintLen bounds a key fingerprint as written in a spec.
const maxFingerprintLen = 64

// Secret is the spec of a secret task. It never holds plaintext: the values
// travel sealed to the environment's age key and only the agent, which holds
// the private key, opens them. Its fields are exactly these; a data or
// stringData field is rejected as unknown.
type Secret struct {
	// Name is the Secret's name, a DNS-1123 subdomain. The sealed value
	// must have been sealed for this name.
	Name string `json:"name"`
	// Namespace is where the Secret lives, a DNS-1123 label.
	Namespace string `json:"namespace"`
	// Sealed is the value to write; required unless Delete, forbidden
	// with it.
	Sealed *seal.Sealed `json:"sealed,omitempty"`
	// Delete removes the Secret instead of writing it, if Outpost manages
	// it.
	Delete bool `json:"delete,omitempty"`
	// Adopt lets the task take over an existing Secret Outpost does not
	// manage; without it such a Secret is skipped.
	Adopt bool `json:"adopt,omitempty"`
}

var _ Spec = (*Secret)(nil)

// ConflictKey names what the task writes, so tasks on one Secret serialise.
func (s *Secret) ConflictKey() string { return "secret/" + s.Namespace + "/" + s.Name }

// Validate checks the spec.
func (s *Secret) Validate() error {
	if s.Name == "" {
		return errors.New("name: is required")
	}
	if errs := validation.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
		return fmt.Errorf("name %q: %s", s.Name, errs[0])
	}
	if s.Namespace == "" {
		return errors.New("namespace: is required")
	}
	if !IsDNSLabel(s.Namespace) {
		return fmt.Errorf("namespace %q: want a DNS-1123 label", s.Namespace)
	}
	if s.Delete {
		if s.Sealed != nil {
			return errors.New("sealed: not allowed with delete")
		}
		if s.Adopt {
			return errors.New("adopt: not allowed with delete")
		}
		return nil
	}
	if s.Sealed == nil {
		return errors.New("sealed: is required unless delete is set")
	}
	return validateSealed(s.Sealed, s.Name)
}

func validateSealed(v *seal.Sealed, name string) error {
	switch {
	case v.Env == "":
		return errors.New("sealed.env: is required")
	case len(v.Env) > validation.DNS1123SubdomainMaxLength:
		return fmt.Errorf("sealed.env: longer than %d characters", validation.DNS1123SubdomainMaxLength)
	case v.Name != name:
		return fmt.Errorf("sealed.name %q: the value was sealed for another secret than %q", v.Name, name)
	case v.KeyVersion < 1:
		return fmt.Errorf("sealed.keyVersion %d: want a positive key version", v.KeyVersion)
	case v.Fingerprint == "" || len(v.Fingerprint) > maxFingerprintLen || !isLowerHex(v.Fingerprint):
		return fmt.Errorf("sealed.fingerprint %q: want the key's hex fingerprint", v.Fingerprint)
	case len(v.Ciphertext) == 0:
		return errors.New("sealed.ciphertext: is required")
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
