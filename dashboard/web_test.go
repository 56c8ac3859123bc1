package dashboard

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
)

func TestWebServing(t *testing.T) {
	f := newFixture(t)
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec.Result()
	}
	tests := []struct {
		name, path string
		status     int
		ctype      string
	}{
		{"index", "/", 200, "text/html"},
		{"script", "/static/js/app.js", 200, "text/javascript"},
		{"style", "/static/app.css", 200, "text/css"},
		{"outlines", "/static/aisne-communes.geojson", 200, "application/geo+json"},
		{"icon", "/static/favicon.svg", 200, "image/svg+xml"},
		{"unknown file", "/static/js/nope.js", 404, "application/json"},
		{"notes are not served", "/static/README.md", 404, "application/json"},
		{"index only at the root", "/static/index.html", 404, "application/json"},
		{"no fallback for other paths", "/carte", 404, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(tt.path)
			if resp.StatusCode != tt.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("GET %s: %d %q, want %d %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, tt.ctype)
			}
			if tt.status != 200 {
				return
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "script-src 'self';", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP %q allows inline code", csp)
			}
			if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
				t.Errorf("caching headers: Cache-Control %q, ETag %q", resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
			}
		})
	}

	t.Run("revalidation answers 304", func(t *testing.T) {
		etag := get("/static/js/map.js").Header.Get("ETag")
		if resp := get("/static/js/map.js", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match %s: %d, want 304", etag, resp.StatusCode)
		}
	})

	t.Run("gzip for clients that accept it", func(t *testing.T) {
		plain, _ := io.ReadAll(get("/static/aisne-communes.geojson").Body)
		resp := get("/static/aisne-communes.geojson", "Accept-Encoding", "gzip, br")
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		unzipped, _ := io.ReadAll(zr)
		if !bytes.Equal(unzipped, plain) || int(resp.ContentLength) >= len(plain)/2 {
			t.Errorf("gzip: %d bytes for %d, round trip equal %v", resp.ContentLength, len(plain), bytes.Equal(unzipped, plain))
		}
		if resp := get("/static/aisne-communes.geojson", "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("gzip sent although refused")
		}
	})
}

// TestWebFiles checks what the browser would only find out at run time: the page has no inline code (the CSP
// would block it), every module a module imports is embedded, and the outlines with the merger table of
// js/map.js give exactly the communes of the territory.
func TestWebFiles(t *testing.T) {
	index, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+=|\sstyle=|<style`).Match(index) {
		t.Errorf("index.html has inline script or style, which the Content-Security-Policy blocks")
	}
	for _, ref := range regexp.MustCompile(`(?:href|src)="/static/([^"]+)"`).FindAllSubmatch(index, -1) {
		if _, err := webFiles.ReadFile("web/" + string(ref[1])); err != nil {
			t.Errorf("index.html refers to /static/%s: %v", ref[1], err)
		}
	}
	imports := regexp.MustCompile(`(?:from\s+|import\()\s*'(\./[^']+)'`)
	_ = fs.WalkDir(webFiles, "web/js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := webFiles.ReadFile(p)
		for _, m := range imports.FindAllSubmatch(src, -1) {
			if _, err := webFiles.ReadFile("web/js/" + strings.TrimPrefix(string(m[1]), "./")); err != nil {
				t.Errorf("%s imports %s: not embedded", p, m[1])
			}
		}
		if bytes.Contains(src, []byte("innerHTML")) || bytes.Contains(src, []byte("eval(")) {
			t.Errorf("%s builds markup from strings or evaluates code", p)
		}
		return nil
	})

	var outlines struct {
		Features []struct {
			Properties struct{ Code string } `json:"properties"`
		} `json:"features"`
	}
	b, _ := webFiles.ReadFile("web/aisne-communes.geojson")
	if err := json.Unmarshal(b, &outlines); err != nil {
		t.Fatal(err)
	}
	src, _ := webFiles.ReadFile("web/js/map.js")
	table := regexp.MustCompile(`(?s)const MERGED = \{(.*?)\};`).FindSubmatch(src)
	if table == nil {
		t.Fatal("map.js: no MERGED table")
	}
	merged := map[string]string{}
	for _, m := range regexp.MustCompile(`'(\d{5})': '(\d{5})'`).FindAllSubmatch(table[1], -1) {
		merged[string(m[1])] = string(m[2])
	}
	tr, err := registry.DefaultTerritory()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, c := range tr.Communes() {
		want[c.Code] = true
	}
	drawn := map[string]bool{}
	for _, f := range outlines.Features {
		code := f.Properties.Code
		if to, ok := merged[code]; ok {
			code = to
		}
		if !want[code] {
			t.Errorf("outline %s is no commune of the territory and not in map.js's MERGED", code)
		}
		drawn[code] = true
	}
	if len(drawn) != len(want) || len(want) != 797 {
		t.Errorf("the map draws %d communes, the territory has %d, want 797", len(drawn), len(want))
	}
}

// TestMapTiles: with a tile background configured, /api/v1/ui gives the web UI its template and credit, and
// the pages' Content-Security-Policy lets images come from the tile server, and from nowhere else.
func TestMapTiles(t *testing.T) {
	f := newFixture(t)
	if code, body, _ := f.do(t, "GET", "/api/v1/ui", "lecteur"); code != 200 || body["map_tiles"] != nil {
		t.Errorf("no tiles: %d %v", code, body)
	}
	f = newFixtureWith(t, "testdata/registry.yaml", func(_ *registry.Registry, _ *live.State, d *Deps) {
		d.MapTiles = MapTiles{URL: "https://tuiles.example.fr/osm/{z}/{x}/{y}.png", Attribution: "© contributeurs OpenStreetMap"}
	})
	code, body, _ := f.do(t, "GET", "/api/v1/ui", "pilote")
	tiles, _ := body["map_tiles"].(map[string]any)
	if code != 200 || tiles["url"] != "https://tuiles.example.fr/osm/{z}/{x}/{y}.png" || tiles["attribution"] != "© contributeurs OpenStreetMap" {
		t.Errorf("tiles: %d %v", code, body)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "img-src 'self' data: https://tuiles.example.fr;") || !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("CSP with tiles: %q", csp)
	}
	if code, _, _ := f.do(t, "GET", "/api/v1/ui", ""); code != 401 {
		t.Errorf("anonymous /api/v1/ui: %d, want 401", code)
	}
	for _, bad := range []string{"ftp://x/{z}/{x}/{y}", "https:///{z}/{x}/{y}", "https://x/{z}/{y}"} {
		if CheckTileURL(bad) == nil {
			t.Errorf("CheckTileURL(%q) accepted", bad)
		}
	}
}
