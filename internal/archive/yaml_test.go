package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

const valuesYAML = `# Default values for mychart.
replicaCount: 1
image:
  repository: nginx
  pullPolicy: IfNotPresent
  tag: ""
imagePullSecrets: []
serviceAccount:
  create: true
  annotations: {}
  name: ""
podAnnotations: {}
securityContext:
  capabilities:
    drop:
    - ALL
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: 1000
service:
  type: ClusterIP
  port: 80
ingress:
  enabled: false
  hosts:
    - host: chart-example.local
      paths:
        - path: /
          pathType: ImplementationSpecific
resources:
  limits: {cpu: 100m, memory: 128Mi}
  requests: {cpu: 100m, memory: 128Mi}
nodeSelector: {}
tolerations: []
affinity: {}
`

const aliasesYAML = `defaults: &defaults
  resources:
    limits: {cpu: 100m, memory: 128Mi}
  env: &env
    - {name: LOG_LEVEL, value: info}
    - {name: REGION, value: eu-west-1}
api:
  <<: *defaults
  replicas: 3
worker:
  <<: *defaults
  env: *env
cron: *defaults
---
second: document
`

// laughs is the billion-laughs document with levels levels of width
// aliases each: width^levels strings once expanded.
func laughs(levels, width int) string {
	var b strings.Builder
	b.WriteString("l0: &l0 \"lol\"\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [", i, i)
		for j := range width {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// aliasChain nests each anchor one level inside the next: the file is two
// levels deep, its expansion n+1.
func aliasChain(n int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x]\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d]\n", i, i, i-1)
	}
	return b.String()
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func nestedBlock(depth int) string {
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, "%sk:\n", strings.Repeat(" ", i))
	}
	fmt.Fprintf(&b, "%sv\n", strings.Repeat(" ", depth))
	return b.String()
}

type yamlCase struct {
	name   string
	doc    string
	limits YAMLLimits
	kind   error // nil: accepted
	msg    string
}

// yamlCases are CheckYAML's cases; FuzzCheckYAML starts from them too.
func yamlCases() []yamlCase {
	big := strings.Repeat("x", 100<<10)
	return []yamlCase{
		{name: "values.yaml", doc: valuesYAML},
		{name: "legit aliases and merge keys", doc: aliasesYAML},
		{name: "empty", doc: ""},
		{name: "comments only", doc: "# nothing\n"},
		{name: "empty documents", doc: "---\n---\n...\n"},
		{name: "JSON", doc: `{"a": [1, 2, {"b": null}], "c": "d"}`},
		{name: "nesting at the limit", doc: nested(100)},
		{name: "alias nesting at the limit", doc: aliasChain(97)},
		{name: "expansion at the limit", doc: laughs(2, 10), limits: YAMLLimits{MaxExpandedNodes: 110 + 10}},
		{name: "aliases at the limit", doc: laughs(2, 10), limits: YAMLLimits{MaxAliases: 20}},
		{name: "large file without aliases", doc: strings.Repeat("- item\n", 20_000)},

		{name: "billion laughs", doc: laughs(9, 10), kind: ErrTooLarge, msg: `archive: YAML file "billion laughs": aliases expand to more than 100000 extra nodes`},
		{name: "googol laughs", doc: laughs(100, 10), kind: ErrTooLarge, msg: "aliases expand to more than 100000 extra nodes"},
		{name: "expansion over the limit", doc: laughs(2, 10), limits: YAMLLimits{MaxExpandedNodes: 110 + 9}, kind: ErrTooLarge, msg: "more than 119 extra nodes"},
		{name: "one large string aliased", doc: "s: &s " + big + "\nl: [" + strings.Repeat("*s, ", 99) + "*s]\n", kind: ErrTooLarge, msg: "aliases expand to more than 4194304 extra bytes"},
		{name: "deep flow nesting", doc: nested(101), kind: ErrTooLarge, msg: "document 1: nested deeper than 100 levels"},
		{name: "deep block nesting", doc: nestedBlock(150), kind: ErrTooLarge, msg: "nested deeper than 100 levels"},
		{name: "very deep nesting", doc: nested(9000), kind: ErrTooLarge, msg: "nested deeper than 100 levels"},
		{name: "deep through aliases", doc: aliasChain(98), kind: ErrTooLarge, msg: "nested deeper than 100 levels, aliases expanded"},
		{name: "deep in a later document", doc: "a: 1\n---\n" + nested(20), limits: YAMLLimits{MaxDepth: 10}, kind: ErrTooLarge, msg: "document 2: nested deeper than 10"},
		{name: "too many aliases", doc: laughs(2, 10), limits: YAMLLimits{MaxAliases: 19}, kind: ErrTooLarge, msg: "more than 19 aliases"},
		{name: "aliases across documents", doc: "a: &a [1, 2, 3]\n---\n[" + strings.Repeat("*a, ", 30) + "*a]\n", limits: YAMLLimits{MaxExpandedNodes: 100}, kind: ErrTooLarge, msg: "more than 100 extra nodes"},
		{name: "alias inside its anchor", doc: "a: &a [1, *a]\n", kind: ErrInvalidYAML, msg: "an alias refers to a node that contains it"},
		{name: "alias inside its anchor map", doc: "a: &a {b: {c: *a}}\n", kind: ErrInvalidYAML, msg: "an alias refers to a node that contains it"},
		{name: "unknown anchor", doc: "a: *nope\n", kind: ErrInvalidYAML, msg: "unknown anchor"},
		{name: "syntax error", doc: "a: [1, 2\nb: c\n", kind: ErrInvalidYAML, msg: `archive: YAML file "syntax error": does not parse: yaml: line 1:`},
		{name: "syntax error in a later document", doc: "a: 1\n---\n\tb: [\n", kind: ErrInvalidYAML, msg: "line 3"},
	}
}

func TestCheckYAML(t *testing.T) {
	for _, tc := range yamlCases() {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := CheckYAML(tc.name, []byte(tc.doc), tc.limits)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if tc.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if err == nil {
					t.Fatal("accepted")
				}
				checkErr(t, err, tc.kind, tc.msg)
				var e *Error
				if errors.As(err, &e); e.Name != tc.name {
					t.Errorf("Error.Name = %q, want %q", e.Name, tc.name)
				}
			}
			if v := naiveVerdict(t, []byte(tc.doc), tc.limits.withDefaults()); (v == "") != (err == nil) {
				t.Errorf("the naive expansion says %q, CheckYAML %v", v, err)
			}
		})
	}
}

func TestCheckYAMLBillionLaughsIsFast(t *testing.T) {
	// 10^100 nodes once expanded: only the memoised walk can finish, and
	// it has to look at each of the 1,000 aliases once.
	doc := []byte(laughs(100, 10))
	start := time.Now()
	err := CheckYAML("lol.yaml", doc, YAMLLimits{MaxExpandedNodes: 1 << 62, MaxExpandedBytes: 1 << 62})
	checkErr(t, err, ErrTooLarge, "aliases expand to more than")
	t.Logf("refused in %v: %v", time.Since(start), err)
}

func TestYAMLLimitsValidate(t *testing.T) {
	for _, l := range []YAMLLimits{{MaxExpandedNodes: -1}, {MaxExpandedBytes: -1}, {MaxDepth: -1}, {MaxAliases: -1}} {
		if err := CheckYAML("v.yaml", []byte("a: 1"), l); err == nil || !strings.Contains(err.Error(), "invalid YAML limits") {
			t.Errorf("%+v: %v", l, err)
		}
	}
}

// naiveVerdict expands every alias by copying, as a decoder would, and
// reports the first bound of l the expansion breaks ("" for none). It is
// the oracle for CheckYAML's memoised walk, kept affordable by stopping at
// the first excess.
func naiveVerdict(t testing.TB, data []byte, l YAMLLimits) string {
	t.Helper()
	var roots []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "parse: " + err.Error()
		}
		roots = append(roots, &n)
	}
	// What the file spells out: nodes (aliases excluded), text, aliases.
	var srcNodes, srcBytes int64
	aliases := 0
	var source func(n *yaml.Node)
	source = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			aliases++
			return
		}
		srcNodes++
		srcBytes += int64(len(n.Value))
		for _, c := range n.Content {
			source(c)
		}
	}
	for _, r := range roots {
		source(r)
	}
	if aliases > l.MaxAliases {
		return "aliases"
	}
	errStop := errors.New("stop")
	var verdict string
	var nodes, bytes int64
	open := map[*yaml.Node]bool{}
	var expand func(n *yaml.Node, depth int) error
	expand = func(n *yaml.Node, depth int) error {
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if open[n] {
			verdict = "cycle"
			return errStop
		}
		if n.Kind != yaml.DocumentNode && depth > l.MaxDepth {
			verdict = "depth"
			return errStop
		}
		nodes++
		bytes += int64(len(n.Value))
		if nodes-srcNodes > l.MaxExpandedNodes {
			verdict = "nodes"
			return errStop
		}
		if bytes-srcBytes > l.MaxExpandedBytes {
			verdict = "bytes"
			return errStop
		}
		child := depth + 1
		if n.Kind == yaml.DocumentNode {
			child = depth
		}
		open[n] = true
		defer delete(open, n)
		for _, c := range n.Content {
			if err := expand(c, child); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if expand(r, 1) != nil {
			return verdict
		}
	}
	return ""
}

// TestCheckYAMLMatchesNaiveExpansion compares the memoised walk with
// expanding by hand on random documents full of anchors and aliases
// (some inside their own anchor), under random limits.
func TestCheckYAMLMatchesNaiveExpansion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	verdicts := map[string]int{}
	for i := range 3000 {
		doc := randomYAML(r)
		l := YAMLLimits{
			MaxExpandedNodes: 1 + r.Int64N(40),
			MaxExpandedBytes: 1 + r.Int64N(400),
			MaxDepth:         2 + r.IntN(12),
			MaxAliases:       1 + r.IntN(40),
		}
		err := CheckYAML("random.yaml", []byte(doc), l)
		v := naiveVerdict(t, []byte(doc), l)
		if (v == "") != (err == nil) {
			t.Fatalf("case %d, limits %+v:\n%s\nnaive expansion: %q; CheckYAML: %v", i, l, doc, v, err)
		}
		if strings.HasPrefix(v, "parse") {
			v = "parse"
		}
		verdicts[v]++
	}
	t.Logf("verdicts: %v", verdicts)
	for _, v := range []string{"", "cycle", "depth", "nodes", "bytes", "aliases"} {
		if verdicts[v] < 50 {
			t.Errorf("only %d documents with verdict %q; the generator should cover each", verdicts[v], v)
		}
	}
}

// randomYAML writes one to three flow-style documents of nested sequences,
// mappings and scalars, with anchors and aliases to them.
func randomYAML(r *rand.Rand) string {
	var b strings.Builder
	var closed, open []string
	anchor := func() string {
		if r.IntN(3) > 0 {
			return ""
		}
		return fmt.Sprintf("a%d", len(closed)+len(open))
	}
	var gen func(depth int)
	gen = func(depth int) {
		switch k := r.IntN(10); {
		case k < 3 && len(closed) > 0:
			b.WriteString("*" + closed[r.IntN(len(closed))])
		case k == 3 && len(open) > 0 && r.IntN(8) == 0:
			b.WriteString("*" + open[r.IntN(len(open))])
		case k < 6 || depth > 5:
			if a := anchor(); a != "" {
				b.WriteString("&" + a + " ")
				closed = append(closed, a)
			}
			b.WriteString("s" + strings.Repeat("x", r.IntN(40)))
		default:
			a := anchor()
			if a != "" {
				b.WriteString("&" + a + " ")
				open = append(open, a)
			}
			n := r.IntN(5)
			isMap := r.IntN(2) == 0
			if isMap {
				b.WriteString("{")
			} else {
				b.WriteString("[")
			}
			for i := range n {
				if i > 0 {
					b.WriteString(", ")
				}
				if isMap {
					fmt.Fprintf(&b, "k%d: ", i)
				}
				gen(depth + 1)
			}
			if isMap {
				b.WriteString("}")
			} else {
				b.WriteString("]")
			}
			if a != "" {
				open = open[:len(open)-1]
				closed = append(closed, a)
			}
		}
	}
	for i := range 1 + r.IntN(3) {
		if i > 0 {
			b.WriteString("\n---\n")
		}
		gen(0)
	}
	b.WriteString("\n")
	return b.String()
}

// fuzzYAMLLimits are small enough for the naive oracle to stay cheap.
var fuzzYAMLLimits = YAMLLimits{MaxExpandedNodes: 2000, MaxExpandedBytes: 64 << 10, MaxDepth: 30, MaxAliases: 200}

// FuzzCheckYAML feeds CheckYAML arbitrary input: it must not panic, must
// return only *Error, and must agree with expanding the aliases by hand.
func FuzzCheckYAML(f *testing.F) {
	for _, tc := range yamlCases() {
		if len(tc.doc) < 64<<10 {
			f.Add([]byte(tc.doc))
		}
	}
	f.Add([]byte(laughs(4, 4)))
	f.Add([]byte(aliasChain(40)))
	f.Add([]byte("a: &a {b: &b [1, *a]}\nc: *b\n"))
	f.Add([]byte("- &a !!str x\n- &a y\n- *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckYAML("fuzz.yaml", data, fuzzYAMLLimits)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (!errors.Is(e.Kind, ErrTooLarge) && !errors.Is(e.Kind, ErrInvalidYAML)) {
				t.Fatalf("error %v (%T)", err, err)
			}
			if errors.Is(e.Kind, ErrTooLarge) && naiveVerdict(t, data, fuzzYAMLLimits) == "" {
				t.Fatalf("refused %v; the naive expansion fits", err)
			}
			return
		}
		if v := naiveVerdict(t, data, fuzzYAMLLimits); v != "" {
			t.Fatalf("accepted; the naive expansion breaks %s", v)
		}
	})
}
