package seal

import (
	"bytes"
	"testing"

	"filippo.io/age"
)

// FuzzOpen feeds Open arbitrary sealed values. With encrypt set, data is
// taken as the plaintext envelope and encrypted to the keyring's key first,
// so the fuzzer reaches the envelope parser and not only age's checks.
func FuzzOpen(f *testing.F) {
	kr := newKeyring(f, envA)
	pub := kr.Newest().Public()
	s := mustSeal(f, kr, "api", map[string][]byte{"k": []byte("v")})
	f.Add(s.Ciphertext, false, envA, "api", 1, pub.Fingerprint)
	f.Add([]byte("age-encryption.org/v1\n-> X25519 \n--- \n"), false, envA, "api", 1, pub.Fingerprint)
	f.Add([]byte(`{"v":1,"env":"acme/prod","name":"api","keyVersion":1,"data":{"k":"dg=="}}`), true, envA, "api", 1, pub.Fingerprint)
	f.Add([]byte(`{"v":1,"env":"acme/prod","name":"api","keyVersion":1,"data":{"a/b":"dg==","k":"dg=="}}`), true, envA, "api", 1, pub.Fingerprint)
	f.Add([]byte{}, false, "", "", 0, "")
	recipient, err := age.ParseX25519Recipient(pub.Recipient)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, encrypt bool, env, name string, version int, fp string) {
		ct := data
		if encrypt {
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, recipient)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ct = buf.Bytes()
		}
		got, err := Open(kr, &Sealed{Env: env, Name: name, KeyVersion: version, Fingerprint: fp, Ciphertext: ct}, env, name)
		if err == nil {
			if got == nil {
				t.Fatal("nil values without an error")
			}
			if err := validateValues(got); err != nil {
				t.Fatalf("opened invalid values: %v", err)
			}
		}
	})
}
