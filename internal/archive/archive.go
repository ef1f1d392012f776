// Package archive validates and extracts untrusted tar.gz archives (Helm
// charts, Terraform modules) in memory, and bounds untrusted YAML before a
// YAML library expands it.
//
// Nothing here touches the file system. ReadTarGz returns the regular files
// of an archive or refuses the whole archive: it never returns part of one.
// Every bound is enforced while reading, so a gzip bomb stops at the cap
// instead of after inflating.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Default bounds; a zero field of Options takes these.
const (
	// DefaultMaxFileBytes caps one file, uncompressed (Helm's own default).
	DefaultMaxFileBytes = 5 << 20
	// DefaultMaxTotalBytes caps the sum of the files, uncompressed (Helm's
	// own default).
	DefaultMaxTotalBytes = 100 << 20
	// DefaultMaxFiles caps the entries of an archive, directories included.
	DefaultMaxFiles = 10000
	// DefaultMaxCompressedBytes caps the gzip stream read. Chart-like text
	// compresses about five to one, so 20 MiB leaves room for an archive at
	// DefaultMaxTotalBytes; the bound matters because deflate can consume
	// input without producing output (empty blocks, empty gzip members),
	// which no uncompressed cap sees.
	DefaultMaxCompressedBytes = 20 << 20
	// DefaultMaxPathLength caps an entry name, in bytes.
	DefaultMaxPathLength = 1024
	// DefaultMaxDepth caps the number of slash-separated elements of an
	// entry name.
	DefaultMaxDepth = 64
)

// entryOverhead is what the tar stream may hold per entry on top of file
// contents: a header block, PAX records (long names, times) and padding.
// The uncompressed tar stream is capped at MaxTotalBytes plus this much per
// entry allowed, so data that is never returned (PAX records, trailing
// zeros) cannot be inflated without bound either.
const entryOverhead = 4 << 10

// Sentinel errors. Every error ReadTarGz and CheckYAML return is an *Error
// that wraps one of these (errors.Is), except for invalid Options.
var (
	// ErrUnsafePath: an absolute name, a ".." element, a backslash, a NUL
	// or control character, an empty name or element, a Windows drive
	// letter.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrUnsupportedEntry: an entry that is neither a regular file nor a
	// directory (symbolic or hard link, device, FIFO, sparse file...).
	ErrUnsupportedEntry = errors.New("unsupported entry")
	// ErrDuplicate: two entries with the same name, or a name used both as
	// a file and as a directory.
	ErrDuplicate = errors.New("duplicate entry")
	// ErrTooLarge: a bound of Options or YAMLLimits was exceeded.
	ErrTooLarge = errors.New("over a limit")
	// ErrCorrupt: the gzip or tar stream is malformed or truncated.
	ErrCorrupt = errors.New("corrupt archive")
	// ErrInvalidYAML: CheckYAML could not parse the file, or an alias
	// refers to a node that contains it.
	ErrInvalidYAML = errors.New("invalid YAML")
)

// Error is why an archive or a YAML file was refused.
type Error struct {
	// Name is the entry of the archive or the YAML file at fault as found
	// (it may be the unsafe name itself); empty when the archive as a
	// whole is at fault.
	Name string
	// Kind is one of the sentinel errors.
	Kind error

	msg   string
	cause error
	yaml  bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("archive: ")
	switch {
	case e.yaml:
		b.WriteString("YAML file " + quote(e.Name) + ": ")
	case e.Name != "":
		b.WriteString("entry " + quote(e.Name) + ": ")
	}
	b.WriteString(e.msg)
	if e.cause != nil {
		b.WriteString(": " + e.cause.Error())
	}
	return b.String()
}

// Unwrap returns Kind and the underlying error, if any, for errors.Is and
// errors.As.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.cause}
}

func newErr(name string, kind error, cause error, format string, args ...any) *Error {
	return &Error{Name: name, Kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}

// quote quotes a name for an error message, escaping control characters
// and shortening it so a hostile megabyte-long name cannot flood a log.
func quote(name string) string {
	const max = 128
	if len(name) > max {
		return strconv.Quote(name[:max]) + "..."
	}
	return strconv.Quote(name)
}

// Options bounds an archive. A zero field takes its default; a negative one
// is invalid. A caller that computes a bound, such as what is left of a
// budget shared by nested archives, must refuse a result of zero or less
// itself: passed here, zero would mean the default.
type Options struct {
	// MaxFileBytes caps one file, uncompressed.
	MaxFileBytes int64
	// MaxTotalBytes caps the sum of all files, uncompressed.
	MaxTotalBytes int64
	// MaxFiles caps the entries of the archive, directories included.
	MaxFiles int
	// MaxCompressedBytes caps the bytes read from the gzip input.
	MaxCompressedBytes int64
	// MaxPathLength caps an entry name, in bytes, as stored.
	MaxPathLength int
	// MaxDepth caps the elements of an entry name ("a/b/c" has 3).
	MaxDepth int
}

// Validate reports a negative bound.
func (o Options) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxFileBytes", o.MaxFileBytes},
		{"MaxTotalBytes", o.MaxTotalBytes},
		{"MaxFiles", int64(o.MaxFiles)},
		{"MaxCompressedBytes", o.MaxCompressedBytes},
		{"MaxPathLength", int64(o.MaxPathLength)},
		{"MaxDepth", int64(o.MaxDepth)},
	} {
		if f.v < 0 {
			return fmt.Errorf("archive: invalid options: %s is %d; use 0 for the default", f.name, f.v)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.MaxCompressedBytes == 0 {
		o.MaxCompressedBytes = DefaultMaxCompressedBytes
	}
	if o.MaxPathLength == 0 {
		o.MaxPathLength = DefaultMaxPathLength
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	return o
}

// File is a regular file of an archive.
type File struct {
	// Name is slash-separated and relative, with any "./" prefix removed;
	// it satisfies fs.ValidPath.
	Name string
	// Data is the whole content.
	Data []byte
	// Mode holds the permission bits only (no setuid, setgid or sticky).
	Mode fs.FileMode
}

// ReadTarGz reads a gzip-compressed tar archive from r and returns its
// regular files in archive order. Directory entries are checked and
// skipped, as are PAX global headers (git archive writes one); any other
// kind of entry refuses the archive. So do an unsafe or duplicate name, a
// bound of opts exceeded, and a corrupt or truncated stream. Bytes after
// the end of the tar archive are ignored once the gzip member holding it
// ends, and that member's checksum is verified. Like archive/tar (and so
// Helm), it takes a tar stream that ends cleanly between two entries
// without the end-of-archive marker as complete; the gzip layer still
// catches a stream cut anywhere else.
func ReadTarGz(r io.Reader, opts Options) ([]File, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()

	in := &capReader{r: r, limit: o.MaxCompressedBytes}
	gz, err := gzip.NewReader(in)
	if err != nil {
		return nil, streamErr(err, in, nil, o)
	}
	stream := &capReader{r: gz, limit: streamLimit(o)}
	tr := tar.NewReader(stream)

	rd := reader{
		o:     o,
		files: map[string]struct{}{},
		dirs:  map[string]struct{}{},
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			// Only with GODEBUG=tarinsecurepath=0; the name is judged below.
			err = nil
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, streamErr(err, in, stream, o)
		}
		if err := rd.entry(hdr, tr); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				// The stream failed inside this entry's data.
				e = streamErr(err, in, stream, o)
				e.Name = hdr.Name
			}
			return nil, e
		}
	}

	// The tar archive ended: read the rest of its gzip member, to verify
	// the checksum, but nothing after it.
	gz.Multistream(false)
	if _, err := io.Copy(io.Discard, stream); err != nil && !errors.Is(err, gzip.ErrHeader) {
		// gzip.ErrHeader here means bytes that are not gzip follow a
		// complete member: trailing garbage, ignored.
		return nil, streamErr(err, in, stream, o)
	}
	return rd.out, nil
}

func streamLimit(o Options) int64 {
	return o.MaxTotalBytes + int64(o.MaxFiles+1)*entryOverhead
}

// streamErr turns an error of the gzip or tar reader into an *Error,
// reporting ErrTooLarge when a cap cut the stream short (whatever error
// the decompressor made of it).
func streamErr(err error, in, stream *capReader, o Options) *Error {
	switch {
	case in.err != nil:
		return newErr("", ErrCorrupt, in.err, "reading the archive")
	case in.over:
		return newErr("", ErrTooLarge, nil, "compressed stream is larger than %d bytes", o.MaxCompressedBytes)
	case stream != nil && stream.over:
		return newErr("", ErrTooLarge, nil, "uncompressed tar stream is larger than %d bytes (%d of files and %d per entry for headers)", stream.limit, o.MaxTotalBytes, entryOverhead)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newErr("", ErrCorrupt, err, "truncated")
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum):
		return newErr("", ErrCorrupt, err, "bad gzip stream")
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong):
		return newErr("", ErrCorrupt, err, "bad tar stream")
	default:
		// flate.CorruptInputError, flate.InternalError, a read error of r.
		return newErr("", ErrCorrupt, err, "unreadable stream")
	}
}

// capReader reads at most limit bytes from r and records an attempt to
// read more; the decompressors turn the early end into assorted errors, so
// the flag, not the error, says why reading stopped.
type capReader struct {
	r     io.Reader
	limit int64
	n     int64
	over  bool
	err   error // a read error of r, other than io.EOF
}

var errCap = errors.New("archive: read limit reached")

func (c *capReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		if len(p) == 0 {
			return 0, nil
		}
		// Probe one byte: a stream that ends exactly at the cap is fine.
		var b [1]byte
		n, err := c.r.Read(b[:])
		if n > 0 {
			c.over = true
			return 0, errCap
		}
		if err != nil && !errors.Is(err, io.EOF) {
			c.err = err
		}
		return 0, err
	}
	if rest := c.limit - c.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

type reader struct {
	o     Options
	out   []File
	total int64
	count int
	files map[string]struct{}
	dirs  map[string]struct{}
}

func (rd *reader) entry(hdr *tar.Header, tr io.Reader) error {
	rd.count++
	if rd.count > rd.o.MaxFiles {
		return newErr(hdr.Name, ErrTooLarge, nil, "more than %d entries in the archive", rd.o.MaxFiles)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		// Metadata for the whole archive (git archive stores the commit);
		// Go's reader applies none of it to the entries.
		return nil
	case tar.TypeDir:
		name, err := cleanName(hdr.Name, true, rd.o)
		if err != nil || name == "" {
			return err
		}
		return rd.addDir(hdr.Name, name)
	case tar.TypeReg:
	default:
		return newErr(hdr.Name, ErrUnsupportedEntry, nil, "%s; only regular files and directories are allowed", describe(hdr))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return newErr(hdr.Name, ErrUnsupportedEntry, nil, "sparse file; only regular files and directories are allowed")
		}
	}
	name, err := cleanName(hdr.Name, false, rd.o)
	if err != nil {
		return err
	}
	if err := rd.addFile(hdr.Name, name); err != nil {
		return err
	}
	if hdr.Size > rd.o.MaxFileBytes {
		return newErr(hdr.Name, ErrTooLarge, nil, "%d bytes, larger than the %d a file may be", hdr.Size, rd.o.MaxFileBytes)
	}
	if hdr.Size > rd.o.MaxTotalBytes-rd.total {
		return newErr(hdr.Name, ErrTooLarge, nil, "files add up to more than the %d bytes an archive may hold", rd.o.MaxTotalBytes)
	}
	// The header's size bounds the allocation; the limited reader and the
	// running total hold whatever the reader yields to the same bounds.
	data := make([]byte, hdr.Size)
	n, err := io.ReadFull(io.LimitReader(tr, hdr.Size), data)
	rd.total += int64(n)
	if err != nil {
		return err
	}
	if rd.total > rd.o.MaxTotalBytes {
		return newErr(hdr.Name, ErrTooLarge, nil, "files add up to more than the %d bytes an archive may hold", rd.o.MaxTotalBytes)
	}
	rd.out = append(rd.out, File{Name: name, Data: data, Mode: hdr.FileInfo().Mode().Perm()})
	return nil
}

// addFile records a file, refusing a second entry of the same name and a
// name that is, or is below, another file.
func (rd *reader) addFile(raw, name string) error {
	if _, dup := rd.files[name]; dup {
		return newErr(raw, ErrDuplicate, nil, "a file %s appears twice in the archive", quote(name))
	}
	if _, dir := rd.dirs[name]; dir {
		return newErr(raw, ErrDuplicate, nil, "%s is a directory of the archive and a file", quote(name))
	}
	if err := rd.addParents(raw, name); err != nil {
		return err
	}
	rd.files[name] = struct{}{}
	return nil
}

func (rd *reader) addDir(raw, name string) error {
	if _, file := rd.files[name]; file {
		return newErr(raw, ErrDuplicate, nil, "%s is a file of the archive and a directory", quote(name))
	}
	if err := rd.addParents(raw, name); err != nil {
		return err
	}
	rd.dirs[name] = struct{}{}
	return nil
}

// addParents records the directories above name. Every ancestor of a known
// directory is known and is no file, so the walk stops at the first one.
func (rd *reader) addParents(raw, name string) error {
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		parent := name[:i]
		if _, known := rd.dirs[parent]; known {
			return nil
		}
		if _, file := rd.files[parent]; file {
			return newErr(raw, ErrDuplicate, nil, "%s is a file of the archive and a directory", quote(parent))
		}
		rd.dirs[parent] = struct{}{}
	}
	return nil
}

// describe names the kind of a refused entry.
func describe(hdr *tar.Header) string {
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		return "symbolic link to " + quote(hdr.Linkname)
	case tar.TypeLink:
		return "hard link to " + quote(hdr.Linkname)
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "sparse file"
	default:
		return fmt.Sprintf("entry of tar type %q", hdr.Typeflag)
	}
}

// cleanName checks an entry name and returns it without "./" prefixes or,
// for a directory, a trailing slash. A directory naming the archive root
// ("./") comes back as "".
func cleanName(raw string, dir bool, o Options) (string, error) {
	unsafe := func(format string, args ...any) error {
		return newErr(raw, ErrUnsafePath, nil, format, args...)
	}
	switch {
	case raw == "":
		return "", unsafe("empty name")
	case len(raw) > o.MaxPathLength:
		return "", newErr(raw, ErrTooLarge, nil, "name is %d bytes, longer than the %d allowed", len(raw), o.MaxPathLength)
	case strings.IndexByte(raw, 0) >= 0:
		return "", unsafe("NUL byte in the name")
	case strings.IndexByte(raw, '\\') >= 0:
		return "", unsafe("backslash in the name")
	case !utf8.ValidString(raw):
		return "", unsafe("name is not valid UTF-8")
	case strings.IndexFunc(raw, unicode.IsControl) >= 0:
		return "", unsafe("control character in the name")
	case raw[0] == '/':
		return "", unsafe("absolute path")
	case len(raw) >= 2 && raw[1] == ':' && ('a' <= raw[0] && raw[0] <= 'z' || 'A' <= raw[0] && raw[0] <= 'Z'):
		return "", unsafe("Windows drive letter")
	}
	name := raw
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if dir {
		name = strings.TrimSuffix(name, "/")
		if name == "" || name == "." {
			return "", nil
		}
	} else if name == "" || name == "." || strings.HasSuffix(name, "/") {
		return "", unsafe("a file name must not end in a slash or name the archive root")
	}
	depth := 0
	for elem := range strings.SplitSeq(name, "/") {
		switch elem {
		case "..":
			return "", unsafe("path escapes the archive root")
		case "":
			return "", unsafe("empty path element")
		case ".":
			return "", unsafe("\".\" path element")
		}
		depth++
	}
	if depth > o.MaxDepth {
		return "", newErr(raw, ErrTooLarge, nil, "%d path elements, more than the %d allowed", depth, o.MaxDepth)
	}
	if !fs.ValidPath(name) {
		// Unreachable after the checks above; kept as the last word.
		return "", unsafe("invalid path")
	}
	return name, nil
}
