package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
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

// MapTiles is a raster tile background for the map: URL is a template with {z}, {x} and {y} (Web Mercator,
// 256 px tiles), Attribution the provider's credit shown on the map.
type MapTiles struct {
	URL         string `json:"url"`
	Attribution string `json:"attribution"`
}

// CheckTileURL checks a tile URL template: http or https, a host, and the three placeholders.
func CheckTileURL(t string) error {
	u, err := url.Parse(strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(t))
	switch {
	case err != nil:
		return fmt.Errorf("tile URL %q: %w", t, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return fmt.Errorf("tile URL %q: want http(s)://host/…", t)
	case !strings.Contains(t, "{z}") || !strings.Contains(t, "{x}") || !strings.Contains(t, "{y}"):
		return fmt.Errorf("tile URL %q: want the placeholders {z}, {x} and {y}", t)
	}
	return nil
}

// webCSP is webCSP with the tile server's origin allowed for images when a tile background is configured:
// the only thing the page ever loads from another site.
func (s *Server) webCSP() string {
	t := s.deps.MapTiles.URL
	if t == "" {
		return webCSP
	}
	u, err := url.Parse(strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(t))
	if err != nil || u.Host == "" {
		return webCSP
	}
	return strings.Replace(webCSP, "img-src 'self' data:", "img-src 'self' data: "+u.Scheme+"://"+u.Host, 1)
}

// uiSettings answers /api/v1/ui: what the web UI needs of the configuration (the map's tile background).
func (s *Server) uiSettings(w http.ResponseWriter, _ *http.Request, _ Principal) {
	out := map[string]any{}
	if s.deps.MapTiles.URL != "" {
		out["map_tiles"] = s.deps.MapTiles
	}
	writeJSON(w, http.StatusOK, out)
}

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
	h.Set("Content-Security-Policy", s.webCSP())
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
