package dashboard

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CSRFHeader carries a session's CSRF token on state-changing requests.
const CSRFHeader = "X-CSRF-Token"

// checkCSRF refuses a state-changing request authenticated by the session cookie unless it carries the
// session's CSRF token and, when the browser names one, comes from the dashboard's own origin. SameSite=Strict
// already keeps the cookie off cross-site requests; this holds even for a browser or a sibling subdomain
// that gets around it. Requests with a bearer token are exempt: a page of another site cannot set
// Authorization without a CORS preflight, which the API does not grant.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, p Principal) bool {
	if p.session == nil {
		return true
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	tok := r.Header.Get(CSRFHeader)
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(p.session.csrf)) != 1 {
		writeError(w, http.StatusForbidden, "csrf: missing or wrong "+CSRFHeader+" header")
		return false
	}
	if !s.sameOrigin(r) {
		writeError(w, http.StatusForbidden, "csrf: cross-origin request refused")
		return false
	}
	return true
}

// sameOrigin reports whether the request's Origin (or, without it, its Referer) is the server's own host or
// one of the configured origins. A request naming neither is not from a browser page and passes; "null"
// (a sandboxed or privacy-redirected page) does not.
func (s *Server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return true
		}
		u, err := url.Parse(ref)
		if err != nil || u.Host == "" {
			return false
		}
		origin = u.Scheme + "://" + u.Host
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || slices.Contains(s.deps.AllowedOrigins, origin)
}
