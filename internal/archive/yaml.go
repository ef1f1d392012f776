package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// Default YAML bounds; a zero field of YAMLLimits takes these.
const (
	// DefaultYAMLMaxExpandedNodes caps the nodes alias expansion adds to a
	// file. Sharing a block of defaults a few hundred times stays far
	// below it; a billion-laughs document passes it at once.
	DefaultYAMLMaxExpandedNodes = 100_000
	// DefaultYAMLMaxExpandedBytes caps the scalar text alias expansion adds
	// to a file: one large string aliased a thousand times is few nodes
	// but a gigabyte once rendered or converted to JSON.
	DefaultYAMLMaxExpandedBytes = 4 << 20
	// DefaultYAMLMaxDepth caps nesting, aliases expanded. The deepest
	// CustomResourceDefinition schemas nest a few dozen levels.
	DefaultYAMLMaxDepth = 100
	// DefaultYAMLMaxAliases caps the alias nodes written in a file.
	DefaultYAMLMaxAliases = 10_000
)

// YAMLLimits bounds a YAML file. A zero field takes its default; a
// negative one is invalid.
//
// The expansion bounds count only what aliases add: a file without
// aliases always passes them, whatever its size (bound that with
// Options.MaxFileBytes), and a file with aliases may expand to at most its
// own size plus these.
type YAMLLimits struct {
	// MaxExpandedNodes caps the nodes that expanding every alias adds,
	// summed over the documents of the file.
	MaxExpandedNodes int64
	// MaxExpandedBytes caps the bytes of scalar text (keys and values)
	// that expanding every alias adds.
	MaxExpandedBytes int64
	// MaxDepth caps the nesting of collections, aliases expanded; a
	// top-level scalar has depth 1.
	MaxDepth int
	// MaxAliases caps the alias nodes in the file.
	MaxAliases int
}

// Validate reports a negative bound.
func (l YAMLLimits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxExpandedNodes", l.MaxExpandedNodes},
		{"MaxExpandedBytes", l.MaxExpandedBytes},
		{"MaxDepth", int64(l.MaxDepth)},
		{"MaxAliases", int64(l.MaxAliases)},
	} {
		if f.v < 0 {
			return fmt.Errorf("archive: invalid YAML limits: %s is %d; use 0 for the default", f.name, f.v)
		}
	}
	return nil
}

func (l YAMLLimits) withDefaults() YAMLLimits {
	if l.MaxExpandedNodes == 0 {
		l.MaxExpandedNodes = DefaultYAMLMaxExpandedNodes
	}
	if l.MaxExpandedBytes == 0 {
		l.MaxExpandedBytes = DefaultYAMLMaxExpandedBytes
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = DefaultYAMLMaxDepth
	}
	if l.MaxAliases == 0 {
		l.MaxAliases = DefaultYAMLMaxAliases
	}
	// Leave headroom for the running totals, which add the file's own
	// nodes and bytes to what aliases add.
	l.MaxExpandedNodes = min(l.MaxExpandedNodes, 1<<62)
	l.MaxExpandedBytes = min(l.MaxExpandedBytes, 1<<62)
	return l
}

// CheckYAML refuses a YAML stream (every document of data) whose aliases
// would expand past limits, that nests too deeply, or that does not parse;
// name is the file, for the error. It parses into nodes only, where an
// alias is a pointer to its anchor, and never decodes a value, so no
// alias is ever expanded: the size of each anchor's expansion is computed
// once and reused, and a billion-laughs document is refused in about the
// time it takes to parse it.
//
// It returns nil or an *Error wrapping ErrTooLarge or ErrInvalidYAML.
func CheckYAML(name string, data []byte, limits YAMLLimits) (err error) {
	if err := limits.Validate(); err != nil {
		return err
	}
	l := limits.withDefaults()
	fail := func(kind error, cause error, format string, args ...any) error {
		e := newErr(name, kind, cause, format, args...)
		e.yaml = true
		return e
	}
	defer func() {
		// The parser is third-party code fed hostile input: a panic it
		// raises refuses the file instead of taking down the process.
		if r := recover(); r != nil {
			err = fail(ErrInvalidYAML, nil, "YAML parser failed: %v", r)
		}
	}()

	w := walker{l: l, memo: map[*yaml.Node]*expansion{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var root yaml.Node
		if err := dec.Decode(&root); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			// The parser reads ahead, so the error may belong to a later
			// document than doc; its message gives the line.
			return fail(ErrInvalidYAML, err, "does not parse")
		}
		if _, err := w.visit(&root, 1); err != nil {
			switch {
			case errors.Is(err, errCycle):
				return fail(ErrInvalidYAML, nil, "document %d: an alias refers to a node that contains it", doc)
			case errors.Is(err, errDepth):
				return fail(ErrTooLarge, nil, "document %d: nested deeper than %d levels, aliases expanded", doc, l.MaxDepth)
			case errors.Is(err, errAliases):
				return fail(ErrTooLarge, nil, "more than %d aliases", l.MaxAliases)
			case errors.Is(err, errNodes):
				return fail(ErrTooLarge, nil, "aliases expand to more than %d extra nodes", l.MaxExpandedNodes)
			default: // errBytes
				return fail(ErrTooLarge, nil, "aliases expand to more than %d extra bytes of text", l.MaxExpandedBytes)
			}
		}
	}
}

var (
	errCycle   = errors.New("cycle")
	errDepth   = errors.New("depth")
	errAliases = errors.New("aliases")
	errNodes   = errors.New("nodes")
	errBytes   = errors.New("bytes")
)

// expansion is what a node stands for once its aliases are expanded. A
// node is in memo (only anchored nodes are) from the moment the walk
// enters it; done is set when it leaves, so an alias reaching a node that
// is not done is inside it.
type expansion struct {
	nodes, bytes int64
	height       int
	done         bool
}

type walker struct {
	l YAMLLimits
	// nodes and bytes are the running totals of the expanded file;
	// addedNodes and addedBytes the part that aliases contributed.
	nodes, bytes           int64
	addedNodes, addedBytes int64
	aliases                int
	memo                   map[*yaml.Node]*expansion
}

// visit walks n, which sits at depth in the expanded tree (a document's
// value at 1), and returns the height of its expansion: 1 for a scalar,
// one more than its tallest child for a collection. A document node is no
// level of its own. Recursion ends at MaxDepth, and each anchored node is
// walked once, so the walk is linear in the size of the file.
func (w *walker) visit(n *yaml.Node, depth int) (int, error) {
	if depth > w.l.MaxDepth {
		return 0, errDepth
	}
	if n.Kind == yaml.AliasNode {
		return w.alias(n, depth)
	}
	var e *expansion
	if n.Anchor != "" {
		if e = w.memo[n]; e != nil {
			// Unreachable with this parser: walked already, through an
			// alias met before its anchor.
			if !e.done {
				return 0, errCycle
			}
			w.nodes += e.nodes
			w.bytes += e.bytes
			return e.height, nil
		}
		e = &expansion{}
		w.memo[n] = e
	}
	nodes0, bytes0 := w.nodes, w.bytes
	w.nodes++
	w.bytes += int64(len(n.Value))
	childDepth, height := depth+1, 1
	if n.Kind == yaml.DocumentNode {
		childDepth, height = depth, 0
	}
	for _, c := range n.Content {
		h, err := w.visit(c, childDepth)
		if err != nil {
			return 0, err
		}
		if n.Kind != yaml.DocumentNode {
			h++
		}
		height = max(height, h)
	}
	if e != nil {
		e.nodes, e.bytes, e.height, e.done = w.nodes-nodes0, w.bytes-bytes0, height, true
	}
	return height, nil
}

// alias accounts for an alias node at depth: the expansion of its target,
// measured when the walk passed the anchor.
func (w *walker) alias(n *yaml.Node, depth int) (int, error) {
	w.aliases++
	if w.aliases > w.l.MaxAliases {
		return 0, errAliases
	}
	if n.Alias == nil {
		return 1, nil
	}
	e := w.memo[n.Alias]
	if e == nil {
		// Unreachable with this parser, which resolves an alias only to an
		// anchor it has already read; count the target as written here.
		return w.visit(n.Alias, depth)
	}
	if !e.done {
		return 0, errCycle
	}
	if depth+e.height-1 > w.l.MaxDepth {
		return 0, errDepth
	}
	// The added totals never pass their limits, so these differences
	// cannot overflow.
	if e.nodes > w.l.MaxExpandedNodes-w.addedNodes {
		return 0, errNodes
	}
	if e.bytes > w.l.MaxExpandedBytes-w.addedBytes {
		return 0, errBytes
	}
	w.nodes += e.nodes
	w.bytes += e.bytes
	w.addedNodes += e.nodes
	w.addedBytes += e.bytes
	return e.height, nil
}
