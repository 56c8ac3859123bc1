package dashboard

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/rules"
)

// sunTimes answers /api/v1/lighting/sun: sunrise, sunset and civil twilight at a commune's centroid. They are
// astronomy, not an EPCI's data, so every role may ask for any commune.
func (s *Server) sunTimes(w http.ResponseWriter, r *http.Request, _ Principal) {
	q := r.URL.Query()
	code := q.Get("commune")
	c, ok := s.reg().Territory().Commune(code)
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("commune: %q is not an INSEE code of the territory", code))
		return
	}
	days := 1
	if v := q.Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "days: want a whole number")
			return
		}
		days = n
	}
	from, days, err := sun.ParseRange(q.Get("from"), days, s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := make([]sun.DayJSON, 0, days)
	for _, d := range sun.Range(from, days, c.Lat, c.Lon, sun.Paris()) {
		out = append(out, d.JSON())
	}
	writeJSON(w, http.StatusOK, map[string]any{"commune": c.Code, "nom": c.Name, "lat": c.Lat, "lon": c.Lon, "days": out})
}

// lightingFail answers an error of the lighting service with its status.
func (s *Server) lightingFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, lighting.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, lighting.ErrForbidden):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, lighting.ErrInvalid), errors.Is(err, hv.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.fail(w, err)
	}
}

// lightingOn answers 404 when lighting control is off; true when it is on.
func (s *Server) lightingOn(w http.ResponseWriter) bool {
	if s.deps.Lighting == nil {
		writeError(w, http.StatusNotFound, "lighting control is disabled")
		return false
	}
	return true
}

// inScope is the principal's device filter for the lighting service.
func inScope(p Principal) func(hv.Device, hv.Site) bool {
	sc := scopeOf(p)
	return func(_ hv.Device, site hv.Site) bool { return sc.has(site.EPCI) }
}

// groupView is a group with the live summary of its controllers in the caller's scope.
type groupView struct {
	lighting.Group
	Controllers int      `json:"controllers"`
	On          int      `json:"on"`      // reported level > 0
	Dimmed      int      `json:"dimmed"`  // 0 < reported level < 100
	Off         int      `json:"off"`     // reported level 0
	Unknown     int      `json:"unknown"` // nothing reported yet
	Mismatch    int      `json:"mismatch"`
	PowerW      float64  `json:"power_w"`
	Tonight     *nightJS `json:"tonight,omitempty"`
}

// nightJS is a resolved night for the API, with its sun times.
type nightJS struct {
	lighting.Night
	Sunset  time.Time `json:"sunset"`
	Sunrise time.Time `json:"sunrise"`
	Dusk    time.Time `json:"dusk"`
	Dawn    time.Time `json:"dawn"`
}

func nightView(n lighting.Night) *nightJS {
	return &nightJS{Night: n, Sunset: n.Sun.Sunset, Sunrise: n.SunNext.Sunrise, Dusk: n.Sun.Dusk, Dawn: n.SunNext.Dawn}
}

func (s *Server) lightingGroups(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	l := s.deps.Lighting
	byGroup := map[string]*groupView{}
	plan := l.Plan()
	var out []*groupView
	for _, g := range plan.Groups {
		v := &groupView{Group: g}
		byGroup[g.Name] = v
		out = append(out, v)
	}
	for _, st := range l.State(inScope(p), false) {
		v := byGroup[st.Group]
		if v == nil {
			continue
		}
		v.Controllers++
		switch {
		case st.Reported == nil:
			v.Unknown++
		case *st.Reported <= 0:
			v.Off++
		case *st.Reported < 100:
			v.Dimmed++
			v.On++
		default:
			v.On++
		}
		if st.Reported != nil && st.Commanded != nil && math.Abs(*st.Reported-*st.Commanded) > 5 {
			v.Mismatch++
		}
		if st.PowerW != nil {
			v.PowerW += *st.PowerW
		}
	}
	// A pilote sees only the groups that hold controllers of its EPCIs.
	keep := out[:0]
	for _, v := range out {
		if v.Controllers > 0 || scopeOf(p).all {
			keep = append(keep, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": keep})
}

func (s *Server) lightingGroup(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	name := r.PathValue("name")
	l := s.deps.Lighting
	i := slices.IndexFunc(l.Plan().Groups, func(g lighting.Group) bool { return g.Name == name })
	scoped := inScope(p)
	var devs []lighting.DeviceState
	for _, st := range l.State(scoped, false) {
		if st.Group == name {
			devs = append(devs, st)
		}
	}
	if i < 0 || (len(devs) == 0 && !scopeOf(p).all) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("group %q: not found", name))
		return
	}
	g := l.Plan().Groups[i]
	resp := map[string]any{"group": g, "controllers": devs}
	if len(devs) > 0 { // tonight at the first controller's cabinet
		if d, site, ok := s.reg().Device(devs[0].Device); ok {
			if _, _, nights, err := l.ProgramFor(d, site, lighting.NightOf(s.now())); err == nil {
				resp["tonight"] = nightView(nights[0])
			}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// lightingDevice is a controller's page: live state, program pushed, tonight's timeline, commands.
func (s *Server) lightingDevice(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	id := r.PathValue("id")
	d, site, ok := s.reg().Device(id)
	if !ok || d.Kind != hv.DeviceLightingController || !scopeOf(p).has(site.EPCI) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("controller %q: not found", id))
		return
	}
	l := s.deps.Lighting
	states := l.State(func(dd hv.Device, _ hv.Site) bool { return dd.ID == id }, true)
	resp := map[string]any{"state": states[0]}
	if _, _, nights, err := l.ProgramFor(d, site, lighting.NightOf(s.now())); err == nil {
		resp["tonight"] = nightView(nights[0])
	}
	writeJSON(w, http.StatusOK, resp)
}

// programView is a program definition for the API, durations as Go duration strings ("5m").
type programView struct {
	Name       string        `json:"name"`
	Label      string        `json:"label,omitempty"`
	Extinction bool          `json:"extinction,omitempty"`
	Start      eventView     `json:"start"`
	End        eventView     `json:"end"`
	Level      float64       `json:"level"`
	Steps      []stepView    `json:"steps,omitempty"`
	Ramp       string        `json:"ramp,omitempty"`
	Presence   *presenceView `json:"presence,omitempty"`
	Lux        *luxView      `json:"lux,omitempty"`
	UsedBy     []string      `json:"used_by,omitempty"`
}

type eventView struct {
	Sun    string `json:"sun,omitempty"`
	Offset string `json:"offset,omitempty"`
	At     string `json:"at,omitempty"`
}

type stepView struct {
	At    eventView `json:"at"`
	Level float64   `json:"level"`
}

type presenceView struct {
	Level float64 `json:"level"`
	Hold  string  `json:"hold"`
}

type luxView struct {
	Below  float64 `json:"below"`
	Level  float64 `json:"level,omitempty"`
	Window string  `json:"window,omitempty"`
}

func dur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func evView(e lighting.Event) eventView {
	return eventView{Sun: e.Sun, Offset: dur(e.Offset), At: e.At}
}

func viewProgram(def lighting.ProgramDef, plan *lighting.Plan) programView {
	v := programView{Name: def.Name, Label: def.Label, Extinction: def.Extinction, Start: evView(def.Start), End: evView(def.End),
		Level: def.Level, Ramp: dur(def.Ramp)}
	for _, st := range def.Steps {
		v.Steps = append(v.Steps, stepView{At: evView(st.At), Level: st.Level})
	}
	if pr := def.Presence; pr != nil {
		v.Presence = &presenceView{Level: pr.Level, Hold: dur(pr.Hold)}
	}
	if lx := def.Lux; lx != nil {
		v.Lux = &luxView{Below: lx.Below, Level: lx.Level, Window: dur(lx.Window)}
	}
	for _, c := range plan.Calendars {
		if c.Default == def.Name || slices.ContainsFunc(c.Rules, func(r lighting.CalendarRule) bool { return r.Program == def.Name }) {
			v.UsedBy = append(v.UsedBy, "calendrier "+c.Name)
		}
	}
	for _, g := range plan.Groups {
		if g.Program == def.Name {
			v.UsedBy = append(v.UsedBy, "groupe "+g.Name)
		}
	}
	return v
}

func (s *Server) lightingPrograms(w http.ResponseWriter, _ *http.Request, _ Principal) {
	if !s.lightingOn(w) {
		return
	}
	plan := s.deps.Lighting.Plan()
	out := make([]programView, 0, len(plan.Programs))
	for _, def := range plan.Programs {
		out = append(out, viewProgram(def, plan))
	}
	writeJSON(w, http.StatusOK, map[string]any{"programs": out, "calendars": plan.Calendars})
}

func (s *Server) lightingProgram(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !s.lightingOn(w) {
		return
	}
	plan := s.deps.Lighting.Plan()
	def, ok := plan.Program(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("program %q: not found", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, viewProgram(def, plan))
}

// putProgram adds or replaces a program. The body is the program as in the plan's YAML, in JSON (or YAML):
// durations as "5m"; it is validated against the whole plan before it replaces anything.
func (s *Server) putProgram(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, http.StatusBadRequest, "body: unreadable or larger than 64 KiB")
		return
	}
	def, err := lighting.ParseProgramDef("body", body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if def.Name != r.PathValue("name") {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("name: %q does not match the path's %q", def.Name, r.PathValue("name")))
		return
	}
	if err := s.deps.Lighting.SetProgram(r.Context(), def, p.Name); err != nil {
		s.lightingFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewProgram(def, s.deps.Lighting.Plan()))
}

func (s *Server) deleteProgram(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	if _, ok := s.deps.Lighting.Plan().Program(r.PathValue("name")); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("program %q: not found", r.PathValue("name")))
		return
	}
	if err := s.deps.Lighting.DeleteProgram(r.Context(), r.PathValue("name"), p.Name); err != nil {
		s.lightingFail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// previewProgram resolves a program for a night at a commune: the timeline a controller there would get.
func (s *Server) previewProgram(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !s.lightingOn(w) {
		return
	}
	plan := s.deps.Lighting.Plan()
	name := r.PathValue("name")
	if _, ok := plan.Program(name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("program %q: not found", name))
		return
	}
	q := r.URL.Query()
	c, ok := s.reg().Territory().Commune(q.Get("commune"))
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("commune: %q is not an INSEE code of the territory", q.Get("commune")))
		return
	}
	date := lighting.NightOf(s.now())
	if v := q.Get("date"); v != "" {
		d, err := time.ParseInLocation(time.DateOnly, v, sun.Paris())
		if err != nil {
			writeError(w, http.StatusBadRequest, "date: want YYYY-MM-DD")
			return
		}
		date = d
	}
	n, err := plan.Night(&lighting.Group{Name: "apercu", Program: name}, date, c.Lat, c.Lon)
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"commune": c.Code, "nom": c.Name, "night": nightView(n)})
}

func (s *Server) lightingOverrides(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	all, err := s.deps.Lighting.DB().Overrides(r.Context(), s.now().Add(-7*24*time.Hour), 500)
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	out := []lighting.Override{}
	for _, o := range all {
		if s.overrideVisible(o, p) {
			out = append(out, o)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"overrides": out})
}

// overrideVisible: a scoped principal sees an override when it sees at least one controller it targets.
func (s *Server) overrideVisible(o lighting.Override, p Principal) bool {
	if scopeOf(p).all {
		return true
	}
	group, device := o.Target, ""
	if o.TargetKind == "device" {
		group, device = "", o.Target
	}
	devs, err := s.deps.Lighting.Controllers(group, device)
	return err == nil && slices.ContainsFunc(devs, s.deviceAllowed(p))
}

// deviceAllowed says whether p may command a device.
func (s *Server) deviceAllowed(p Principal) func(hv.Device) bool {
	sc, reg := scopeOf(p), s.reg()
	return func(d hv.Device) bool { site, _ := reg.Site(d.Site); return sc.has(site.EPCI) }
}

func (s *Server) createOverride(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	var req lighting.OverrideRequest
	if err := decodeBody(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	o, cmds, err := s.deps.Lighting.CreateOverride(r.Context(), req, p.Name, s.deviceAllowed(p))
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"override": o, "commands": cmds})
}

func (s *Server) cancelOverride(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	if err := s.deps.Lighting.CancelOverride(r.Context(), r.PathValue("id"), p.Name, s.deviceAllowed(p)); err != nil {
		s.lightingFail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) lightingCommands(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	q := r.URL.Query()
	f := lighting.CommandFilter{Device: q.Get("device"), OverrideID: q.Get("override"), Limit: 500}
	if v := q.Get("state"); v != "" {
		f.States = strings.Split(v, ",")
	}
	if err := queryLimit(q, 5000, &f.Limit); err != nil {
		s.fail(w, err)
		return
	}
	all, err := s.deps.Lighting.DB().Commands(r.Context(), f)
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	sc, reg := scopeOf(p), s.reg()
	out := []lighting.Command{}
	for _, c := range all {
		if _, site, ok := reg.Device(c.Device); sc.all || ok && sc.has(site.EPCI) {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": out})
}

// lightingCommand is one command with its audit trail: every step from creation to outcome.
func (s *Server) lightingCommand(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	db := s.deps.Lighting.DB()
	c, err := db.Command(r.Context(), r.PathValue("id"))
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	if _, site, ok := s.reg().Device(c.Device); !scopeOf(p).all && (!ok || !scopeOf(p).has(site.EPCI)) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("command %s: not found", c.ID))
		return
	}
	trail, err := db.AuditLog(r.Context(), lighting.AuditFilter{Ref: c.ID, Limit: 1000})
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	slices.Reverse(trail)
	writeJSON(w, http.StatusOK, map[string]any{"command": c, "audit": trail})
}

// audit is the audit log (staff only): lighting commands, overrides, programs, work items.
func (s *Server) audit(w http.ResponseWriter, r *http.Request, _ Principal) {
	al := s.auditLog() // lighting's, or the one Deps.Audit shares with logins and user changes
	if al == nil {
		writeError(w, http.StatusNotFound, "audit log not enabled")
		return
	}
	q := r.URL.Query()
	f := lighting.AuditFilter{Target: q.Get("target"), Ref: q.Get("ref"), Actor: q.Get("actor"), ActionPrefix: q.Get("action")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since: want RFC 3339")
			return
		}
		f.Since = t
	}
	if err := queryLimit(q, 10000, &f.Limit); err != nil {
		s.fail(w, err)
		return
	}
	entries, err := al.AuditLog(r.Context(), f)
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	if entries == nil {
		entries = []lighting.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// workItem is a failed or suspect luminaire cabinet to visit: an alert open on a lighting controller or
// cabinet (lamp failure, day burner, dimming failure, silence), with where it is and its burning hours.
type workItem struct {
	ID             string          `json:"id"` // the alert's id
	Rule           string          `json:"rule"`
	Severity       hv.Severity     `json:"severity"`
	State          hv.AlertState   `json:"state"`
	Summary        string          `json:"summary"`
	Since          time.Time       `json:"since"`
	Device         string          `json:"device,omitempty"`
	Site           string          `json:"site"`
	SiteName       string          `json:"site_name"`
	Commune        string          `json:"commune"`
	CommuneName    string          `json:"commune_name"`
	EPCI           string          `json:"epci"`
	Lat            float64         `json:"lat"`
	Lon            float64         `json:"lon"`
	OperatingHours *float64        `json:"operating_hours,omitempty"`
	Evidence       *rules.Evidence `json:"evidence,omitempty"`
	Acknowledged   bool            `json:"acknowledged"`
}

// workList builds the work items in p's scope, optionally of one commune; closed items are left out until
// their alert fires again after the closing.
func (s *Server) workList(r *http.Request, p Principal, commune string) ([]workItem, error) {
	sc := scopeOf(p)
	f := rules.Filter{State: hv.AlertFiring, Limit: 10000}
	if !sc.all {
		f.EPCI = append([]string{}, sc.epcis...)
	}
	alerts, err := s.deps.Alerts.Alerts(r.Context(), f)
	if err != nil {
		return nil, err
	}
	closed, err := s.deps.Lighting.DB().ClosedWork(r.Context())
	if err != nil {
		return nil, err
	}
	reg := s.reg()
	out := []workItem{}
	for _, a := range alerts {
		var site hv.Site
		var dev hv.Device
		var ok bool
		if id := a.Labels["device"]; id != "" {
			dev, site, ok = reg.Device(id)
			ok = ok && dev.Kind == hv.DeviceLightingController
		} else if id := a.Labels["site"]; id != "" {
			site, ok = reg.Site(id)
			ok = ok && site.Kind == hv.SiteLightingCabinet
		}
		if !ok || !sc.has(site.EPCI) || (commune != "" && site.Commune != commune) {
			continue
		}
		if at, done := closed[a.Fingerprint]; done && !at.Before(a.ActiveAt) {
			continue
		}
		c, _ := reg.Territory().Commune(site.Commune)
		it := workItem{ID: a.Fingerprint, Rule: a.Rule, Severity: a.Severity, State: a.State, Summary: a.Summary, Since: a.ActiveAt,
			Device: dev.ID, Site: site.ID, SiteName: site.Name, Commune: site.Commune, CommuneName: c.Name, EPCI: site.EPCI,
			Lat: site.Lat, Lon: site.Lon, Acknowledged: a.Acknowledged != nil}
		if !a.Evidence.To.IsZero() {
			ev := a.Evidence
			it.Evidence = &ev
		}
		if dev.ID != "" {
			if latest, ok := s.deps.Live.Latest(dev.ID); ok {
				for _, rd := range latest {
					if rd.Metric == hv.OperatingHours {
						it.OperatingHours = ptrF(rd.Value)
					}
				}
			}
		}
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b workItem) int {
		return cmp.Or(cmp.Compare(a.Commune, b.Commune), cmp.Compare(a.Site, b.Site), a.Since.Compare(b.Since))
	})
	return out, nil
}

func ptrF(v float64) *float64 { return &v }

// maintenance is the work list: GET ?commune=&format=csv.
func (s *Server) maintenance(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "the rules engine is disabled: no work list")
		return
	}
	q := r.URL.Query()
	items, err := s.workList(r, p, q.Get("commune"))
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	if q.Get("format") != "csv" {
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="maintenance-eclairage.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "commune", "nom_commune", "site", "nom_site", "controleur", "regle", "gravite", "depuis", "resume",
		"latitude", "longitude", "heures_fonctionnement"})
	for _, it := range items {
		hours := ""
		if it.OperatingHours != nil {
			hours = strconv.FormatFloat(*it.OperatingHours, 'f', 1, 64)
		}
		cw.Write([]string{it.ID, it.Commune, it.CommuneName, it.Site, it.SiteName, it.Device, it.Rule, string(it.Severity),
			it.Since.UTC().Format(time.RFC3339), it.Summary, strconv.FormatFloat(it.Lat, 'f', 5, 64), strconv.FormatFloat(it.Lon, 'f', 5, 64), hours})
	}
	cw.Flush()
}

// closeWork closes a work item: recorded (who, when, comment) and audited. The alert itself is the rules
// engine's: it resolves when the condition clears; should it fire again, the item comes back.
func (s *Server) closeWork(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	if s.deps.Alerts == nil {
		writeError(w, http.StatusNotFound, "the rules engine is disabled: no work list")
		return
	}
	var body struct {
		Comment string `json:"comment"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	if body.Comment == "" || len(body.Comment) > 1000 {
		writeError(w, http.StatusBadRequest, "comment: 1 to 1000 characters: what was done")
		return
	}
	id := r.PathValue("id")
	items, err := s.workList(r, p, "")
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	i := slices.IndexFunc(items, func(it workItem) bool { return it.ID == id })
	if i < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("work item %s: not found (or already closed)", id))
		return
	}
	now := s.now()
	db := s.deps.Lighting.DB()
	if err := db.CloseWork(r.Context(), id, p.Name, body.Comment, now); err != nil {
		s.lightingFail(w, err)
		return
	}
	it := items[i]
	if err := db.Audit(r.Context(), lighting.AuditEntry{At: now, Actor: p.Name, Action: "workitem.close", Target: cmp.Or(it.Device, it.Site),
		Ref: id, Detail: it.Rule + " : " + body.Comment, Outcome: "clos"}); err != nil {
		s.lightingFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"closed": it, "by": p.Name, "at": now.UTC(), "comment": body.Comment})
}

// reportRange reads from and to (YYYY-MM-DD, Paris evenings; to defaults to from).
func reportRange(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	from, err := time.ParseInLocation(time.DateOnly, q.Get("from"), sun.Paris())
	if err != nil {
		return time.Time{}, time.Time{}, badRequest("from: want YYYY-MM-DD, the first night's evening")
	}
	to := from
	if v := q.Get("to"); v != "" {
		if to, err = time.ParseInLocation(time.DateOnly, v, sun.Paris()); err != nil {
			return time.Time{}, time.Time{}, badRequest("to: want YYYY-MM-DD, the last night's evening")
		}
	}
	return from, to, nil
}

// lightingSavings: per group and night, energy used against a full-power all-night schedule. A scoped
// principal's report only counts its EPCIs' controllers.
func (s *Server) lightingSavings(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	from, to, err := reportRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	plan, sc, only := s.deps.Lighting.Plan(), scopeOf(p), r.URL.Query().Get("group")
	groups := lighting.PlanGroups(plan)
	groupOf := func(d *hv.Device, site *hv.Site) string {
		if !sc.has(site.EPCI) {
			return ""
		}
		if g := groups(d, site); only == "" || g == only {
			return g
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	nights, err := lighting.Savings(ctx, s.deps.Store, s.reg(), groupOf, from, to, plan.TariffEURPerKWh)
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tariff_eur_kwh": plan.TariffEURPerKWh, "nights": nights})
}

// lightingCompliance: lighting out of the switch-off hours, per commune and night.
func (s *Server) lightingCompliance(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	from, to, err := reportRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rep, err := lighting.Compliance(ctx, s.deps.Store, s.reg(), s.deps.Lighting.Plan(), from, to)
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	sc, terr, commune := scopeOf(p), s.reg().Territory(), r.URL.Query().Get("commune")
	keep := func(code string) bool {
		c, _ := terr.Commune(code)
		return sc.has(c.EPCI) && (commune == "" || code == commune)
	}
	rep.Communes = slices.DeleteFunc(rep.Communes, func(c lighting.CommuneCompliance) bool { return !keep(c.Commune) })
	rep.Violations = slices.DeleteFunc(rep.Violations, func(v lighting.Violation) bool { return !keep(v.Commune) })
	rep.Unchecked = slices.DeleteFunc(rep.Unchecked, func(u lighting.Unchecked) bool { return !keep(u.Commune) })
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="conformite-eclairage.csv"`)
		if err := lighting.WriteViolationsCSV(w, rep.Violations); err != nil {
			s.log.Warn("compliance csv cut short", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// lightingLife: burning hours against rated life, per controller.
func (s *Server) lightingLife(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.lightingOn(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rows, err := lighting.LifePlan(ctx, s.deps.Store, s.reg(), lighting.SodiumSites(), s.now())
	if err != nil {
		s.lightingFail(w, err)
		return
	}
	sc, terr := scopeOf(p), s.reg().Territory()
	rows = slices.DeleteFunc(rows, func(l lighting.LifeRow) bool { c, _ := terr.Commune(l.Commune); return !sc.has(c.EPCI) })
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="duree-de-vie-eclairage.csv"`)
		if err := lighting.WriteLifeCSV(w, rows); err != nil {
			s.log.Warn("life csv cut short", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"controllers": rows})
}
