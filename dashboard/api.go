package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// rfc3339Milli is RFC 3339 with the milliseconds readings carry, left out when zero.
const rfc3339Milli = "2006-01-02T15:04:05.999Z07:00"

// scope is the part of the territory a principal may see.
type scope struct {
	all   bool
	epcis []string
}

func scopeOf(p Principal) scope {
	if len(p.EPCIs) == 0 && p.Role != RolePilote {
		return scope{all: true}
	}
	return scope{epcis: p.EPCIs} // a pilote without EPCI sees nothing, never everything
}

func (s scope) has(epci string) bool { return s.all || epci != "" && slices.Contains(s.epcis, epci) }

// seesUnregistered reports whether p may see devices nobody registered: they belong to no EPCI, so only the
// syndicate's staff with the whole département in scope does.
func seesUnregistered(p Principal) bool { return p.Role.staff() && scopeOf(p).all }

// me answers the caller, with its CSRF token when it is a browser session (session.go).
func (s *Server) me(w http.ResponseWriter, _ *http.Request, p Principal) {
	writeJSON(w, http.StatusOK, viewOf(p))
}

func (s *Server) formats(w http.ResponseWriter, _ *http.Request, _ Principal) {
	f := s.deps.Formats
	if f == nil {
		f = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"formats": f})
}

type epciView struct {
	Code       string `json:"code"`
	Name       string `json:"nom"`
	Type       string `json:"type"`
	Communes   int    `json:"communes"`
	Population int    `json:"population"`
}

func (s *Server) territory(w http.ResponseWriter, _ *http.Request, p Principal) {
	t := s.reg().Territory()
	sc := scopeOf(p)
	epcis := []epciView{}
	for _, e := range t.EPCIs() {
		if !sc.has(e.Code) {
			continue
		}
		v := epciView{Code: e.Code, Name: e.Name, Type: e.Type, Communes: len(e.Communes)}
		for _, c := range e.Communes {
			com, _ := t.Commune(c)
			v.Population += com.Population
		}
		epcis = append(epcis, v)
	}
	communes := []hv.Commune{}
	for _, c := range t.Communes() {
		if sc.has(c.EPCI) {
			communes = append(communes, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"departement": t.Departement(),
		"epci":        epcis,
		"communes":    communes,
	})
}

type siteView struct {
	hv.Site
	Devices int `json:"devices"`
}

func (s *Server) sites(w http.ResponseWriter, r *http.Request, p Principal) {
	reg := s.reg()
	q := r.URL.Query()
	f, err := parseFilters(q, reg.Territory(), "commune", "epci", "kind")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	count := map[string]int{}
	for _, d := range reg.Devices() {
		count[d.Site]++
	}
	sc := scopeOf(p)
	out := []siteView{}
	for _, st := range reg.Sites() {
		if sc.has(st.EPCI) && in(f["commune"], st.Commune) && in(f["epci"], st.EPCI) && in(f["kind"], string(st.Kind)) {
			out = append(out, siteView{Site: st, Devices: count[st.ID]})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sites": out})
}

type deviceView struct {
	ID       string        `json:"id"`
	Site     string        `json:"site"`
	SiteName string        `json:"site_name"`
	Kind     hv.DeviceKind `json:"kind"`
	Fluid    hv.Fluid      `json:"fluid,omitempty"`
	Commune  string        `json:"commune"`
	EPCI     string        `json:"epci"`
	Profile  string        `json:"profile,omitempty"`
	Interval string        `json:"interval,omitempty"`
	LastSeen *time.Time    `json:"last_seen"`
}

func (s *Server) deviceView(d hv.Device, st hv.Site) deviceView {
	v := deviceView{
		ID: d.ID, Site: d.Site, SiteName: st.Name, Kind: d.Kind, Fluid: d.Fluid, Commune: st.Commune,
		EPCI: st.EPCI, Profile: d.Profile, LastSeen: millisTime(s.deps.Live.LastSeen(d.ID)),
	}
	if d.Interval > 0 {
		v.Interval = formatDuration(d.Interval)
	}
	return v
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request, p Principal) {
	reg := s.reg()
	f, err := parseFilters(r.URL.Query(), reg.Territory(), "site", "commune", "epci", "fluid", "kind")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sc := scopeOf(p)
	out := []deviceView{}
	for _, d := range reg.Devices() {
		_, st, _ := reg.Device(d.ID)
		if sc.has(st.EPCI) && in(f["site"], d.Site) && in(f["commune"], st.Commune) && in(f["epci"], st.EPCI) &&
			in(f["fluid"], string(d.Fluid)) && in(f["kind"], string(d.Kind)) {
			out = append(out, s.deviceView(d, st))
		}
	}
	resp := map[string]any{"devices": out}
	if seesUnregistered(p) {
		resp["unregistered"] = s.unregisteredList()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) unregistered(w http.ResponseWriter, _ *http.Request, _ Principal) {
	writeJSON(w, http.StatusOK, map[string]any{"unregistered": s.unregisteredList()})
}

func (s *Server) unregisteredList() []registry.UnregisteredDevice {
	if s.deps.Unregistered == nil {
		return []registry.UnregisteredDevice{}
	}
	return s.deps.Unregistered.List()
}

type readingView struct {
	Metric hv.Metric `json:"metric"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit"`
	Time   string    `json:"time"`
}

type latestView struct {
	Device     string        `json:"device"`
	Registered bool          `json:"registered"`
	Site       string        `json:"site,omitempty"`
	Commune    string        `json:"commune,omitempty"`
	EPCI       string        `json:"epci,omitempty"`
	Fluid      hv.Fluid      `json:"fluid,omitempty"`
	LastSeen   *time.Time    `json:"last_seen"`
	Readings   []readingView `json:"readings"`
}

func (s *Server) latest(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	d, st, registered := s.reg().Device(id)
	readings, heard := s.deps.Live.Latest(id)
	// Outside the scope answers exactly like an unknown id: a pilot cannot probe other EPCIs' fleets.
	visible := registered && scopeOf(p).has(st.EPCI) || !registered && heard && seesUnregistered(p)
	if !visible {
		writeError(w, http.StatusNotFound, fmt.Sprintf("device %q not found", id))
		return
	}
	v := latestView{Device: id, Registered: registered, LastSeen: millisTime(s.deps.Live.LastSeen(id)),
		Readings: make([]readingView, 0, len(readings))}
	if registered {
		v.Site, v.Commune, v.EPCI, v.Fluid = st.ID, st.Commune, st.EPCI, d.Fluid
	}
	for _, rd := range readings {
		v.Readings = append(v.Readings, readingView{Metric: rd.Metric, Value: rd.Value, Unit: rd.Metric.Unit(),
			Time: rd.Timestamp().Format(rfc3339Milli)})
	}
	writeJSON(w, http.StatusOK, v)
}

// seriesParams are the query parameters /api/v1/series accepts; any other is a 400, so a typo
// (metrics=, devices=) is not silently ignored.
var seriesParams = []string{"device", "site", "commune", "epci", "fluid", "metric", "from", "to", "every", "agg"}

// httpError carries a status with the message; handlers write it as is.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func (s *Server) series(w http.ResponseWriter, r *http.Request, p Principal) {
	reg := s.reg()
	qs, metrics, err := s.seriesQuery(r.URL.Query(), reg, p, MaxPoints)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			writeError(w, he.status, he.msg)
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	sc := scopeOf(p)
	out := []hv.Series{}
	points := 0
	for _, m := range metrics {
		q := qs
		q.Metric = m
		res, err := s.deps.Store.Query(ctx, q)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		for _, sr := range res {
			if !seriesVisible(reg, sc, p, sr) {
				continue
			}
			if sr.Unit == "" {
				sr.Unit = sr.Metric.Unit()
			}
			if sr.Points == nil {
				sr.Points = []hv.Point{}
			}
			points += len(sr.Points)
			if points > MaxPoints {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("every: too many points (more than %d): use a larger every or a shorter range", MaxPoints))
				return
			}
			out = append(out, sr)
		}
	}
	resp := map[string]any{
		"from":   time.UnixMilli(qs.From).UTC().Format(rfc3339Milli),
		"to":     time.UnixMilli(qs.To).UTC().Format(rfc3339Milli),
		"series": out,
	}
	if qs.Every > 0 {
		resp["every"] = formatDuration(time.Duration(qs.Every) * time.Millisecond)
		agg := qs.Agg
		if agg == hv.AggNone {
			agg = hv.AggMean
		}
		resp["agg"] = agg
	}
	writeJSON(w, http.StatusOK, resp)
}

// seriesVisible is the defence in depth of series answers: the EPCI filter was forced, but a series that
// still falls outside the scope (or belongs to an unregistered device the caller may not see) is dropped,
// never sent.
func seriesVisible(reg *registry.Registry, sc scope, p Principal, sr hv.Series) bool {
	if !sc.has(sr.EPCI) {
		return false
	}
	if !seesUnregistered(p) {
		if _, _, ok := reg.Device(sr.Device); !ok {
			return false
		}
	}
	return true
}

// seriesQuery parses and checks the parameters, and narrows the query to the principal's scope; more than
// maxWindows windows per series is a 400.
func (s *Server) seriesQuery(v url.Values, reg *registry.Registry, p Principal, maxWindows int64) (hv.Query, []hv.Metric, error) {
	var q hv.Query
	for k := range v {
		if !slices.Contains(seriesParams, k) {
			return q, nil, badRequest("%s: unknown parameter (want %s)", k, strings.Join(seriesParams, ", "))
		}
	}
	f, err := parseFilters(v, reg.Territory(), "device", "site", "commune", "epci", "fluid", "metric")
	if err != nil {
		return q, nil, err
	}
	if len(f["metric"]) == 0 {
		return q, nil, badRequest("metric: required, e.g. metric=energy_kwh_delta")
	}
	if len(f["metric"]) > maxMetrics {
		return q, nil, badRequest("metric: at most %d metrics per request", maxMetrics)
	}
	metrics := make([]hv.Metric, len(f["metric"]))
	for i, m := range f["metric"] {
		metrics[i] = hv.Metric(m)
	}
	now := s.now()
	to, err := parseTime(v.Get("to"), "to", now)
	if err != nil {
		return q, nil, err
	}
	from, err := parseTime(v.Get("from"), "from", to.Add(-24*time.Hour))
	if err != nil {
		return q, nil, err
	}
	if !to.After(from) {
		return q, nil, badRequest("to: must be after from")
	}
	q.From, q.To = from.UnixMilli(), to.UnixMilli()
	if e := v.Get("every"); e != "" && e != "0" {
		d, err := time.ParseDuration(e)
		switch {
		case err != nil:
			return q, nil, badRequest("every: %q is not a duration like 15m or 1h", e)
		case d < time.Second:
			return q, nil, badRequest("every: must be at least 1s")
		case d%time.Millisecond != 0:
			return q, nil, badRequest("every: must be a whole number of milliseconds")
		}
		q.Every = d.Milliseconds()
		if n := (q.To - q.From) / q.Every; n > maxWindows {
			return q, nil, badRequest("every: %d windows per series is more than %d: use a larger every or a shorter range", n, maxWindows)
		}
	}
	agg, err := hv.ParseAgg(v.Get("agg"))
	if err != nil {
		return q, nil, badRequest("agg: %q is not one of mean, sum, min, max, last, count, increase", v.Get("agg"))
	}
	if agg != hv.AggNone && q.Every == 0 {
		return q, nil, badRequest("agg: needs every (the window to aggregate over)")
	}
	q.Agg = agg
	for _, fl := range f["fluid"] {
		q.Fluids = append(q.Fluids, hv.Fluid(fl))
	}
	q.Devices, q.Sites, q.Communes, q.EPCIs = f["device"], f["site"], f["commune"], f["epci"]

	sc := scopeOf(p)
	if !seesUnregistered(p) {
		// Data of devices or sites the caller may not see answers like data of unknown ones: 404.
		for _, id := range q.Devices {
			if _, st, ok := reg.Device(id); !ok || !sc.has(st.EPCI) {
				return q, nil, &httpError{http.StatusNotFound, fmt.Sprintf("device %q not found", id)}
			}
		}
		for _, id := range q.Sites {
			if st, ok := reg.Site(id); !ok || !sc.has(st.EPCI) {
				return q, nil, &httpError{http.StatusNotFound, fmt.Sprintf("site %q not found", id)}
			}
		}
	}
	if !sc.all {
		// The territory is public, so naming another EPCI's commune is a plain 403, not a secret.
		for _, c := range q.Communes {
			if com, _ := reg.Territory().Commune(c); !sc.has(com.EPCI) {
				return q, nil, &httpError{http.StatusForbidden, fmt.Sprintf("commune: %s is outside your scope", c)}
			}
		}
		for _, e := range q.EPCIs {
			if !sc.has(e) {
				return q, nil, &httpError{http.StatusForbidden, fmt.Sprintf("epci: %s is outside your scope", e)}
			}
		}
		if len(q.EPCIs) == 0 {
			q.EPCIs = slices.Clone(sc.epcis)
		}
		if len(q.EPCIs) == 0 {
			return q, nil, &httpError{http.StatusForbidden, "no EPCI in your scope"}
		}
	}
	for i := range metrics {
		q.Metric = metrics[i]
		if err := q.Validate(); err != nil {
			return q, nil, badRequest("%v", err)
		}
	}
	q.Metric = ""
	return q, metrics, nil
}

func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, hv.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, hv.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("store query", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable, retry later")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		s.log.Error("store query", "path", r.URL.Path, "query", r.URL.RawQuery, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// parseFilters reads repeated or comma-separated list parameters and checks the values it can: communes
// and EPCI against the territory, fluids, metrics and kinds against the domain.
func parseFilters(v url.Values, t *registry.Territory, names ...string) (map[string][]string, error) {
	out := make(map[string][]string, len(names))
	for _, name := range names {
		var list []string
		for _, raw := range v[name] {
			for _, x := range strings.Split(raw, ",") {
				if x = strings.TrimSpace(x); x != "" && !slices.Contains(list, x) {
					list = append(list, x)
				}
			}
		}
		if len(list) > maxParamValues {
			return nil, badRequest("%s: too many values (at most %d)", name, maxParamValues)
		}
		for _, x := range list {
			if err := checkValue(name, x, t); err != nil {
				return nil, err
			}
		}
		out[name] = list
	}
	return out, nil
}

func checkValue(name, x string, t *registry.Territory) error {
	switch name {
	case "commune":
		if _, ok := t.Commune(x); !ok {
			return badRequest("commune: %q is not an INSEE code of the territory", x)
		}
	case "epci":
		if _, ok := t.EPCI(x); !ok {
			return badRequest("epci: %q is not an EPCI of the territory", x)
		}
	case "fluid":
		if !hv.Fluid(x).Valid() {
			return badRequest("fluid: %q is not one of electricity, gas, water, heat, weather", x)
		}
	case "metric":
		if !hv.Metric(x).Known() {
			return badRequest("metric: %q is not a canonical metric", x)
		}
	}
	return nil
}

// parseTime reads RFC 3339 or Unix milliseconds; empty gives def.
func parseTime(s, name string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("%s: %q is neither RFC 3339 (2025-01-15T08:00:00Z) nor Unix milliseconds", name, s)
	}
	return t, nil
}

// formatDuration writes 15m and 1h rather than Go's 15m0s and 1h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func millisTime(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

func in(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }
