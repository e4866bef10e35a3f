package luabind

/*
#include "magnet.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
)

// Uploads says where magnet.request.files puts uploaded files and how much
// one request may upload. A multipart/form-data body is parsed only when a
// script first reads magnet.request.post or magnet.request.files; its
// files are streamed to Dir as they arrive and removed when the run ends.
type Uploads struct {
	// Dir holds the files of the running request. Empty: a directory
	// os.TempDir()/magnet-uploads-PID, made (0700) on the first upload and
	// removed by Close.
	Dir string
	// MaxBytes bounds the files of one request together (0:
	// DefaultMaxUpload; negative: no limit but the body's).
	MaxBytes int64
	// MaxFiles bounds the file parts of one request (0: DefaultMaxFiles).
	MaxFiles int
}

// Defaults of Uploads, those of PHP's post_max_size and max_file_uploads.
const (
	DefaultMaxUpload = 8 << 20
	DefaultMaxFiles  = 20
)

// Bounds on the parts that are not files, which are held in memory, as
// mime/multipart's ReadForm bounds them.
const (
	maxFormFields = 1000
	maxFieldBytes = 10 << 20
)

// errUploadTooLarge is the run's error once the files go over MaxBytes.
var errUploadTooLarge = errors.New("upload too large")

type uploads struct {
	cfg     Uploads
	dir     string   // made and ready; "" until the first file
	made    bool     // dir is the default one, made by us: Close removes it
	paths   []string // files of the running request
	buf     []byte   // copy buffer
	lastErr string   // the running request's parse error, for tests
	over    bool     // the running request's files went over MaxBytes
}

// SetUploads configures magnet.request.files. Call it before the first
// run.
func (st *State) SetUploads(u Uploads) {
	if st.up.dir != "" && st.up.made && u.Dir != "" {
		os.Remove(st.up.dir)
	}
	st.up = uploads{cfg: u}
}

func registerUploads(st *State) {
	st.Register("magnet", "_multipart", st.multipart)
}

// multipart: magnet._multipart(content_type [, body]) -> list | nil, err.
// The prelude turns the flat list ("f", name, value | "F", name, filename,
// content type, size, path; ...) into magnet.request.post and .files. The
// body is read from the request unless the script already holds it whole.
func (st *State) multipart(c *Call) (int, error) {
	ct, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	var body io.Reader = bodyReader{st}
	if b := c.ArgBytes(2); b != nil {
		body = bytes.NewReader(b)
	}
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return c.Fail(fmt.Errorf("multipart: bad Content-Type: %w", err))
	}
	boundary := params["boundary"]
	if boundary == "" {
		return c.Fail(errors.New("multipart: no boundary in Content-Type"))
	}
	c.NewTable(64, 0)
	n := 0
	push := func(s string) {
		n++
		c.PushString(s)
		c.SetIndex(-2, n)
	}
	if err := st.parseMultipart(multipart.NewReader(body, boundary), push); err != nil {
		c.st.res = c.st.res[:0]
		st.up.lastErr = err.Error()
		return c.Fail(err)
	}
	return 1, nil
}

func (st *State) parseMultipart(r *multipart.Reader, push func(string)) error {
	u := &st.up
	maxBytes := u.cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxUpload
	}
	maxFiles := u.cfg.MaxFiles
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	var fileBytes, fieldBytes int64
	files, fields := 0, 0
	var sb strings.Builder
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return st.bodyErr(err)
		}
		_, disp, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil {
			return fmt.Errorf("multipart: bad Content-Disposition: %w", err)
		}
		name := disp["name"]
		filename, isFile := disp["filename"]
		if !isFile {
			if fields++; fields > maxFormFields {
				return fmt.Errorf("multipart: more than %d fields", maxFormFields)
			}
			sb.Reset()
			k, err := io.Copy(&sb, io.LimitReader(part, maxFieldBytes-fieldBytes+1))
			if fieldBytes += k; fieldBytes > maxFieldBytes {
				return fmt.Errorf("multipart: the fields are over %d bytes", maxFieldBytes)
			}
			if err != nil {
				return st.bodyErr(err)
			}
			push("f")
			push(name)
			push(sb.String())
			continue
		}
		if filename == "" {
			// a file input with no file chosen: browsers send it empty
			if _, err := io.Copy(io.Discard, part); err != nil {
				return st.bodyErr(err)
			}
			continue
		}
		if files++; files > maxFiles {
			return fmt.Errorf("multipart: too many files: more than %d (--max-files)", maxFiles)
		}
		room := int64(-1)
		if maxBytes > 0 {
			room = maxBytes - fileBytes
		}
		path, size, err := st.saveUpload(part, room)
		fileBytes += size
		if err == errUploadTooLarge {
			st.s.body_over = 1 // answered 413 unless the script sent something
			st.up.over = true
			return fmt.Errorf("multipart: upload too large: the files of a request are limited to %d bytes (--max-upload)", maxBytes)
		}
		if err != nil {
			return err
		}
		push("F")
		push(name)
		push(filepath.Base(filename))
		push(part.Header.Get("Content-Type"))
		push(fmt.Sprint(size))
		push(path)
	}
}

// bodyErr words an error met reading the body.
func (st *State) bodyErr(err error) error {
	if errors.Is(err, errBodyOver) {
		return errors.New("magnet: request body too large")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("multipart: malformed body: unexpected end")
	}
	return fmt.Errorf("multipart: malformed body: %w", err)
}

// saveUpload streams one file part to a new file under the upload
// directory, at most room bytes (negative: no bound).
func (st *State) saveUpload(part io.Reader, room int64) (string, int64, error) {
	u := &st.up
	if err := u.ensureDir(); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(u.dir, "upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("multipart: %w", err)
	}
	u.paths = append(u.paths, f.Name())
	if u.buf == nil {
		u.buf = make([]byte, 32<<10)
	}
	src := part
	if room >= 0 {
		src = io.LimitReader(part, room+1)
	}
	n, err := io.CopyBuffer(onlyWriter{f}, onlyReader{src}, u.buf)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("multipart: %w", cerr)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", n, fmt.Errorf("multipart: saving the upload: %w", err)
		}
		return "", n, st.bodyErr(err)
	}
	if room >= 0 && n > room {
		return "", n, errUploadTooLarge
	}
	return f.Name(), n, nil
}

// onlyReader and onlyWriter hide ReaderFrom and WriterTo, so that the copy
// goes through the one reused buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

func (u *uploads) ensureDir() error {
	if u.dir != "" {
		return nil
	}
	dir, def := u.cfg.Dir, false
	if dir == "" {
		dir, def = filepath.Join(os.TempDir(), fmt.Sprintf("magnet-uploads-%d", os.Getpid())), true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("multipart: upload directory: %w", err)
	}
	u.dir, u.made = dir, def
	return nil
}

// removeUploads deletes the files of the run that just ended, whatever
// the script did with them (a file it renamed away is kept).
func (st *State) removeUploads() {
	for _, p := range st.up.paths {
		os.Remove(p)
	}
	clear(st.up.paths)
	st.up.paths = st.up.paths[:0]
}

// closeUploads removes the default upload directory.
func (st *State) closeUploads() {
	st.removeUploads()
	if st.up.made {
		os.Remove(st.up.dir)
		st.up.dir, st.up.made = "", false
	}
}

// UploadError is the multipart error of the last run, if any (tests).
func (st *State) UploadError() string { return st.up.lastErr }

// UploadTooLarge reports that the last Run's uploaded files went over the
// Uploads byte limit; BodyTooLarge reports it too.
func (st *State) UploadTooLarge() bool { return st.up.over }

var errBodyOver = errors.New("request body over its limit")

// bodyReader reads the request body from Go: first what C read ahead
// (io.read before magnet.request.post), then the rest, under the body
// limit (SetMaxBody).
type bodyReader struct{ st *State }

func (b bodyReader) Read(p []byte) (int, error) {
	s := b.st.s
	if rest := int(s.in.len - s.in_off); rest > 0 {
		n := copy(p, cBytes(s.in)[s.in_off:])
		s.in_off += C.size_t(n)
		return n, nil
	}
	if s.body_over != 0 {
		return 0, errBodyOver
	}
	if s.body_eof != 0 || len(p) == 0 {
		return 0, io.EOF
	}
	switch n := b.st.readBody(p); {
	case n > 0:
		return n, nil
	case n == 0:
		s.body_eof = 1
		return 0, io.EOF
	case n == -2:
		s.body_over = 1
		return 0, errBodyOver
	default:
		return 0, errors.New("reading the request body failed")
	}
}
