package logfmt

import "testing"

func TestParseKeepsQuotedValuesWhole(t *testing.T) {
	kv := Parse(`time=t msg="helm task done" task=a error="x \"y\" task=b" duration=1s`)
	for k, want := range map[string]string{"msg": "helm task done", "task": "a", "error": `x "y" task=b`, "duration": "1s"} {
		if kv[k] != want {
			t.Errorf("%s = %q, want %q", k, kv[k], want)
		}
	}
}

func TestParseKeepsTheFirstOfARepeatedKey(t *testing.T) {
	kv := Parse(`msg=a task=x task=y`)
	if kv["task"] != "x" || kv["msg"] != "a" {
		t.Errorf("kv = %v, want msg=a task=x", kv)
	}
}
