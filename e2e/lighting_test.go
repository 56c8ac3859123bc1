package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// send calls the API with a JSON body and decodes the JSON answer into v.
func (s *service) send(method, path string, body, v any) int {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.HTTP+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(out, v); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
	if resp.StatusCode >= 300 {
		s.t.Logf("%s %s: HTTP %d %s", method, path, resp.StatusCode, out)
	}
	return resp.StatusCode
}

// checkLighting: in the running demo, every controller of the fleet got its program through the broker and
// acknowledged it (the LoRaWAN ones through their simulated network servers), and an override reaches a
// controller and comes back acknowledged; the time it takes is logged.
func checkLighting(t *testing.T, svc *service) {
	t.Helper()
	var groups struct {
		Groups []struct {
			Name        string `json:"name"`
			Controllers int    `json:"controllers"`
		} `json:"groups"`
	}
	if code := svc.get("/api/v1/lighting/groups", nil, &groups); code != 200 {
		t.Fatalf("lighting groups: HTTP %d", code)
	}
	controllers := 0
	for _, g := range groups.Groups {
		controllers += g.Controllers
	}
	if controllers < 20 {
		t.Fatalf("%d controllers in the lighting groups, want the fleet's (%+v)", controllers, groups.Groups)
	}
	eventually(t, 90*time.Second, "every program acknowledged", func() (bool, string) {
		var audit struct {
			Entries []struct {
				Target  string `json:"target"`
				Outcome string `json:"outcome"`
			} `json:"entries"`
		}
		if code := svc.get("/api/v1/audit", url.Values{"action": {"program.ack"}, "limit": {"10000"}}, &audit); code != 200 {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		acked := map[string]bool{}
		for _, e := range audit.Entries {
			if e.Outcome == "acked" {
				acked[e.Target] = true
			}
		}
		return len(acked) == controllers, fmt.Sprintf("%d of %d controllers acknowledged their program", len(acked), controllers)
	})

	// A controller of Laon's group, whatever its format (a LoRaWAN one is named by its DevEUI).
	var laon struct {
		Controllers []struct {
			Device string `json:"device"`
		} `json:"controllers"`
	}
	if code := svc.get("/api/v1/lighting/groups/laon", nil, &laon); code != 200 || len(laon.Controllers) == 0 {
		t.Fatalf("group laon: HTTP %d, %d controllers", code, len(laon.Controllers))
	}
	device := laon.Controllers[0].Device
	var created struct {
		Commands []struct {
			ID string `json:"id"`
		} `json:"commands"`
	}
	if code := svc.send("POST", "/api/v1/lighting/overrides", map[string]any{"device": device, "level": 30,
		"until": time.Now().Add(20 * time.Minute), "reason": "essai de bout en bout"}, &created); code != 201 {
		t.Fatalf("override: HTTP %d", code)
	}
	id := created.Commands[0].ID
	// While the accelerated demo still replays the past day, the controller's newest report is old and the
	// command waits for it (queued); it goes out as soon as the controller is heard.
	var cmd struct {
		State string    `json:"state"`
		Sent  time.Time `json:"sent"`
		Acked time.Time `json:"acked"`
	}
	eventually(t, 90*time.Second, "the override acknowledged", func() (bool, string) {
		var got struct {
			Command json.RawMessage `json:"command"`
		}
		if code := svc.get("/api/v1/lighting/commands/"+id, nil, &got); code != 200 {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		_ = json.Unmarshal(got.Command, &cmd)
		return cmd.State == "acked" || cmd.State == "measured", "command " + cmd.State
	})
	t.Logf("override of %s acknowledged by the controller %s after it was sent (service → broker → controller → broker → service)",
		device, cmd.Acked.Sub(cmd.Sent).Round(time.Millisecond))
	var dev struct {
		State struct {
			Commanded *float64 `json:"commanded_level"`
			Source    string   `json:"source"`
		} `json:"state"`
	}
	if code := svc.get("/api/v1/lighting/devices/"+device, nil, &dev); code != 200 || dev.State.Commanded == nil ||
		*dev.State.Commanded != 30 || dev.State.Source != "dérogation" {
		t.Errorf("controller state after the override: HTTP %d %+v", code, dev.State)
	}
}
