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
	"github.com/useda02/hyperviseur/reporting"
)

// scopeAllowed says whether p may ask for a reporting scope: site:<id>, commune:<INSEE>, epci:<SIREN> or
// departement. A scoped principal asks only inside its EPCIs (the département is several EPCIs: refused).
func (s *Server) scopeAllowed(p Principal, scope string) (bool, error) {
	sc := scopeOf(p)
	kind, id, _ := strings.Cut(scope, ":")
	reg := s.reg()
	switch kind {
	case "departement":
		return sc.all, nil
	case "epci":
		return sc.has(id), nil
	case "commune":
		c, ok := reg.Territory().Commune(id)
		if !ok {
			return false, badRequest("scope: %q is not an INSEE code of the territory", id)
		}
		return sc.has(c.EPCI), nil
	case "site":
		site, ok := reg.Site(id)
		if !ok {
			return false, &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("scope: site %q: not found", id)}
		}
		return sc.has(site.EPCI), nil
	}
	return false, badRequest("scope: want site:<id>, commune:<INSEE>, epci:<SIREN> or departement")
}

// analyticsOn answers 404 when the consumption analytics are off; true when they are on.
func (s *Server) analyticsOn(w http.ResponseWriter) bool {
	if s.deps.Consumption == nil {
		writeError(w, http.StatusNotFound, "consumption analytics are disabled")
		return false
	}
	return true
}

// queryYear reads the "year" parameter: a calendar year.
func queryYear(q url.Values) (int, error) {
	year, err := strconv.Atoi(q.Get("year"))
	if err != nil || year < 2000 || year > 2200 {
		return 0, badRequest("year: want a year, e.g. 2026")
	}
	return year, nil
}

// answer runs an analytics call under the query timeout and writes its answer, or its error.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, call func(context.Context) (any, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	v, err := call(ctx)
	if err != nil {
		s.consumptionFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// consumptionFail answers an error of the analytics: 503 while the rollups are being built.
func (s *Server) consumptionFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, hv.ErrUnavailable):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.fail(w, err)
	}
}

func parseDate(q string, v string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, badRequest("%s: want YYYY-MM-DD", q)
	}
	return t, nil
}

// consumption answers /api/v1/consumption?scope=&fluid=&usage=&from=&to=&every=&per=&climate=&yoy=.
func (s *Server) consumption(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) {
		return
	}
	req, err := s.consumptionRequest(r.URL.Query(), p)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.answer(w, r, func(ctx context.Context) (any, error) { return s.deps.Consumption.Consumption(ctx, req) })
}

// consumptionRequest reads the parameters of /api/v1/consumption (and of its exports) into a request the
// principal may ask: a scope outside its EPCIs is a 403.
func (s *Server) consumptionRequest(q url.Values, p Principal) (reporting.Request, error) {
	req := reporting.Request{Scope: q.Get("scope"), Usage: q.Get("usage")}
	if req.Scope == "" {
		req.Scope = "departement"
		if !scopeOf(p).all && len(p.EPCIs) == 1 {
			req.Scope = "epci:" + p.EPCIs[0]
		}
	}
	ok, err := s.scopeAllowed(p, req.Scope)
	if err != nil {
		return req, err
	}
	if !ok {
		return req, &httpError{http.StatusForbidden, "scope: outside your EPCIs"}
	}
	for _, f := range q["fluid"] {
		for _, x := range strings.Split(f, ",") {
			req.Fluids = append(req.Fluids, hv.Fluid(x))
		}
	}
	if req.From, err = parseDate("from", q.Get("from")); err != nil {
		return req, err
	}
	if req.To, err = parseDate("to", q.Get("to")); err != nil {
		return req, err
	}
	if req.Every, err = reporting.ParseEvery(q.Get("every")); err != nil {
		return req, err
	}
	if req.Per, err = reporting.ParsePer(q.Get("per")); err != nil {
		return req, err
	}
	req.Climate, req.YearOverYear = q.Get("climate") == "true", q.Get("yoy") == "true"
	return req, nil
}

// ranking answers /api/v1/consumption/ranking?epci=&fluid=&usage=&year=&per=m2&climate=true: the buildings
// from the most consuming down.
func (s *Server) ranking(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) {
		return
	}
	q := r.URL.Query()
	req := reporting.RankRequest{EPCI: q.Get("epci"), Fluid: hv.Fluid(q.Get("fluid")), Usage: q.Get("usage"), Climate: q.Get("climate") == "true"}
	sc := scopeOf(p)
	if req.EPCI == "" && !sc.all && len(p.EPCIs) == 1 {
		req.EPCI = p.EPCIs[0]
	}
	if (req.EPCI == "" && !sc.all) || (req.EPCI != "" && !sc.has(req.EPCI)) {
		writeError(w, http.StatusForbidden, "epci: outside your EPCIs")
		return
	}
	var err error
	if req.Year, err = queryYear(q); err != nil {
		s.fail(w, err)
		return
	}
	if req.Per, err = reporting.ParsePer(q.Get("per")); err != nil {
		s.fail(w, err)
		return
	}
	s.answer(w, r, func(ctx context.Context) (any, error) { return s.deps.Consumption.Rank(ctx, req) })
}

// requestedEPCIs reads the repeatable "epci" parameter of a report: each must be in the caller's scope
// (403); none means the caller's EPCIs (nil for the whole département).
func requestedEPCIs(q url.Values, p Principal) ([]string, error) {
	sc := scopeOf(p)
	epcis := q["epci"]
	for _, e := range epcis {
		if !sc.has(e) {
			return nil, &httpError{status: http.StatusForbidden, msg: "epci: " + e + " is outside your EPCIs"}
		}
	}
	if len(epcis) == 0 && !sc.all {
		if epcis = sc.epcis; len(epcis) == 0 {
			return nil, &httpError{status: http.StatusForbidden, msg: "no EPCI in your scope"}
		}
	}
	return epcis, nil
}

// exportOperat answers /api/v1/exports/operat?year=[&epci=]: the OPERAT preparation CSV of the caller's
// buildings subject to the décret tertiaire (a pilote: its EPCIs only).
func (s *Server) exportOperat(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) {
		return
	}
	q := r.URL.Query()
	year, err := queryYear(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	epcis, err := requestedEPCIs(q, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rows, err := s.deps.Consumption.OperatExport(ctx, year, epcis)
	if err != nil {
		s.consumptionFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="operat-%d.csv"`, year))
	if err := reporting.WriteOPERAT(w, year, rows); err != nil {
		s.log.Warn("operat export cut short", "err", err)
	}
}

// exportOpenData answers /api/v1/exports/opendata?year=: consumption per commune, month, sector and fluid
// (CSV, Licence Ouverte), the caller's EPCIs only.
func (s *Server) exportOpenData(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) {
		return
	}
	year, err := queryYear(r.URL.Query())
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rows, err := s.deps.Consumption.OpenData(ctx, year)
	if err != nil {
		s.consumptionFail(w, err)
		return
	}
	sc := scopeOf(p)
	rows = slices.DeleteFunc(rows, func(r reporting.OpenDataRow) bool { return !sc.has(r.EPCI) })
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="consommations-communes-%d.csv"`, year))
	if err := reporting.WriteOpenData(w, rows, openDataSource); err != nil {
		s.log.Warn("open data export cut short", "err", err)
	}
}

// openDataSource is the source line of the open-data export.
const openDataSource = "hyperviseur, syndicat d'énergie de l'Aisne"

// siteInScope answers 404 for a site outside p's scope (or unknown), like the rest of the API.
func (s *Server) siteInScope(w http.ResponseWriter, p Principal, id string) bool {
	site, ok := s.reg().Site(id)
	if !ok || !scopeOf(p).has(site.EPCI) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("site %q: not found", id))
		return false
	}
	return true
}

// dateRange reads from and to (YYYY-MM-DD, Paris; to required and included) into [from, to+1 day).
func dateRange(r *http.Request) (time.Time, time.Time, error) {
	if r.URL.Query().Get("to") == "" {
		return time.Time{}, time.Time{}, badRequest("to: want YYYY-MM-DD")
	}
	from, to, err := reportRange(r)
	return from, to.AddDate(0, 0, 1), err
}

// siteLoad answers /api/v1/power/sites/{id}?from=&to=&every=10m: the electric load curve and load-duration curve.
func (s *Server) siteLoad(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) || !s.siteInScope(w, p, r.PathValue("id")) {
		return
	}
	q := r.URL.Query()
	from, to, err := dateRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	every := 10 * time.Minute
	if v := q.Get("every"); v != "" {
		if every, err = time.ParseDuration(v); err != nil {
			writeError(w, http.StatusBadRequest, "every: want a duration, e.g. 10m or 1h")
			return
		}
	}
	s.answer(w, r, func(ctx context.Context) (any, error) {
		return s.deps.Consumption.Load(ctx, r.PathValue("id"), from, to, every)
	})
}

// siteSubscription answers /api/v1/power/sites/{id}/subscription?year=: monthly peaks against the subscribed
// power, and the advice.
func (s *Server) siteSubscription(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) || !s.siteInScope(w, p, r.PathValue("id")) {
		return
	}
	year, err := queryYear(r.URL.Query())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.answer(w, r, func(ctx context.Context) (any, error) {
		return s.deps.Consumption.Subscription(ctx, r.PathValue("id"), year)
	})
}

// coincidentPeak answers /api/v1/power/peaks?epci=&from=&to=: the hour an EPCI's buildings drew the most,
// and who drew it.
func (s *Server) coincidentPeak(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.analyticsOn(w) {
		return
	}
	q := r.URL.Query()
	epci := q.Get("epci")
	if _, ok := s.reg().Territory().EPCI(epci); !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("epci: %q is not an EPCI of the territory", epci))
		return
	}
	if !scopeOf(p).has(epci) {
		writeError(w, http.StatusForbidden, "epci: outside your EPCIs")
		return
	}
	from, to, err := dateRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.answer(w, r, func(ctx context.Context) (any, error) { return s.deps.Consumption.Coincident(ctx, epci, from, to) })
}
