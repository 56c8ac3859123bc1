package dashboard

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/useda02/hyperviseur/lighting/sun"
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
