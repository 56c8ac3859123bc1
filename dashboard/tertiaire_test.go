package dashboard

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/reporting"
)

// TestTertiaireAPI: the trajectories of the caller's buildings subject to the décret tertiaire, scoped like
// the other reports: a pilote of Laon lists Laon's town hall, is refused Saint-Quentin's EPCI (403) and does
// not see its school (404); a building not subject is a bad request.
func TestTertiaireAPI(t *testing.T) {
	f := newConsumptionFixture(t, true)
	f.srv.deps.Consumption.SetReferences(reporting.References{"mairie-laon": {Site: "mairie-laon", Year: 2014,
		KWh: map[hv.Fluid]float64{hv.Electricity: 200000}, DJU: 2300}})
	get := func(who, path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens[who])
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, c := range []struct {
		who, query string
		want       int
	}{
		{"admin", "", 200},
		{"pilote", "", 200},
		{"lecteur", "?site=mairie-laon", 200},
		{"pilote", "?epci=" + epciSQ, 403},
		{"pilote", "?site=ecole-sq", 404},
		{"admin", "?site=ecole-sq", 400},
		{"admin", "?site=nowhere", 404},
	} {
		code, body := get(c.who, "/api/v1/tertiaire"+c.query)
		if code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.who, c.query, code, body, c.want)
			continue
		}
		if code != 200 {
			continue
		}
		var rep reporting.TertiaireReport
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		// Two days of data: the building is listed with its reference, no complete twelve months yet.
		if len(rep.Sites) != 1 || rep.Sites[0].Site != "mairie-laon" || rep.Sites[0].ReferenceYear != 2014 ||
			rep.Sites[0].Status != reporting.StatusNoData || rep.Sites[0].Trajectory == nil ||
			rep.Sites[0].Trajectory.Targets[0].KWh != 120000 {
			t.Errorf("%s %s: %s", c.who, c.query, body)
		}
	}
	code, body := get("pilote", "/api/v1/exports/tertiaire")
	if code != 200 || !strings.HasPrefix(body, "\ufeffidentifiant_site;nom;") || !strings.Contains(body, "mairie-laon;Mairie de Laon;02408;"+epciLaon+";1850;2014;200000;") {
		t.Errorf("CSV export: %d\n%s", code, body)
	}
}
