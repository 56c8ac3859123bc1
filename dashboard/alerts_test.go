package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
)

// withAlerts gives the fixture a real alert manager (SQLite in a temp dir) holding one firing leak alert in
// Laon and one in Saint-Quentin.
func withAlerts(t *testing.T, f *fixture) (laon, sq string) {
	t.Helper()
	db, err := rules.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := rules.NewManager(context.Background(), db, nil, nil, nil, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := rules.RuleSpec{Name: "leak", Severity: hv.SeverityWarning}
	conds := []rules.Condition{
		{Labels: map[string]string{"device": "gaz-laon", "site": "mairie-laon", "epci": epciLaon}, Value: 0.4, Summary: "Fuite probable"},
		{Labels: map[string]string{"device": "elec-sq", "site": "ecole-sq", "epci": epciSQ}, Value: 0.3, Summary: "Fuite probable"},
	}
	if err := m.Update(context.Background(), now.Add(-time.Hour), spec, conds); err != nil {
		t.Fatal(err)
	}
	f.srv.deps.Alerts = m
	return rules.Fingerprint("leak", conds[0].Labels), rules.Fingerprint("leak", conds[1].Labels)
}

func (f *fixture) send(t *testing.T, method, target, who string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req := httptest.NewRequest(method, target, bytes.NewReader(b))
	f.authorize(req, who, f.tokens[who])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestAlertsAPI(t *testing.T) {
	f := newFixture(t)
	laon, sq := withAlerts(t, f)

	count := func(who, query string) int {
		t.Helper()
		code, body, _ := f.do(t, "GET", "/api/v1/alerts"+query, who)
		if code != 200 {
			t.Fatalf("%s GET alerts%s: %d %v", who, query, code, body)
		}
		return len(body["alerts"].([]any))
	}
	if n := count("admin", ""); n != 2 {
		t.Errorf("admin sees %d alerts, want 2", n)
	}
	if n := count("pilote", ""); n != 1 {
		t.Errorf("pilote of Laon sees %d alerts, want 1", n)
	}
	if n := count("admin", "?state=firing&epci="+epciSQ); n != 1 {
		t.Errorf("admin, firing in Saint-Quentin: %d, want 1", n)
	}
	if n := count("admin", "?state=resolved"); n != 0 {
		t.Errorf("%d resolved alerts, want 0", n)
	}
	for _, c := range []struct {
		method, target, who string
		body                any
		want                int
	}{
		{"GET", "/api/v1/alerts?epci=" + epciSQ, "pilote", nil, 403},
		{"GET", "/api/v1/alerts?state=burning", "admin", nil, 400},
		{"GET", "/api/v1/alerts?since=1", "admin", nil, 400},
		{"GET", "/api/v1/alerts/" + sq, "pilote", nil, 404}, // outside the scope: as unknown
		{"GET", "/api/v1/alerts/" + laon, "pilote", nil, 200},
		{"GET", "/api/v1/alerts/0000000000000000", "admin", nil, 404},
		{"POST", "/api/v1/alerts/" + laon + "/ack", "lecteur", map[string]string{"comment": "vu"}, 403},
		{"POST", "/api/v1/alerts/" + laon + "/ack", "pilote", map[string]string{"comment": "vu"}, 403},
		{"POST", "/api/v1/alerts/" + laon + "/ack", "technicien", map[string]any{"comment": "vu", "extra": 1}, 400},
		{"POST", "/api/v1/silences", "pilote", map[string]any{"matchers": map[string]string{"epci": epciLaon}, "to": now.Add(time.Hour)}, 403},
		{"POST", "/api/v1/silences", "technicien", map[string]any{"matchers": map[string]string{}, "to": now.Add(time.Hour)}, 400},
		{"GET", "/api/v1/rules", "admin", nil, 404}, // no engine in this fixture
	} {
		if code, body := f.send(t, c.method, c.target, c.who, c.body); code != c.want {
			t.Errorf("%s %s as %s: %d %v, want %d", c.method, c.target, c.who, code, body, c.want)
		}
	}

	code, body := f.send(t, "POST", "/api/v1/alerts/"+laon+"/ack", "technicien", map[string]string{"comment": "équipe envoyée"})
	ack, _ := body["acknowledged"].(map[string]any)
	if code != 200 || ack["by"] != "technicien" || ack["comment"] != "équipe envoyée" || body["state"] != "firing" {
		t.Fatalf("ack: %d %v", code, body)
	}
	code, body, _ = f.do(t, "GET", "/api/v1/alerts/"+laon, "pilote")
	if hist, _ := body["history"].([]any); code != 200 || len(hist) < 2 {
		t.Fatalf("alert with history: %d %v", code, body)
	}

	// A maintenance window on the school of Saint-Quentin: the alert is marked silenced; ending it early
	// lifts the mark.
	code, body = f.send(t, "POST", "/api/v1/silences", "technicien", map[string]any{
		"matchers": map[string]string{"site": "ecole-sq"}, "to": now.Add(2 * time.Hour), "comment": "travaux chaufferie"})
	if code != 201 || body["by"] != "technicien" {
		t.Fatalf("add silence: %d %v", code, body)
	}
	id := body["id"].(string)
	_, body, _ = f.do(t, "GET", "/api/v1/alerts/"+sq, "admin")
	if s, _ := body["silenced_by"].([]any); len(s) != 1 || s[0] != id {
		t.Fatalf("alert under silence %s: %v", id, body)
	}
	if code, body, _ := f.do(t, "GET", "/api/v1/silences", "pilote"); code != 200 || len(body["silences"].([]any)) != 0 {
		t.Errorf("pilote of Laon sees a silence without its EPCI: %v", body)
	}
	if code, _ := f.send(t, "DELETE", "/api/v1/silences/"+id, "lecteur", nil); code != http.StatusForbidden {
		t.Errorf("lecteur expires a silence: %d", code)
	}
	if code, body := f.send(t, "DELETE", "/api/v1/silences/"+id, "technicien", nil); code != http.StatusNoContent {
		t.Fatalf("expire: %d %v", code, body)
	}
	if _, body, _ = f.do(t, "GET", "/api/v1/alerts/"+sq, "admin"); body["silenced_by"] != nil {
		t.Fatalf("alert still silenced after the silence ended: %v", body)
	}
}

// TestAlertActionsAudited: acknowledging an alert, adding and ending a silence go to the audit log, with who,
// what and the comment.
func TestAlertActionsAudited(t *testing.T) {
	audit, err := lighting.OpenDB(filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	f := newFixtureWith(t, "testdata/registry.yaml", func(_ *registry.Registry, _ *live.State, d *Deps) { d.Audit = audit })
	laon, _ := withAlerts(t, f)
	if code, body := f.send(t, "POST", "/api/v1/alerts/"+laon+"/ack", "technicien", map[string]string{"comment": "équipe envoyée"}); code != 200 {
		t.Fatalf("ack: %d %v", code, body)
	}
	code, body := f.send(t, "POST", "/api/v1/silences", "admin", map[string]any{
		"matchers": map[string]string{"site": "ecole-sq"}, "to": now.Add(2 * time.Hour), "comment": "travaux"})
	if code != 201 {
		t.Fatalf("silence: %d %v", code, body)
	}
	id := body["id"].(string)
	if code, body := f.send(t, "DELETE", "/api/v1/silences/"+id, "admin", nil); code != http.StatusNoContent {
		t.Fatalf("expire: %d %v", code, body)
	}
	entries, err := audit.AuditLog(t.Context(), lighting.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]lighting.AuditEntry{}
	for _, e := range entries {
		got[e.Action] = e
	}
	if e := got["alert.ack"]; e.Actor != "technicien" || e.Target != laon || e.Detail != "équipe envoyée" {
		t.Errorf("alert.ack entry %+v", e)
	}
	if e := got["silence.add"]; e.Actor != "admin" || e.Target != id || !strings.Contains(e.Detail, "travaux") {
		t.Errorf("silence.add entry %+v", e)
	}
	if e := got["silence.expire"]; e.Actor != "admin" || e.Target != id {
		t.Errorf("silence.expire entry %+v", e)
	}
}
