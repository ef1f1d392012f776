package taskspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MaxSpecBytes caps the size of any encoded spec.
const MaxSpecBytes = 512 << 10

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrUnknownKind reports a task kind no executor implements.
	ErrUnknownKind = errors.New("unknown task kind")
	// ErrInvalidSpec reports a spec that does not decode or validate.
	ErrInvalidSpec = errors.New("invalid spec")
)

// Spec is a decoded task spec that can check itself.
type Spec interface {
	Validate() error
}

// kinds is the registry of task kinds: one row per kind, naming a fresh
// value of its spec type. Later kinds add a row here.
var kinds = []struct {
	name    string
	newSpec func() Spec
}{
	{KindHTTP, func() Spec { return new(HTTP) }},
	{KindManifests, func() Spec { return new(Manifests) }},
	{KindHelm, func() Spec { return new(Helm) }},
	{KindSecret, func() Spec { return new(Secret) }},
	{KindTerraform, func() Spec { return new(Terraform) }},
}

// Kinds returns the known task kinds, sorted.
func Kinds() []string {
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, k.name)
	}
	slices.Sort(names)
	return names
}

// Validate decodes spec as the spec of kind and validates it. An unknown kind
// yields an error wrapping ErrUnknownKind that lists the known ones; a bad
// spec one wrapping ErrInvalidSpec that names the field.
func Validate(kind string, spec []byte) error {
	for _, k := range kinds {
		if k.name == kind {
			return Decode(spec, k.newSpec())
		}
	}
	return fmt.Errorf("taskspec: %w %q (known: %s)", ErrUnknownKind, kind, strings.Join(Kinds(), ", "))
}

// Decode decodes spec into v strictly and validates it: at most MaxSpecBytes,
// one JSON object, no unknown fields, no trailing data, then v.Validate.
func Decode(spec []byte, v Spec) error {
	if err := DecodeStrict(spec, v); err != nil {
		return err
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("taskspec: %w: %w", ErrInvalidSpec, err)
	}
	return nil
}

// DecodeStrict is Decode without the validation, for callers that fill in
// fields before validating: at most MaxSpecBytes, one JSON object, no
// unknown fields, no trailing data.
func DecodeStrict(spec []byte, v any) error {
	if len(spec) > MaxSpecBytes {
		return fmt.Errorf("taskspec: %w: %d bytes, larger than %d", ErrInvalidSpec, len(spec), MaxSpecBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("taskspec: %w: %s", ErrInvalidSpec, describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("taskspec: %w: trailing data after the JSON object", ErrInvalidSpec)
	}
	return nil
}

// describeJSONError turns decoder errors into messages that name the field.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("field %q: want %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("want a JSON object, got JSON %s", typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at offset %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.EOF):
		return "empty spec"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	// Unknown-field errors read `json: unknown field "x"`.
	return strings.TrimPrefix(err.Error(), "json: ")
}
