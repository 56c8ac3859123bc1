package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/useda02/hyperviseur/reporting"
)

// bacsQuery reads site (required, in the caller's scope: 404 otherwise, like an unknown site) and the
// optional months from and to (YYYY-MM). ok is false when the answer is already written.
func (s *Server) bacsQuery(w http.ResponseWriter, r *http.Request, p Principal) (site string, from, to reporting.YearMonth, ok bool) {
	if s.deps.BACS == nil {
		writeError(w, http.StatusNotFound, "bacs reporting is disabled")
		return "", from, to, false
	}
	q := r.URL.Query()
	site = q.Get("site")
	if site == "" {
		writeError(w, http.StatusBadRequest, "site: required")
		return "", from, to, false
	}
	if !s.siteInScope(w, p, site) {
		return "", from, to, false
	}
	for name, m := range map[string]*reporting.YearMonth{"from": &from, "to": &to} {
		if v := q.Get(name); v != "" {
			if err := m.UnmarshalText([]byte(v)); err != nil {
				writeError(w, http.StatusBadRequest, name+": want YYYY-MM")
				return "", from, to, false
			}
		}
	}
	return site, from, to, true
}

// bacsFail answers an error of the BACS report: 404 for a site the registry lost meanwhile, else as the
// analytics do (503 while the rollups are built, 400 for a bad range).
func (s *Server) bacsFail(w http.ResponseWriter, err error) {
	if errors.Is(err, reporting.ErrNoSite) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	s.consumptionFail(w, err)
}

// bacs answers /api/v1/bacs?site=&from=YYYY-MM&to=YYYY-MM: the site's décret BACS report, each energy
// meter's months against the same month of the previous year, and the losses of efficiency found.
func (s *Server) bacs(w http.ResponseWriter, r *http.Request, p Principal) {
	site, from, to, ok := s.bacsQuery(w, r, p)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rep, err := s.deps.BACS.Site(ctx, site, from, to, s.now())
	if err != nil {
		s.bacsFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// exportBACS answers /api/v1/exports/bacs?site=&from=&to=: the same report as the manager's CSV (";",
// UTF-8 with BOM, one row per zone and month; see reporting.WriteBACS).
func (s *Server) exportBACS(w http.ResponseWriter, r *http.Request, p Principal) {
	site, from, to, ok := s.bacsQuery(w, r, p)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rep, err := s.deps.BACS.Site(ctx, site, from, to, s.now())
	if err != nil {
		s.bacsFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="bacs-%s-%s-%s.csv"`, rep.Site, rep.From, rep.To))
	if err := reporting.WriteBACS(w, rep.BACSReport); err != nil {
		s.log.Warn("bacs export cut short", "err", err)
	}
}
