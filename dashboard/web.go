package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// The web UI: plain HTML, CSS and JavaScript modules under web/, embedded in the binary, no build step and no
// third-party front-end code. The files are public (the login page must load without a session); every piece
// of data comes from the authenticated API. Each file is served with a strong ETag and "no-cache", so a
// browser revalidates (a 304 when nothing changed) and a new binary is never hidden behind a stale cache;
// compressible files are gzipped once, in memory, for clients that accept it (the commune outlines shrink
// from 550 to about 150 KB).

//go:embed web
var webFiles embed.FS

// webCSP allows the page's own scripts, styles, images and API/websocket calls and nothing else: no inline
// script or style, no framing, no plugin.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// webPaths are the routes of the UI: the page itself and its static files. They are not part of the API and
// so not in openapi.json.
const (
	webIndexPath  = "/{$}"
	webStaticPath = "/static/{file...}"
)

// isWebRoute reports whether a route-table path serves the UI rather than the API.
func isWebRoute(p string) bool { return p == webIndexPath || p == webStaticPath }

type webFile struct {
	body, gz []byte
	ctype    string
	etag     string
}

var (
	webOnce  sync.Once
	webTable map[string]*webFile // by path under web/
)

// loadWeb reads and compresses the embedded files once.
func loadWeb() map[string]*webFile {
	webOnce.Do(func() {
		webTable = map[string]*webFile{}
		_ = fs.WalkDir(webFiles, "web", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := webFiles.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			f := &webFile{body: b, ctype: webContentType(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
			if len(b) > 1024 && compressible(f.ctype) {
				var buf bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
				_, _ = zw.Write(b)
				_ = zw.Close()
				if buf.Len() < len(b) {
					f.gz = buf.Bytes()
				}
			}
			webTable[strings.TrimPrefix(p, "web/")] = f
			return nil
		})
	})
	return webTable
}

func webContentType(p string) string {
	switch path.Ext(p) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".geojson":
		return "application/geo+json"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "json") || strings.Contains(ctype, "svg")
}

func (s *Server) webIndex(w http.ResponseWriter, r *http.Request, _ Principal) {
	s.webServe(w, r, "index.html")
}

func (s *Server) webStatic(w http.ResponseWriter, r *http.Request, _ Principal) {
	name := r.PathValue("file")
	if name == "index.html" || strings.HasSuffix(name, ".md") {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	s.webServe(w, r, name)
}

func (s *Server) webServe(w http.ResponseWriter, r *http.Request, name string) {
	f := loadWeb()[name]
	if f == nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", webCSP)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Type", f.ctype)
	if etagMatch(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
