package reporting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Power questions about electricity: a site's load curve and load-duration curve, its monthly maximum power
// against its subscribed power (puissance souscrite) with a recommendation, and the coincident peak of an
// EPCI (which sites add up at its peak hour). Power is the sum over the site's electricity meters of their
// reported power_w, averaged per window (10 minutes by default, the meters' reporting interval).

// ErrUnknownSite marks a site the registry does not have.
var ErrUnknownSite = errors.New("no such site")

// StandardKVA are the subscribed powers of the regulated small-site offer (≤ 36 kVA, "tarif bleu"); above
// 36 kVA a site subscribes by the kVA.
var StandardKVA = []float64{3, 6, 9, 12, 15, 18, 24, 30, 36}

// PowerFactor turns a subscribed apparent power (kVA) into the active power it allows (kW). Meters report
// active power; 1 reads the subscription as a kW ceiling, which is how the Linky meter trips (on kVA, with
// most public buildings' loads near unity).
const PowerFactor = 1.0

// Point of a load curve, in W.
type PowerPoint struct {
	Time time.Time `json:"t"`
	W    float64   `json:"w"`
}

// LoadCurve is a site's total electric power over [from, to) in windows of every.
type LoadCurve struct {
	Site   string       `json:"site"`
	Every  string       `json:"every"`
	Points []PowerPoint `json:"points"`
	// Duration is the load-duration curve: the same values sorted from the highest down (W), one per window.
	Duration []float64 `json:"duration"`
}

// electricMeters are a site's electricity meters.
func (ix *regIndex) electricMeters(site string) []string {
	var out []string
	for _, d := range ix.devices {
		if d.Site == site && d.Fluid == hv.Electricity && d.Kind == hv.DeviceMeter {
			out = append(out, d.ID)
		}
	}
	return out
}

// siteLoad is the summed power of meters per window start (Unix ms).
func (a *Analytics) siteLoad(ctx context.Context, meters []string, from, to time.Time, every time.Duration) (map[int64]float64, error) {
	out := map[int64]float64{}
	if len(meters) == 0 {
		return out, nil
	}
	ss, err := a.store.Query(ctx, hv.Query{Metric: hv.PowerW, Devices: meters, From: from.UnixMilli(), To: to.UnixMilli(),
		Every: every.Milliseconds(), Agg: hv.AggMean})
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		for _, p := range s.Points {
			out[p.Time] += p.Value
		}
	}
	return out, nil
}

// Load returns a site's load curve and load-duration curve over [from, to) (at most MaxHourlyDays).
func (a *Analytics) Load(ctx context.Context, site string, from, to time.Time, every time.Duration) (*LoadCurve, error) {
	ix := a.index()
	if _, ok := ix.site[site]; !ok {
		return nil, fmt.Errorf("load curve: site %q: %w", site, ErrUnknownSite)
	}
	switch {
	case every < time.Minute || every > 24*time.Hour:
		return nil, fmt.Errorf("load curve: every %s: %w: want 1m to 24h", every, hv.ErrInvalid)
	case !to.After(from) || to.Sub(from) > time.Duration(a.cfg.MaxHourlyDays)*24*time.Hour:
		return nil, fmt.Errorf("load curve: %w: the range must be positive and at most %d days", hv.ErrInvalid, a.cfg.MaxHourlyDays)
	}
	load, err := a.siteLoad(ctx, ix.electricMeters(site), from, to, every)
	if err != nil {
		return nil, fmt.Errorf("load curve: %w", err)
	}
	c := &LoadCurve{Site: site, Every: every.String(), Points: []PowerPoint{}, Duration: []float64{}}
	for _, t := range slices.Sorted(maps.Keys(load)) {
		c.Points = append(c.Points, PowerPoint{Time: time.UnixMilli(t).In(a.loc), W: load[t]})
		c.Duration = append(c.Duration, load[t])
	}
	slices.SortFunc(c.Duration, func(x, y float64) int { return cmp.Compare(y, x) })
	return c, nil
}

// MonthPeak is a month's maximum power against the subscription.
type MonthPeak struct {
	Month string    `json:"month"` // YYYY-MM
	MaxW  float64   `json:"max_w"`
	At    time.Time `json:"at,omitzero"`
	Share float64   `json:"share"` // MaxW over the subscribed active power; 0 without a subscription
}

// SubscriptionAdvice is a year of monthly peaks and what to do with the subscription.
type SubscriptionAdvice struct {
	Site          string      `json:"site"`
	Year          int         `json:"year"`
	SubscribedKVA float64     `json:"subscribed_kva"`
	Months        []MonthPeak `json:"months"`
	// Advice is "augmenter", "réduire", "conserver" or "inconnu" (no subscription or no data); Recommended the
	// kVA to subscribe; Reason says why, in French.
	Advice      string  `json:"advice"`
	Recommended float64 `json:"recommended_kva,omitempty"`
	Reason      string  `json:"reason"`
}

// Thresholds of the advice: above 100 % of the subscription the meter trips or the overrun is billed; below
// 60 % of it every month, the fixed part of the bill pays for power never used.
const (
	overShare  = 1.0
	underShare = 0.6
	margin     = 1.1 // the recommended subscription keeps 10 % above the year's peak
)

// Subscription computes a site's monthly maximum power of year (10-minute means) against its subscribed
// power and advises: increase when a month went over it, reduce when every month stayed below 60 % of it
// (to the smallest standard power, or kVA above 36, holding the year's peak with 10 % margin), keep otherwise.
func (a *Analytics) Subscription(ctx context.Context, site string, year int) (*SubscriptionAdvice, error) {
	ix := a.index()
	i, ok := ix.site[site]
	if !ok {
		return nil, fmt.Errorf("subscription: site %q: %w", site, ErrUnknownSite)
	}
	s := ix.sites[i]
	adv := &SubscriptionAdvice{Site: site, Year: year, SubscribedKVA: s.SubscribedKVA, Months: []MonthPeak{}}
	meters := ix.electricMeters(site)
	subW := s.SubscribedKVA * PowerFactor * 1000
	var yearMax float64
	for m := time.January; m <= time.December; m++ {
		from := time.Date(year, m, 1, 0, 0, 0, 0, a.loc)
		load, err := a.siteLoad(ctx, meters, from, from.AddDate(0, 1, 0), 10*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("subscription: %w", err)
		}
		if len(load) == 0 {
			continue
		}
		mp := MonthPeak{Month: from.Format("2006-01")}
		for t, w := range load {
			if w > mp.MaxW || (w == mp.MaxW && time.UnixMilli(t).Before(mp.At)) {
				mp.MaxW, mp.At = w, time.UnixMilli(t).In(a.loc)
			}
		}
		if subW > 0 {
			mp.Share = mp.MaxW / subW
		}
		yearMax = math.Max(yearMax, mp.MaxW)
		adv.Months = append(adv.Months, mp)
	}
	need := RecommendKVA(yearMax * margin / 1000 / PowerFactor)
	switch {
	case len(adv.Months) == 0:
		adv.Advice, adv.Reason = "inconnu", "Aucune mesure de puissance sur l'année."
	case subW == 0:
		adv.Advice, adv.Recommended = "inconnu", need
		adv.Reason = fmt.Sprintf("Puissance souscrite inconnue ; la pointe de l'année (%.1f kW) demande %g kVA.", yearMax/1000, need)
	case slices.ContainsFunc(adv.Months, func(m MonthPeak) bool { return m.Share > overShare }):
		adv.Advice, adv.Recommended = "augmenter", need
		adv.Reason = fmt.Sprintf("La pointe de l'année (%.1f kW) dépasse la puissance souscrite (%g kVA) : dépassements facturés ou coupures.", yearMax/1000, s.SubscribedKVA)
	case !slices.ContainsFunc(adv.Months, func(m MonthPeak) bool { return m.Share >= underShare }) && need < s.SubscribedKVA:
		adv.Advice, adv.Recommended = "réduire", need
		adv.Reason = fmt.Sprintf("La pointe de l'année (%.1f kW) reste sous %.0f %% de la puissance souscrite (%g kVA) : la part fixe paie une puissance inutilisée.",
			yearMax/1000, underShare*100, s.SubscribedKVA)
	default:
		adv.Advice, adv.Recommended = "conserver", s.SubscribedKVA
		adv.Reason = fmt.Sprintf("La pointe de l'année (%.1f kW) utilise %.0f %% de la puissance souscrite.", yearMax/1000, 100*yearMax/subW)
	}
	return adv, nil
}

// RecommendKVA is the subscription that holds kva: the smallest standard power up to 36 kVA, the next whole
// kVA above.
func RecommendKVA(kva float64) float64 {
	for _, s := range StandardKVA {
		if kva <= s {
			return s
		}
	}
	return math.Ceil(kva)
}

// Contribution is one site's power at the coincident peak.
type Contribution struct {
	Site  string  `json:"site"`
	Name  string  `json:"name"`
	W     float64 `json:"w"`
	Share float64 `json:"share"` // of the peak
}

// CoincidentPeak is the hour an EPCI's buildings together drew the most electric power, and who drew it.
type CoincidentPeak struct {
	EPCI  string         `json:"epci"`
	At    time.Time      `json:"at"`
	W     float64        `json:"w"`
	Sites []Contribution `json:"sites"` // largest first
	// SumOfPeaks is the sum of each site's own hourly peak over the range: against W, how much the sites'
	// peaks do not coincide (diversity).
	SumOfPeaks float64 `json:"sum_of_peaks_w"`
}

// Coincident finds an EPCI's coincident peak over [from, to) in hourly means of its buildings' electricity.
func (a *Analytics) Coincident(ctx context.Context, epci string, from, to time.Time) (*CoincidentPeak, error) {
	if !to.After(from) || to.Sub(from) > time.Duration(a.cfg.MaxHourlyDays)*24*time.Hour {
		return nil, fmt.Errorf("coincident peak: %w: the range must be positive and at most %d days", hv.ErrInvalid, a.cfg.MaxHourlyDays)
	}
	ix := a.index()
	ss, err := a.store.Query(ctx, hv.Query{Metric: hv.PowerW, EPCIs: []string{epci}, Fluids: []hv.Fluid{hv.Electricity},
		From: from.UnixMilli(), To: to.UnixMilli(), Every: time.Hour.Milliseconds(), Agg: hv.AggMean})
	if err != nil {
		return nil, fmt.Errorf("coincident peak: %w", err)
	}
	total := map[int64]float64{}
	bySite := map[string]map[int64]float64{}
	for _, s := range ss {
		i, ok := ix.site[s.Site]
		if !ok || ix.sites[i].Kind != hv.SiteBuilding {
			continue
		}
		if bySite[s.Site] == nil {
			bySite[s.Site] = map[int64]float64{}
		}
		for _, p := range s.Points {
			total[p.Time] += p.Value
			bySite[s.Site][p.Time] += p.Value
		}
	}
	cp := &CoincidentPeak{EPCI: epci, Sites: []Contribution{}}
	var at int64
	for t, w := range total {
		if w > cp.W || (w == cp.W && t < at) {
			at, cp.W = t, w
		}
	}
	if cp.W == 0 {
		return cp, nil
	}
	cp.At = time.UnixMilli(at).In(a.loc)
	for site, load := range bySite {
		peak := 0.0
		for _, w := range load {
			peak = math.Max(peak, w)
		}
		cp.SumOfPeaks += peak
		if w := load[at]; w > 0 {
			cp.Sites = append(cp.Sites, Contribution{Site: site, Name: ix.sites[ix.site[site]].Name, W: w, Share: w / cp.W})
		}
	}
	slices.SortFunc(cp.Sites, func(x, y Contribution) int { return cmp.Or(cmp.Compare(y.W, x.W), cmp.Compare(x.Site, y.Site)) })
	return cp, nil
}
