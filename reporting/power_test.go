package reporting_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

const powerRegistry = `
sites:
  - {id: ecole, name: "École", kind: building, usage: école, commune: "02408", subscribed_kva: 12}
  - {id: mairie, name: "Mairie", kind: building, usage: mairie, commune: "02408", subscribed_kva: 36}
devices:
  - {id: elec-ecole, site: ecole, kind: meter, fluid: electricity}
  - {id: elec-mairie, site: mairie, kind: meter, fluid: electricity}
`

// powerFixture: January 2025, a reading every 10 minutes: the school draws 2 kW but 13 kW from 08:00 to
// 08:10 on the 15th (over its 12 kVA); the town hall draws 5 kW all month (14 % of its 36 kVA).
func powerFixture(t *testing.T) *reporting.Analytics {
	t.Helper()
	reg := loadRegistry(t, powerRegistry)
	st := openStore(t)
	var rs []hv.Reading
	spike := paris(2025, 1, 15, 8, 0)
	for at := paris(2025, 1, 1, 0, 0); at.Before(paris(2025, 2, 1, 0, 0)); at = at.Add(10 * time.Minute) {
		school := 2000.0
		if at.Equal(spike) {
			school = 13000
		}
		rs = append(rs, reading(t, reg, "elec-ecole", hv.PowerW, at, school), reading(t, reg, "elec-mairie", hv.PowerW, at, 5000))
	}
	write(t, st, rs)
	cfg := reporting.DefaultConfig()
	cfg.Since = paris(2025, 1, 1, 0, 0)
	cfg.Now = func() time.Time { return paris(2025, 2, 2, 0, 0) }
	r := reporting.NewRollups(st, cfg, nil)
	if err := r.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	return reporting.NewAnalytics(st, r, func() *registry.Registry { return reg }, cfg)
}

func TestSubscriptionAdvice(t *testing.T) {
	an := powerFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		site, advice string
		kva, maxW    float64
	}{
		{"ecole", "augmenter", 15, 13000}, // 13 kW × 1.1 = 14.3 kVA → 15
		{"mairie", "réduire", 6, 5000},    // 5 kW × 1.1 = 5.5 kVA → 6
	} {
		adv, err := an.Subscription(ctx, c.site, 2025)
		if err != nil {
			t.Fatal(err)
		}
		if adv.Advice != c.advice || adv.Recommended != c.kva || len(adv.Months) != 1 || adv.Months[0].MaxW != c.maxW {
			t.Errorf("%s: %+v, want %s to %g kVA, January peak %g W", c.site, adv, c.advice, c.kva, c.maxW)
		}
	}
	if adv, _ := an.Subscription(ctx, "ecole", 2025); !adv.Months[0].At.Equal(paris(2025, 1, 15, 8, 0)) || math.Abs(adv.Months[0].Share-13.0/12) > 1e-9 {
		t.Errorf("school's peak at %s, share %v; want 15/01 08:00, 13/12", adv.Months[0].At, adv.Months[0].Share)
	}
	if _, err := an.Subscription(ctx, "nope", 2025); !errors.Is(err, reporting.ErrUnknownSite) {
		t.Errorf("unknown site: %v", err)
	}
}

func TestLoadCurveAndCoincidentPeak(t *testing.T) {
	an := powerFixture(t)
	ctx := context.Background()
	day := paris(2025, 1, 15, 0, 0)
	c, err := an.Load(ctx, "ecole", day, day.AddDate(0, 0, 1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Hourly means: 08:00 holds one 13 kW and five 2 kW readings.
	if len(c.Points) != 24 || math.Abs(c.Duration[0]-(13000+5*2000)/6.0) > 1e-6 || c.Duration[23] != 2000 {
		t.Fatalf("load curve %d points, duration %v", len(c.Points), c.Duration)
	}
	cp, err := an.Coincident(ctx, "200043495", day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	peak := (13000+5*2000)/6.0 + 5000
	if !cp.At.Equal(paris(2025, 1, 15, 8, 0)) || math.Abs(cp.W-peak) > 1e-6 || len(cp.Sites) != 2 || cp.Sites[0].Site != "mairie" ||
		math.Abs(cp.SumOfPeaks-peak) > 1e-6 {
		t.Errorf("coincident peak %+v, want %v W at 08:00, town hall first", cp, peak)
	}
	for _, c := range []struct{ in, want float64 }{{0.5, 3}, {3, 3}, {3.1, 6}, {14.3, 15}, {36, 36}, {36.2, 37}, {120.4, 121}} {
		if got := reporting.RecommendKVA(c.in); got != c.want {
			t.Errorf("RecommendKVA(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
