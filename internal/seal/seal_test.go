package seal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const (
	envA = "acme/prod"
	envB = "acme/staging"
)

func newKeyring(t testing.TB, env string) *Keyring {
	t.Helper()
	k, err := GenerateKey(env, 1)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func mustSeal(t testing.TB, kr *Keyring, name string, values map[string][]byte) *Sealed {
	t.Helper()
	s, err := Seal(kr.Newest().Public(), name, values)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := newKeyring(t, envA)
	tests := []struct {
		name   string
		values map[string][]byte
	}{
		{"two keys come back unchanged", map[string][]byte{"username": []byte("admin"), "password": []byte("s3cr3t")}},
		{"binary values and an empty value survive", map[string][]byte{"blob.bin": {0, 1, 2, 255}, "empty": {}}},
		{"no keys at all opens to an empty map", map[string][]byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSeal(t, kr, "db-creds", tt.values)
			if s.Env != envA || s.Name != "db-creds" || s.KeyVersion != 1 || s.Fingerprint != kr.Newest().Public().Fingerprint {
				t.Fatalf("metadata = %+v", s)
			}
			if bytes.Contains(s.Ciphertext, []byte("s3cr3t")) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got, err := Open(kr, s, envA, "db-creds")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.values) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.values))
			}
			for k, v := range tt.values {
				if !bytes.Equal(got[k], v) {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
				Wipe(got[k])
				if len(got[k]) > 0 && !bytes.Equal(got[k], make([]byte, len(got[k]))) {
					t.Errorf("Wipe left %q", got[k])
				}
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	krA := newKeyring(t, envA)
	krB := newKeyring(t, envB)
	values := map[string][]byte{"token": []byte("t0k3n")}
	sealedA := func(t *testing.T) *Sealed { return mustSeal(t, krA, "api", values) }

	tests := []struct {
		name    string
		kr      *Keyring
		sealed  func(t *testing.T) *Sealed
		env     string
		secret  string
		wantErr error
	}{
		{"a value sealed for another environment is refused", krA, sealedA, envB, "api", ErrWrongEnvironment},
		{"another environment's keyring cannot open it", krB, sealedA, envA, "api", ErrWrongEnvironment},
		{"relabelling the value as the other environment's does not get it opened", krB, func(t *testing.T) *Sealed {
			s := sealedA(t)
			s.Env = envB
			return s
		}, envB, "api", ErrUnknownKey},
		{"relabelling env and fingerprint fails at decryption", krB, func(t *testing.T) *Sealed {
			s := sealedA(t)
			s.Env, s.Fingerprint = envB, krB.Newest().Public().Fingerprint
			return s
		}, envB, "api", ErrTampered},
		{"a value asked for under another secret's name is refused", krA, sealedA, envA, "web", ErrTampered},
		{"a ciphertext swapped into another secret is refused", krA, func(t *testing.T) *Sealed {
			web := mustSeal(t, krA, "web", map[string][]byte{"token": []byte("other")})
			s := sealedA(t)
			s.Ciphertext = web.Ciphertext
			return s
		}, envA, "api", ErrTampered},
		{"a flipped byte in the payload is refused", krA, func(t *testing.T) *Sealed {
			s := sealedA(t)
			s.Ciphertext[len(s.Ciphertext)-5] ^= 1
			return s
		}, envA, "api", ErrTampered},
		{"a flipped byte in the header is refused", krA, func(t *testing.T) *Sealed {
			s := sealedA(t)
			i := bytes.Index(s.Ciphertext, []byte("\n---")) - 3
			s.Ciphertext[i] ^= 1
			return s
		}, envA, "api", ErrTampered},
		{"a truncated ciphertext is refused", krA, func(t *testing.T) *Sealed {
			s := sealedA(t)
			s.Ciphertext = s.Ciphertext[:len(s.Ciphertext)-1]
			return s
		}, envA, "api", ErrTampered},
		{"an unknown key version is refused", krA, func(t *testing.T) *Sealed {
			s := sealedA(t)
			s.KeyVersion = 7
			return s
		}, envA, "api", ErrUnknownKey},
		{"a nil sealed value is refused", krA, func(*testing.T) *Sealed { return nil }, envA, "api", ErrTampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.kr, tt.sealed(t), tt.env, tt.secret)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Fatalf("values returned with an error: %v", got)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	kr := newKeyring(t, envA)
	old := mustSeal(t, kr, "api", map[string][]byte{"k": []byte("old")})
	k2, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the new key is version 2 and the newest", func(t *testing.T) {
		if k2.Version() != 2 || kr.Newest() != k2 || fmt.Sprint(kr.Versions()) != "[1 2]" {
			t.Fatalf("newest %v, versions %v", kr.Newest(), kr.Versions())
		}
	})
	t.Run("values sealed to the newest key open", func(t *testing.T) {
		s := mustSeal(t, kr, "api", map[string][]byte{"k": []byte("new")})
		if s.KeyVersion != 2 {
			t.Fatalf("sealed to version %d", s.KeyVersion)
		}
		got, err := Open(kr, s, envA, "api")
		if err != nil || string(got["k"]) != "new" {
			t.Fatalf("got %q, %v", got["k"], err)
		}
	})
	t.Run("values sealed to the old key still open", func(t *testing.T) {
		got, err := Open(kr, old, envA, "api")
		if err != nil || string(got["k"]) != "old" {
			t.Fatalf("got %q, %v", got["k"], err)
		}
	})
	t.Run("the newest key cannot be retired", func(t *testing.T) {
		if err := kr.Retire(2); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a retired version opens nothing", func(t *testing.T) {
		if err := kr.Retire(1); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(kr, old, envA, "api"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
		if err := kr.Retire(1); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("retiring twice: err = %v", err)
		}
	})
}

func TestSealCaps(t *testing.T) {
	pub := newKeyring(t, envA).Newest().Public()
	many := map[string][]byte{}
	for i := range MaxKeys + 1 {
		many[fmt.Sprintf("k%d", i)] = []byte("v")
	}
	tests := []struct {
		name    string
		secret  string
		values  map[string][]byte
		wantErr error
	}{
		{"exactly 1 MiB of values is accepted", "s", map[string][]byte{"a": make([]byte, MaxValuesSize/2), "b": make([]byte, MaxValuesSize/2)}, nil},
		{"more than 1 MiB in total is refused", "s", map[string][]byte{"a": make([]byte, MaxValuesSize/2), "b": make([]byte, MaxValuesSize/2+1)}, ErrInvalidValues},
		{"more than 256 keys are refused", "s", many, ErrInvalidValues},
		{"a key with a slash is refused", "s", map[string][]byte{"a/b": nil}, ErrInvalidValues},
		{"a key of 254 characters is refused", "s", map[string][]byte{strings.Repeat("a", 254): nil}, ErrInvalidValues},
		{"a key of 253 characters is accepted", "s", map[string][]byte{strings.Repeat("a", 253): nil}, nil},
		{"an empty key is refused", "s", map[string][]byte{"": nil}, ErrInvalidValues},
		{"a secret name that is not a DNS subdomain is refused", "Not_A_Name", map[string][]byte{"a": nil}, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Seal(pub, tt.secret, tt.values)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && s == nil {
				t.Fatal("nil sealed value")
			}
		})
	}
	t.Run("the largest value opens", func(t *testing.T) {
		kr := newKeyring(t, envA)
		s := mustSeal(t, kr, "big", map[string][]byte{"a": bytes.Repeat([]byte{0xff}, MaxValuesSize)})
		got, err := Open(kr, s, envA, "big")
		if err != nil || len(got["a"]) != MaxValuesSize {
			t.Fatalf("len %d, %v", len(got["a"]), err)
		}
	})
}

func TestPublicKeyValidate(t *testing.T) {
	good := newKeyring(t, envA).Newest().Public()
	tests := []struct {
		name   string
		mutate func(p *PublicKey)
	}{
		{"a wrong fingerprint is refused", func(p *PublicKey) { p.Fingerprint = "0000000000000000" }},
		{"a malformed recipient is refused", func(p *PublicKey) { p.Recipient = "age1nope"; p.Fingerprint = Fingerprint(p.Recipient) }},
		{"an environment without a tenant is refused", func(p *PublicKey) { p.Env = "prod" }},
		{"version 0 is refused", func(p *PublicKey) { p.Version = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.mutate(&p)
			if _, err := Seal(p, "s", nil); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestPrivateKeyNeverPrinted(t *testing.T) {
	kr := newKeyring(t, envA)
	k := kr.Newest()
	secret := k.id.String()
	if !strings.HasPrefix(secret, "AGE-SECRET-KEY-") {
		t.Fatalf("unexpected identity form")
	}
	var logged bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logged, nil))
	logger.Info("key", "key", k, "value", *k)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("key", "key", k)
	outputs := map[string]string{
		"%v":      fmt.Sprintf("%v", k),
		"%+v":     fmt.Sprintf("%+v", k),
		"%#v":     fmt.Sprintf("%#v", k),
		"%s":      fmt.Sprintf("%s", k),
		"%x":      fmt.Sprintf("%x", k),
		"value":   fmt.Sprintf("%+v %#v", *k, *k),
		"nested":  fmt.Sprintf("%+v", struct{ K KeyPair }{*k}),
		"keyring": fmt.Sprintf("%+v", kr),
		"log":     logged.String(),
	}
	for name, out := range outputs {
		t.Run(name+" output hides the private key", func(t *testing.T) {
			if strings.Contains(strings.ToUpper(out), secret) || strings.Contains(out, strings.ToLower(secret[len("AGE-SECRET-KEY-"):])) {
				t.Fatalf("%s leaked the private key: %s", name, out)
			}
			if !strings.Contains(out, envA) {
				t.Fatalf("%s does not name the environment: %s", name, out)
			}
		})
	}
}

func TestKeyringEncoding(t *testing.T) {
	kr := newKeyring(t, envA)
	if _, err := kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	t.Run("a decoded keyring opens what the original sealed", func(t *testing.T) {
		s := mustSeal(t, kr, "api", map[string][]byte{"k": []byte("v")})
		back, err := DecodeKeyring(EncodeKeyring(kr))
		if err != nil {
			t.Fatal(err)
		}
		if back.Env() != envA || fmt.Sprint(back.Versions()) != "[1 2]" {
			t.Fatalf("decoded %v", back)
		}
		if _, err := Open(back, s, envA, "api"); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		name   string
		mutate func(d map[string][]byte)
	}{
		{"an unexpected data key is refused", func(d map[string][]byte) { d["other"] = []byte("x") }},
		{"a malformed private key is refused", func(d map[string][]byte) { d["key-1"] = []byte("AGE-SECRET-KEY-1NOPE") }},
		{"a missing environment is refused", func(d map[string][]byte) { delete(d, DataEnvironment) }},
		{"no keys at all is refused", func(d map[string][]byte) { delete(d, "key-1"); delete(d, "key-2") }},
		{"a version with a leading zero is refused", func(d map[string][]byte) { d["key-01"] = d["key-1"]; delete(d, "key-1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := EncodeKeyring(kr)
			tt.mutate(d)
			_, err := DecodeKeyring(d)
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
			if err != nil && strings.Contains(err.Error(), "AGE-SECRET-KEY-1") && !strings.Contains(tt.name, "malformed") {
				t.Fatalf("error shows a private key: %v", err)
			}
		})
	}
}
