package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/rules"
)

// Alerts is the rules engine's alert side as the API uses it (*rules.Manager).
type Alerts interface {
	Alerts(ctx context.Context, f rules.Filter) ([]rules.Alert, error)
	Alert(ctx context.Context, id string) (rules.Alert, error)
	Acknowledge(ctx context.Context, id, user, comment string, now time.Time) (rules.Alert, error)
	AddSilence(ctx context.Context, s rules.Silence, now time.Time) (rules.Silence, error)
	ExpireSilence(ctx context.Context, id string, now time.Time) error
	Silences(now time.Time) []rules.Silence
}

// Rules is the rules engine's rule side as the API uses it (*rules.Engine).
type Rules interface {
	Status() ([]rules.RuleStatus, rules.ReloadStatus)
	Reload(ctx context.Context, now time.Time) error
}

var (
	_ Alerts = (*rules.Manager)(nil)
	_ Rules  = (*rules.Engine)(nil)
)

// maxBody bounds a JSON request body.
const maxBody = 64 << 10

var alertParams = []string{"state", "severity", "rule", "epci", "site", "device", "limit"}

// alertFilter is the query narrowed to the principal's scope: a pilote only ever sees its EPCIs' alerts.
func (s *Server) alertFilter(r *http.Request, p Principal) (rules.Filter, error) {
	v := r.URL.Query()
	for k := range v {
		if !slices.Contains(alertParams, k) {
			return rules.Filter{}, badRequest("%s: unknown parameter (want %v)", k, alertParams)
		}
	}
	f := rules.Filter{State: hv.AlertState(v.Get("state")), Severity: hv.Severity(v.Get("severity")), Rule: v.Get("rule"),
		Labels: map[string]string{}}
	switch f.State {
	case "", hv.AlertPending, hv.AlertFiring, hv.AlertResolved:
	default:
		return f, badRequest("state: %q is not one of pending, firing, resolved", f.State)
	}
	switch f.Severity {
	case "", hv.SeverityCritical, hv.SeverityWarning, hv.SeverityInfo:
	default:
		return f, badRequest("severity: %q is not one of critical, warning, info", f.Severity)
	}
	for _, k := range []string{"site", "device"} {
		if x := v.Get(k); x != "" {
			f.Labels[k] = x
		}
	}
	if err := queryLimit(v, 5000, &f.Limit); err != nil {
		return f, err
	}
	sc := scopeOf(p)
	if !sc.all {
		f.EPCI = slices.Clone(sc.epcis)
		if f.EPCI == nil {
			f.EPCI = []string{}
		}
	}
	if e := v.Get("epci"); e != "" {
		if !sc.has(e) {
			return f, &httpError{http.StatusForbidden, "epci " + e + ": outside your scope"}
		}
		f.EPCI = []string{e}
	}
	return f, nil
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return
	}
	f, err := s.alertFilter(r, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	as, err := s.deps.Alerts.Alerts(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if as == nil {
		as = []rules.Alert{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": as})
}

// visibleAlert fetches an alert and answers 404 for one outside the principal's scope, exactly as for an
// unknown id.
func (s *Server) visibleAlert(w http.ResponseWriter, r *http.Request, p Principal) (rules.Alert, bool) {
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return rules.Alert{}, false
	}
	id := r.PathValue("id")
	a, err := s.deps.Alerts.Alert(r.Context(), id)
	if err == nil && !scopeOf(p).has(a.Labels["epci"]) {
		err = rules.ErrNotFound
	}
	if err != nil {
		s.fail(w, err)
		return rules.Alert{}, false
	}
	return a, true
}

func (s *Server) alert(w http.ResponseWriter, r *http.Request, p Principal) {
	if a, ok := s.visibleAlert(w, r, p); ok {
		writeJSON(w, http.StatusOK, a)
	}
}

func (s *Server) ackAlert(w http.ResponseWriter, r *http.Request, p Principal) {
	var body struct {
		Comment string `json:"comment"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	if _, ok := s.visibleAlert(w, r, p); !ok {
		return
	}
	a, err := s.deps.Alerts.Acknowledge(r.Context(), r.PathValue("id"), p.Name, body.Comment, s.now())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("alert acknowledged", "alert", a.Fingerprint, "rule", a.Rule, "by", p.Name)
	s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "alert.ack", Target: a.Fingerprint, Ref: a.Rule,
		Detail: body.Comment, Outcome: "ok"})
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) silences(w http.ResponseWriter, _ *http.Request, p Principal) {
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return
	}
	out := []rules.Silence{}
	sc := scopeOf(p)
	for _, sl := range s.deps.Alerts.Silences(s.now()) {
		if sc.all || sc.has(sl.Matchers["epci"]) {
			out = append(out, sl)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"silences": out})
}

func (s *Server) addSilence(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return
	}
	var body struct {
		Matchers map[string]string `json:"matchers"`
		From     time.Time         `json:"from"`
		To       time.Time         `json:"to"`
		Comment  string            `json:"comment"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	// A scoped principal may only silence within its EPCI: the silence must say which.
	if sc := scopeOf(p); !sc.all && !sc.has(body.Matchers["epci"]) {
		writeError(w, http.StatusForbidden, "matchers.epci: a silence of yours must name one of your EPCI")
		return
	}
	sl, err := s.deps.Alerts.AddSilence(r.Context(), rules.Silence{Matchers: body.Matchers, From: body.From, To: body.To,
		By: p.Name, Comment: body.Comment}, s.now())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("silence added", "silence", sl.ID, "matchers", sl.Matchers, "from", sl.From, "to", sl.To, "by", p.Name)
	s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "silence.add", Target: sl.ID,
		Detail: fmt.Sprintf("%v du %s au %s : %s", sl.Matchers, sl.From.Format(time.RFC3339), sl.To.Format(time.RFC3339), sl.Comment), Outcome: "ok"})
	writeJSON(w, http.StatusCreated, sl)
}

func (s *Server) expireSilence(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return
	}
	id := r.PathValue("id")
	sc := scopeOf(p)
	i := slices.IndexFunc(s.deps.Alerts.Silences(s.now()), func(sl rules.Silence) bool {
		return sl.ID == id && (sc.all || sc.has(sl.Matchers["epci"]))
	})
	if i < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("silence %q not found", id))
		return
	}
	if err := s.deps.Alerts.ExpireSilence(r.Context(), id, s.now()); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("silence expired", "silence", id, "by", p.Name)
	s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "silence.expire", Target: id, Outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rulesStatus(w http.ResponseWriter, _ *http.Request, _ Principal) {
	if s.deps.Rules == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return
	}
	rs, reload := s.deps.Rules.Status()
	writeJSON(w, http.StatusOK, map[string]any{"rules": rs, "last_reload": reload})
}

func (s *Server) reloadRules(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Rules == nil {
		writeError(w, http.StatusNotFound, "rules engine not enabled")
		return
	}
	s.log.Info("rules reload asked", "by", p.Name)
	if err := s.deps.Rules.Reload(r.Context(), s.now()); err != nil {
		// The previous rules keep running; the error (file, line, reason) is the caller's to fix.
		s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "rules.reload", Target: "rules", Detail: err.Error(), Outcome: "refused"})
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "rules.reload", Target: "rules", Outcome: "ok"})
	rs, reload := s.deps.Rules.Status()
	writeJSON(w, http.StatusOK, map[string]any{"rules": rs, "last_reload": reload})
}

// fail answers an error from a parser or the rules engine with its status.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, rules.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, hv.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.log.Error("alerts api", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// queryLimit reads the "limit" parameter into *limit when present: 1 to max.
func queryLimit(q url.Values, max int, limit *int) error {
	x := q.Get("limit")
	if x == "" {
		return nil
	}
	n, err := strconv.Atoi(x)
	if err != nil || n < 1 || n > max {
		return badRequest("limit: want 1 to %d", max)
	}
	*limit = n
	return nil
}

// decodeBody reads a JSON body strictly: unknown fields are an error, as in the configuration.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	return nil
}
