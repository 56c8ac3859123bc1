package dashboard

import (
	"context"
	"net/http"

	"github.com/useda02/hyperviseur/reporting"
)

// tertiaireRequest reads the parameters of the décret tertiaire routes: epci (repeatable, within the
// caller's EPCIs; none: all of them) and site (one building; 404 outside the caller's scope).
func (s *Server) tertiaireRequest(r *http.Request, p Principal) (reporting.TertiaireRequest, error) {
	q := r.URL.Query()
	var req reporting.TertiaireRequest
	if id := q.Get("site"); id != "" {
		ok, err := s.scopeAllowed(p, "site:"+id)
		if err != nil {
			return req, err
		}
		if !ok {
			return req, &httpError{status: http.StatusNotFound, msg: "site: " + id + ": not found"}
		}
		req.Site = id
	}
	epcis, err := requestedEPCIs(q, p)
	req.EPCIs = epcis
	return req, err
}

// tertiaire answers /api/v1/tertiaire[?epci=][&site=]: the buildings subject to the décret tertiaire, each
// against its trajectory (JSON reporting.TertiaireReport).
func (s *Server) tertiaire(w http.ResponseWriter, r *http.Request, p Principal) {
	s.tertiaireReport(w, r, p, func(rep *reporting.TertiaireReport) { writeJSON(w, http.StatusOK, rep) })
}

// exportTertiaire answers /api/v1/exports/tertiaire: the same report as the trajectory CSV.
func (s *Server) exportTertiaire(w http.ResponseWriter, r *http.Request, p Principal) {
	s.tertiaireReport(w, r, p, func(rep *reporting.TertiaireReport) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="trajectoires-tertiaire.csv"`)
		if err := reporting.WriteTertiaire(w, rep); err != nil {
			s.log.Warn("tertiaire export cut short", "err", err)
		}
	})
}

// tertiaireReport computes the report a request asks for and hands it to write, or answers its error.
func (s *Server) tertiaireReport(w http.ResponseWriter, r *http.Request, p Principal, write func(*reporting.TertiaireReport)) {
	if !s.analyticsOn(w) {
		return
	}
	req, err := s.tertiaireRequest(r, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rep, err := s.deps.Consumption.Tertiaire(ctx, req)
	if err != nil {
		s.consumptionFail(w, err)
		return
	}
	write(rep)
}
