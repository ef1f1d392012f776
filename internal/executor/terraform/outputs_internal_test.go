package terraform

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/taskspec"
)

func TestCapOutputs(t *testing.T) {
	str := func(s string) outputStream {
		v, _ := json.Marshal(s)
		return outputStream{Value: v}
	}
	half := strings.Repeat("x", taskspec.MaxTerraformOutputsBytes/2)
	tests := []struct {
		name    string
		outputs map[string]outputStream
		kept    []string
		omitted []string
	}{
		{"small outputs are all kept, sensitive ones redacted", map[string]outputStream{"a": str("1"), "pw": {Sensitive: true}}, []string{"a", "pw"}, nil},
		{"outputs past the cap are left out in name order", map[string]outputStream{"a": str(half), "b": str(half), "c": str("1")}, []string{"a"}, []string{"b", "c"}},
		{"characters the encoding escapes count as escaped", map[string]outputStream{"a": str(strings.Repeat("<", taskspec.MaxTerraformOutputsBytes/3)), "b": str("1")}, nil, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, omitted := capOutputs(tt.outputs)
			names := slices.Sorted(maps.Keys(kept))
			if !slices.Equal(names, tt.kept) || !slices.Equal(omitted, tt.omitted) {
				t.Fatalf("kept %v, omitted %v; want %v, %v", names, omitted, tt.kept, tt.omitted)
			}
			enc, err := json.Marshal(kept)
			if err != nil || len(enc) > taskspec.MaxTerraformOutputsBytes {
				t.Fatalf("encoded outputs: %d bytes, %v; want at most %d", len(enc), err, taskspec.MaxTerraformOutputsBytes)
			}
			if pw, ok := kept["pw"]; ok && string(pw) != `"`+Redacted+`"` {
				t.Fatalf("sensitive output = %s, want it redacted", pw)
			}
		})
	}
}
