package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// entry is one tar entry to write; data is written as is, so a header
// may claim a size its data does not have.
type entry struct {
	hdr  tar.Header
	data string
}

func file(name, data string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data: data}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

func special(name string, typ byte, link string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: typ, Linkname: link, Mode: 0o644}}
}

// tarBytes writes entries as an uncompressed tar stream, end marker
// included.
func tarBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", quote(h.Name), err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatalf("tar data %s: %v", quote(h.Name), err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	return gz(t, tarBytes(t, entries...))
}

// retype rewrites the type flag of the first header of a tar stream and
// fixes its checksum, for types tar.Writer refuses to write.
func retype(t testing.TB, tarData []byte, typ byte) []byte {
	t.Helper()
	out := bytes.Clone(tarData)
	out[156] = typ
	copy(out[148:156], "        ")
	sum := 0
	for _, c := range out[:512] {
		sum += int(c)
	}
	copy(out[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return out
}

// paxSparse is a GNU PAX 1.0 sparse file of 1 TiB holding one byte.
// tar.Writer drops GNU.sparse records from a file's header but keeps them
// in a global one, which retype then makes the file's own.
func paxSparse(t testing.TB) []byte {
	sparseMap := "1\n0\n1\n" + strings.Repeat("\x00", 512-6) // one extent: offset 0, length 1
	return retype(t, tarBytes(t,
		entry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{
			"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "a", "GNU.sparse.realsize": "1099511627776",
		}}},
		file("a.sparse", sparseMap+"x"),
	), tar.TypeXHeader)
}

// chart is a chart-like archive as helm package writes it, plus what git
// archive and GNU tar add: a PAX global header, "./" prefixes, directory
// entries, an executable with setuid.
func chart(t testing.TB) []byte {
	return tarGz(t,
		entry{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "0123abc"}}},
		dir("./"),
		dir("./mychart/"),
		file("./mychart/Chart.yaml", "apiVersion: v2\nname: mychart\nversion: 1.2.3\n"),
		file("mychart/values.yaml", "replicas: 2\nimage:\n  repository: nginx\n"),
		dir("mychart/templates"),
		file("mychart/templates/deployment.yaml", "kind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"),
		file("mychart/templates/_helpers.tpl", ""),
		file("mychart/charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.1.0\n"),
		entry{hdr: tar.Header{Name: "mychart/files/run.sh", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 10}, data: "#!/bin/sh\n"},
		file("mychart/"+strings.Repeat("long-name-", 20)+".yaml", "x: 1\n"),
	)
}

func TestReadTarGzChart(t *testing.T) {
	files, err := ReadTarGz(bytes.NewReader(chart(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		data string
		mode fs.FileMode
	}{
		{"mychart/Chart.yaml", "apiVersion: v2\nname: mychart\nversion: 1.2.3\n", 0o644},
		{"mychart/values.yaml", "replicas: 2\nimage:\n  repository: nginx\n", 0o644},
		{"mychart/templates/deployment.yaml", "kind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n", 0o644},
		{"mychart/templates/_helpers.tpl", "", 0o644},
		{"mychart/charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.1.0\n", 0o644},
		{"mychart/files/run.sh", "#!/bin/sh\n", 0o755},
		{"mychart/" + strings.Repeat("long-name-", 20) + ".yaml", "x: 1\n", 0o644},
	}
	if len(files) != len(want) {
		t.Fatalf("got %d files, want %d: %v", len(files), len(want), names(files))
	}
	for i, w := range want {
		f := files[i]
		if f.Name != w.name || string(f.Data) != w.data || f.Mode != w.mode {
			t.Errorf("file %d: got %q (%q, %v), want %q (%q, %v)", i, f.Name, f.Data, f.Mode, w.name, w.data, w.mode)
		}
	}
	if files[3].Data == nil {
		t.Error("an empty file has nil Data; want an empty slice")
	}
}

type refuseCase struct {
	name    string
	archive []byte
	opts    Options
	kind    error
	msg     string // the error must contain it
}

// refuseCases are archives ReadTarGz must refuse; FuzzReadTarGz starts
// from them too.
func refuseCases(t testing.TB) []refuseCase {
	small := Options{MaxFileBytes: 10, MaxTotalBytes: 100, MaxFiles: 5, MaxPathLength: 40, MaxDepth: 4}
	good := tarBytes(t, file("a", "1"))
	goodGz := gz(t, good)
	return []refuseCase{
		{"dot-dot", tarGz(t, file("../evil", "x")), Options{}, ErrUnsafePath, `archive: entry "../evil": path escapes the archive root`},
		{"dot-dot inside", tarGz(t, file("a/../../evil", "x")), Options{}, ErrUnsafePath, "path escapes the archive root"},
		{"dot-dot that stays inside", tarGz(t, file("a/../b", "x")), Options{}, ErrUnsafePath, "path escapes the archive root"},
		{"dot-dot directory", tarGz(t, dir("../")), Options{}, ErrUnsafePath, `entry "../"`},
		{"absolute", tarGz(t, file("/etc/passwd", "x")), Options{}, ErrUnsafePath, `entry "/etc/passwd": absolute path`},
		{"absolute directory", tarGz(t, dir("/etc/")), Options{}, ErrUnsafePath, "absolute path"},
		{"backslash", tarGz(t, file(`..\evil`, "x")), Options{}, ErrUnsafePath, "backslash"},
		{"drive letter", tarGz(t, file("C:/Windows/evil", "x")), Options{}, ErrUnsafePath, "Windows drive letter"},
		{"drive relative", tarGz(t, file("c:evil", "x")), Options{}, ErrUnsafePath, "Windows drive letter"},
		{"empty name", tarGz(t, file("", "x")), Options{}, ErrUnsafePath, "empty name"},
		{"file named ./", gz(t, retype(t, tarBytes(t, dir("./")), tar.TypeReg)), Options{}, ErrUnsafePath, "archive root"},
		{"double slash", tarGz(t, file("a//b", "x")), Options{}, ErrUnsafePath, "empty path element"},
		{"dot element", tarGz(t, file("a/./b", "x")), Options{}, ErrUnsafePath, `"." path element`},
		{"control character", tarGz(t, file("a\x1b[31mred", "x")), Options{}, ErrUnsafePath, `entry "a\x1b[31mred": control character`},
		{"invalid UTF-8", tarGz(t, file("a\xff", "x")), Options{}, ErrUnsafePath, "not valid UTF-8"},
		{"path too long", tarGz(t, file(strings.Repeat("a", 41), "x")), small, ErrTooLarge, "41 bytes, longer than the 40"},
		{"path too deep", tarGz(t, file("a/b/c/d/e", "x")), small, ErrTooLarge, "5 path elements"},
		{"default path length", tarGz(t, file(strings.Repeat("a/", 600)+"b", "x")), Options{}, ErrTooLarge, "longer than the 1024"},

		{"symlink", tarGz(t, special("chart/link", tar.TypeSymlink, "/etc/passwd")), Options{}, ErrUnsupportedEntry, `entry "chart/link": symbolic link to "/etc/passwd"`},
		{"hard link", tarGz(t, file("a", "x"), special("b", tar.TypeLink, "a")), Options{}, ErrUnsupportedEntry, `entry "b": hard link to "a"`},
		{"char device", tarGz(t, special("null", tar.TypeChar, "")), Options{}, ErrUnsupportedEntry, `entry "null": character device`},
		{"block device", tarGz(t, special("sda", tar.TypeBlock, "")), Options{}, ErrUnsupportedEntry, "block device"},
		{"FIFO", tarGz(t, special("fifo", tar.TypeFifo, "")), Options{}, ErrUnsupportedEntry, `entry "fifo": FIFO`},
		{"contiguous file", gz(t, retype(t, good, tar.TypeCont)), Options{}, ErrUnsupportedEntry, "contiguous file"},
		{"unknown type", gz(t, retype(t, good, 'Z')), Options{}, ErrUnsupportedEntry, `tar type 'Z'`},
		{"GNU sparse", gz(t, retype(t, tarBytes(t, entry{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg, Format: tar.FormatGNU}}), tar.TypeGNUSparse)), Options{}, ErrUnsupportedEntry, "sparse file"},
		{"PAX sparse", gz(t, paxSparse(t)), Options{}, ErrUnsupportedEntry, "sparse file"},

		{"file over cap", tarGz(t, file("big", strings.Repeat("x", 11))), small, ErrTooLarge, `entry "big": 11 bytes, larger than the 10`},
		{"total over cap", tarGz(t, file("a", "0123456789"), file("b", "0123456789"), dir("d"), file("c", "0123456789")), Options{MaxTotalBytes: 25}, ErrTooLarge, `entry "c": files add up to more than the 25 bytes`},
		{"too many files", tarGz(t, file("1", ""), file("2", ""), file("3", ""), file("4", ""), file("5", ""), file("6", "")), small, ErrTooLarge, `entry "6": more than 5 entries`},
		{"directories count", tarGz(t, dir("1"), dir("2"), dir("3"), dir("4"), dir("5"), dir("6")), small, ErrTooLarge, "more than 5 entries"},
		{"compressed over cap", tarGz(t, file("a", "x")), Options{MaxCompressedBytes: 20}, ErrTooLarge, "compressed stream is larger than 20 bytes"},

		{"duplicate", tarGz(t, file("a/b", "1"), file("a/b", "2")), Options{}, ErrDuplicate, `entry "a/b": a file "a/b" appears twice`},
		{"duplicate after ./", tarGz(t, file("a/b", "1"), file("./a/b", "2")), Options{}, ErrDuplicate, `entry "./a/b"`},
		{"file then file below it", tarGz(t, file("a", "1"), file("a/b", "2")), Options{}, ErrDuplicate, `"a" is a file of the archive and a directory`},
		{"file below then file", tarGz(t, file("a/b", "1"), file("a", "2")), Options{}, ErrDuplicate, `"a" is a directory of the archive and a file`},
		{"file then directory", tarGz(t, file("a", "1"), dir("a/")), Options{}, ErrDuplicate, "is a file of the archive and a directory"},
		{"directory then file", tarGz(t, dir("a/"), file("a", "1")), Options{}, ErrDuplicate, "is a directory of the archive and a file"},

		{"empty input", nil, Options{}, ErrCorrupt, "truncated"},
		{"not gzip", []byte("apiVersion: v2\nname: chart\n"), Options{}, ErrCorrupt, "bad gzip stream"},
		{"not tar", gz(t, []byte(strings.Repeat("not a tar archive\n", 100))), Options{}, ErrCorrupt, "bad tar stream"},
		{"bad checksum", func() []byte { b := bytes.Clone(goodGz); b[len(b)-8] ^= 1; return b }(), Options{}, ErrCorrupt, "gzip: invalid checksum"},
		{"bad length", func() []byte { b := bytes.Clone(goodGz); b[len(b)-1] ^= 1; return b }(), Options{}, ErrCorrupt, "gzip: invalid checksum"},
		{"bad deflate data", func() []byte { b := bytes.Clone(goodGz); b[12] = 0xff; b[13] = 0xff; return b }(), Options{}, ErrCorrupt, ""},
		{"truncated gzip", goodGz[:len(goodGz)/2], Options{}, ErrCorrupt, "truncated"},
		{"truncated gzip trailer", goodGz[:len(goodGz)-4], Options{}, ErrCorrupt, "truncated"},
		{"truncated tar data", gz(t, tarBytes(t, file("a", strings.Repeat("x", 1000)))[:800]), Options{}, ErrCorrupt, `entry "a": truncated`},
		{"truncated tar header", gz(t, tarBytes(t, file("a", "x"), file("b", "y"))[:1024+100]), Options{}, ErrCorrupt, "truncated"},
		{"garbage after a zero block", gz(t, append(bytes.Clone(good[:1024]), append(make([]byte, 512), good[:512]...)...)), Options{}, ErrCorrupt, "bad tar stream"},
	}
}

func TestReadTarGzRefuses(t *testing.T) {
	for _, tc := range refuseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			files, err := ReadTarGz(bytes.NewReader(tc.archive), tc.opts)
			if err == nil {
				t.Fatalf("accepted: %v", names(files))
			}
			checkErr(t, err, tc.kind, tc.msg)
		})
	}
}

// checkErr fails unless err is an *Error of kind whose text contains msg.
func checkErr(t *testing.T, err error, kind error, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is no *Error", err, err)
	}
	if !errors.Is(err, kind) || !errors.Is(e.Kind, kind) {
		t.Errorf("error %q: kind %v, want %v", err, e.Kind, kind)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not contain %q", err, msg)
	}
}

func names(files []File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

type acceptCase struct {
	name    string
	archive []byte
	opts    Options
	want    []string
}

// acceptCases are archives ReadTarGz must accept; FuzzReadTarGz starts
// from them too.
func acceptCases(t testing.TB) []acceptCase {
	oneFile := tarBytes(t, file("a", "1"))
	return []acceptCase{
		{"chart", chart(t), Options{}, []string{"mychart/Chart.yaml", "mychart/values.yaml", "mychart/templates/deployment.yaml", "mychart/templates/_helpers.tpl", "mychart/charts/sub/Chart.yaml", "mychart/files/run.sh", "mychart/" + strings.Repeat("long-name-", 20) + ".yaml"}},
		{"empty archive", tarGz(t), Options{}, nil},
		{"only the root directory", tarGz(t, dir("./"), dir(".")), Options{}, nil},
		{"files at the caps", tarGz(t, file("a", "0123456789"), file("b/c", "0123456789")), Options{MaxFileBytes: 10, MaxTotalBytes: 20, MaxFiles: 2, MaxPathLength: 3, MaxDepth: 2}, []string{"a", "b/c"}},
		{"compressed size at the cap", tarGz(t, file("a", "1")), Options{MaxCompressedBytes: int64(len(tarGz(t, file("a", "1"))))}, []string{"a"}},
		{"repeated ./ prefix", tarGz(t, file("././a", "1")), Options{}, []string{"a"}},
		{"directory listed twice and implied", tarGz(t, dir("d/"), file("d/e/f", "1"), dir("./d"), dir("d/e/")), Options{}, []string{"d/e/f"}},
		{"legacy regular file type", gz(t, retype(t, oneFile, '\x00')), Options{}, []string{"a"}},
		{"colon past the first element", tarGz(t, file("a/c:d", "1")), Options{}, []string{"a/c:d"}},
		{"garbage after the gzip stream", append(gz(t, oneFile), "trailing garbage"...), Options{}, []string{"a"}},
		{"a second gzip member after the archive", append(gz(t, oneFile), gz(t, []byte("ignored"))...), Options{}, []string{"a"}},
		{"zeros after the end marker", gz(t, append(bytes.Clone(oneFile), make([]byte, 64<<10)...)), Options{}, []string{"a"}},
		{"data after the end marker", gz(t, append(bytes.Clone(oneFile), "anything at all"...)), Options{}, []string{"a"}},
		{"no end marker", gz(t, oneFile[:1024]), Options{}, []string{"a"}},
		{"one zero block", gz(t, oneFile[:1536]), Options{}, []string{"a"}},
		{"archive across gzip members", append(gz(t, oneFile[:700]), gz(t, oneFile[700:])...), Options{}, []string{"a"}},
	}
}

func TestReadTarGzAccepts(t *testing.T) {
	for _, tc := range acceptCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			files, err := ReadTarGz(bytes.NewReader(tc.archive), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkFiles(t, files, tc.opts.withDefaults())
			if got := names(files); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("files %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadTarGzInsecurePathGODEBUG(t *testing.T) {
	// With tarinsecurepath=0, archive/tar reports the name itself; the
	// verdict and message stay ours.
	t.Setenv("GODEBUG", "tarinsecurepath=0")
	_, err := ReadTarGz(bytes.NewReader(tarGz(t, file("../evil", "x"))), Options{})
	checkErr(t, err, ErrUnsafePath, `entry "../evil": path escapes the archive root`)
	files, err := ReadTarGz(bytes.NewReader(tarGz(t, file("ok", "x"))), Options{})
	if err != nil || len(files) != 1 {
		t.Fatalf("got %v, %v", names(files), err)
	}
}

func TestReadTarGzReadError(t *testing.T) {
	boom := errors.New("connection reset")
	archive := tarGz(t, file("a", strings.Repeat("x", 4096)))
	r := io.MultiReader(bytes.NewReader(archive[:len(archive)/2]), iotestErrReader{boom})
	_, err := ReadTarGz(r, Options{})
	checkErr(t, err, ErrCorrupt, "connection reset")
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not wrap the read error", err)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{MaxFileBytes: -1}, {MaxTotalBytes: -1}, {MaxFiles: -1}, {MaxCompressedBytes: -1}, {MaxPathLength: -1}, {MaxDepth: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
		if _, err := ReadTarGz(bytes.NewReader(chart(t)), o); err == nil || !strings.Contains(err.Error(), "invalid options") {
			t.Errorf("%+v: ReadTarGz error %v", o, err)
		}
	}
}

func TestCleanName(t *testing.T) {
	o := Options{}.withDefaults()
	for raw, want := range map[string]string{
		"a":           "a",
		"./a/b":       "a/b",
		"./././a":     "a",
		"a\x00b":      "",
		"\x00":        "",
		"a\\b":        "",
		"\\\\srv\\x":  "",
		"..":          "",
		"a/..":        "",
		"a/":          "",
		"/":           "",
		".":           "",
		"Z:":          "",
		"\u202ea.yml": "\u202ea.yml", // a bidi override is not a control character
		"a\u0085b":    "",            // C1 control
		"a\x7fb":      "",
	} {
		got, err := cleanName(raw, false, o)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", raw, got, err, want)
		}
		if err != nil && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("cleanName(%q): %v is not ErrUnsafePath", raw, err)
		}
	}
}

func TestErrorQuotesLongNames(t *testing.T) {
	name := strings.Repeat("../", 100000) + "x"
	_, err := ReadTarGz(bytes.NewReader(tarGz(t, file(name, "x"))), Options{MaxPathLength: len(name)})
	checkErr(t, err, ErrUnsafePath, "path escapes the archive root")
	if len(err.Error()) > 300 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
	var e *Error
	if errors.As(err, &e); e.Name != name {
		t.Error("Error.Name is not the whole name")
	}
}

// zeros reads as an endless run of zero bytes, without allocating it.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// lazyTarGz streams the tar.gz that write produces, compressing it only as
// fast as the reader reads; consumed reports the compressed bytes read.
// Closing the reader (done by the test's cleanup) stops the writer.
type lazyTarGz struct {
	pr       *io.PipeReader
	consumed int64
}

func (l *lazyTarGz) Read(p []byte) (int, error) {
	n, err := l.pr.Read(p)
	l.consumed += int64(n)
	return n, err
}

func newLazyTarGz(t *testing.T, write func(tw *tar.Writer, zw *gzip.Writer) error) *lazyTarGz {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		err := write(tw, zw)
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	t.Cleanup(func() {
		pr.Close()
		wg.Wait()
	})
	return &lazyTarGz{pr: pr}
}

// TestReadTarGzBombs reads archives that inflate to 1 GiB or more, none
// of which exists in memory, and checks that each is refused after
// reading no more than the caps allow.
func TestReadTarGzBombs(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name  string
		write func(tw *tar.Writer, zw *gzip.Writer) error
		opts  Options
		msg   string
		// maxConsumed bounds the compressed bytes read before refusing.
		maxConsumed int64
	}{
		{
			name: "one file of 1 GiB of zeros",
			write: func(tw *tar.Writer, _ *gzip.Writer) error {
				if err := tw.WriteHeader(&tar.Header{Name: "bomb", Typeflag: tar.TypeReg, Size: gib, Mode: 0o644}); err != nil {
					return err
				}
				_, err := io.CopyN(tw, zeros{}, gib)
				return err
			},
			msg:         `entry "bomb": 1073741824 bytes, larger than the 5242880 a file may be`,
			maxConsumed: 64 << 10,
		},
		{
			name: "1 GiB of zeros in 4 MiB files",
			write: func(tw *tar.Writer, _ *gzip.Writer) error {
				for i := range gib / (4 << 20) {
					if err := tw.WriteHeader(&tar.Header{Name: "chunk" + strconv.Itoa(i), Typeflag: tar.TypeReg, Size: 4 << 20, Mode: 0o644}); err != nil {
						return err
					}
					if _, err := io.CopyN(tw, zeros{}, 4<<20); err != nil {
						return err
					}
				}
				return tw.Close()
			},
			opts:        Options{MaxTotalBytes: 32 << 20},
			msg:         `entry "chunk8": files add up to more than the 33554432 bytes`,
			maxConsumed: 1 << 20,
		},
		{
			name: "1 GiB of zeros after the end of the archive",
			write: func(tw *tar.Writer, zw *gzip.Writer) error {
				if err := tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}); err != nil {
					return err
				}
				if _, err := tw.Write([]byte("x")); err != nil {
					return err
				}
				if err := tw.Close(); err != nil {
					return err
				}
				_, err := io.CopyN(zw, zeros{}, gib)
				return err
			},
			opts:        Options{MaxTotalBytes: 16 << 20, MaxFiles: 100},
			msg:         "uncompressed tar stream is larger than",
			maxConsumed: 1 << 20,
		},
		{
			name: "1 GiB of PAX records",
			write: func(tw *tar.Writer, _ *gzip.Writer) error {
				// Each header carries 900 KiB of PAX records that the tar
				// reader parses and drops: never file data, still inflated.
				big := map[string]string{"comment": strings.Repeat("x", 900<<10)}
				for i := range gib / (900 << 10) {
					if err := tw.WriteHeader(&tar.Header{Name: "f" + strconv.Itoa(i), Typeflag: tar.TypeReg, PAXRecords: big}); err != nil {
						return err
					}
				}
				return tw.Close()
			},
			opts:        Options{MaxTotalBytes: 8 << 20, MaxFiles: 1000},
			msg:         "uncompressed tar stream is larger than",
			maxConsumed: 1 << 20,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := newLazyTarGz(t, tc.write)
			start := time.Now()
			files, err := ReadTarGz(src, tc.opts)
			if err == nil {
				t.Fatalf("accepted %d files", len(files))
			}
			checkErr(t, err, ErrTooLarge, tc.msg)
			if src.consumed > tc.maxConsumed {
				t.Errorf("read %d compressed bytes before refusing; want at most %d", src.consumed, tc.maxConsumed)
			}
			t.Logf("refused after %d compressed bytes in %v: %v", src.consumed, time.Since(start), err)
		})
	}
}

// TestReadTarGzEmptyBlocks feeds deflate input that never produces output:
// only the compressed cap can stop it.
func TestReadTarGzEmptyBlocks(t *testing.T) {
	header := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	// A non-final stored block of length 0: BFINAL=0, BTYPE=00, padding,
	// LEN=0, NLEN=0xffff.
	block := []byte{0, 0, 0, 0xff, 0xff}
	emptyMember := gz(t, nil)
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"empty stored blocks", io.MultiReader(bytes.NewReader(header), &repeat{b: block})},
		{"empty gzip members", &repeat{b: emptyMember}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &countingReader{r: tc.r}
			_, err := ReadTarGz(r, Options{MaxCompressedBytes: 1 << 20})
			checkErr(t, err, ErrTooLarge, "compressed stream is larger than 1048576 bytes")
			if r.n > 1<<20+64<<10 {
				t.Errorf("read %d bytes", r.n)
			}
		})
	}
}

type repeat struct {
	b   []byte
	off int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fuzzOptions keeps each fuzz input cheap while leaving every bound
// reachable.
var fuzzOptions = Options{MaxFileBytes: 64 << 10, MaxTotalBytes: 256 << 10, MaxFiles: 64, MaxCompressedBytes: 256 << 10, MaxPathLength: 256, MaxDepth: 8}

// FuzzReadTarGz feeds ReadTarGz arbitrary input, gzip-compressed by the
// harness when wrap is set so the fuzzer reaches the tar reader without
// having to forge checksums. ReadTarGz must not panic, must return only
// *Error, and what it accepts must hold to every bound and rule.
func FuzzReadTarGz(f *testing.F) {
	seed := func(archive []byte) {
		f.Add(archive, false)
		if zr, err := gzip.NewReader(bytes.NewReader(archive)); err == nil {
			if raw, err := io.ReadAll(io.LimitReader(zr, 1<<20)); err == nil {
				f.Add(raw, true)
			}
		}
	}
	for _, tc := range refuseCases(f) {
		seed(tc.archive)
	}
	for _, tc := range acceptCases(f) {
		seed(tc.archive)
	}
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		if wrap {
			data = gz(t, data)
		}
		files, err := ReadTarGz(bytes.NewReader(data), fuzzOptions)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is no *Error", err, err)
			}
			known := false
			for _, kind := range []error{ErrUnsafePath, ErrUnsupportedEntry, ErrDuplicate, ErrTooLarge, ErrCorrupt} {
				known = known || errors.Is(e.Kind, kind)
			}
			if !known {
				t.Fatalf("error %v has kind %v", err, e.Kind)
			}
			if files != nil {
				t.Fatal("files returned with an error")
			}
			return
		}
		checkFiles(t, files, fuzzOptions)
	})
}

// checkFiles fails unless files keep to o and to the naming rules.
func checkFiles(t *testing.T, files []File, o Options) {
	t.Helper()
	if len(files) > o.MaxFiles {
		t.Fatalf("%d files", len(files))
	}
	var total int64
	seen := map[string]bool{}
	for _, f := range files {
		if !fs.ValidPath(f.Name) || f.Name == "." || strings.ContainsAny(f.Name, "\\\x00") || len(f.Name) > o.MaxPathLength ||
			strings.Count(f.Name, "/") >= o.MaxDepth || (len(f.Name) >= 2 && f.Name[1] == ':') {
			t.Fatalf("accepted name %q", f.Name)
		}
		if seen[f.Name] {
			t.Fatalf("%q returned twice", f.Name)
		}
		seen[f.Name] = true
		if int64(len(f.Data)) > o.MaxFileBytes {
			t.Fatalf("%q: %d bytes", f.Name, len(f.Data))
		}
		if f.Mode&^fs.ModePerm != 0 {
			t.Fatalf("%q: mode %v", f.Name, f.Mode)
		}
		total += int64(len(f.Data))
	}
	if total > o.MaxTotalBytes {
		t.Fatalf("%d bytes in all", total)
	}
	for _, f := range files {
		for dir := f.Name; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndexByte(dir, '/')]
			if seen[dir] {
				t.Fatalf("%q is a file and the directory of %q", dir, f.Name)
			}
		}
	}
}
