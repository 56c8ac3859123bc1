package dashboard

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSunTimes(t *testing.T) {
	f := newFixture(t)
	// A pilote of Laon may ask for Château-Thierry: sun times are astronomy, not another EPCI's data.
	code, body, _ := f.do(t, "GET", "/api/v1/lighting/sun?commune=02168&from=2027-03-27&days=3", "pilote")
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %v", code, body)
	}
	days, _ := body["days"].([]any)
	if len(days) != 3 || body["commune"] != "02168" {
		t.Fatalf("got %v", body)
	}
	for i, want := range []string{"2027-03-27", "2027-03-28", "2027-03-29"} {
		d := days[i].(map[string]any)
		var ts [4]time.Time
		for j, k := range []string{"dawn", "sunrise", "sunset", "dusk"} {
			tm, err := time.Parse(time.RFC3339, d[k].(string))
			if err != nil || !strings.HasSuffix(d[k].(string), "Z") {
				t.Fatalf("%s %s = %v: want RFC 3339 UTC", want, k, d[k])
			}
			ts[j] = tm
		}
		if d["date"] != want || !(ts[0].Before(ts[1]) && ts[1].Before(ts[2]) && ts[2].Before(ts[3])) {
			t.Errorf("day %v: want date %s and dawn < sunrise < sunset < dusk", d, want)
		}
		// Late March at 49° N: sunrise between 05:00 and 06:30 UTC, whatever the clock change of the 28th.
		if h := ts[1].Hour()*60 + ts[1].Minute(); h < 5*60 || h > 6*60+30 {
			t.Errorf("%s sunrise %s UTC is implausible for the Aisne", want, ts[1])
		}
	}
	for _, tt := range []struct{ target, want string }{
		{"/api/v1/lighting/sun?commune=75056", "commune"},
		{"/api/v1/lighting/sun?commune=02408&days=0", "days"},
		{"/api/v1/lighting/sun?commune=02408&days=x", "days"},
		{"/api/v1/lighting/sun?commune=02408&from=27/03/2027", "from"},
	} {
		code, body, _ := f.do(t, "GET", tt.target, "admin")
		if msg, _ := body["error"].(string); code != http.StatusBadRequest || !strings.HasPrefix(msg, tt.want) {
			t.Errorf("%s: HTTP %d %q, want 400 naming %s", tt.target, code, msg, tt.want)
		}
	}
	if code, _, _ := f.do(t, "GET", "/api/v1/lighting/sun?commune=02408", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous: HTTP %d, want 401", code)
	}
}
