package reporting

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TotalsCollector exposes, for Grafana users who scrape /metrics, each EPCI's consumption of the current
// calendar year per fluid, from the rollups: hyperviseur_consumption_year{epci,fluid,unit}. Answers are
// kept a minute, so a scrape storm never reaches the store; nothing is exported until the rollups are built.
type TotalsCollector struct {
	an   *Analytics
	desc *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

var _ prometheus.Collector = (*TotalsCollector)(nil)

// NewTotalsCollector returns the collector over the analytics.
func NewTotalsCollector(an *Analytics) *TotalsCollector {
	return &TotalsCollector{an: an, desc: prometheus.NewDesc("hyperviseur_consumption_year",
		"Consumption of the current calendar year (Europe/Paris) per EPCI and fluid, in unit (kWh, m3).",
		[]string{"epci", "fluid", "unit"}, nil)}
}

// Describe sends the one descriptor.
func (c *TotalsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends the totals, computed at most once a minute.
func (c *TotalsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.an.now()
	if c.at.IsZero() || now.Sub(c.at) >= time.Minute {
		if ms, ok := c.compute(now); ok {
			c.metrics, c.at = ms, now
		}
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *TotalsCollector) compute(now time.Time) ([]prometheus.Metric, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	local := now.In(c.an.loc)
	from := time.Date(local.Year(), 1, 1, 0, 0, 0, 0, c.an.loc)
	var out []prometheus.Metric
	for _, e := range c.an.index().reg.Territory().EPCIs() {
		resp, err := c.an.Consumption(ctx, Request{Scope: "epci:" + e.Code, From: from, To: local, Every: EveryYear})
		if err != nil {
			return nil, false // not ready, or the store is down: keep the last answer
		}
		for _, r := range resp.Rows {
			out = append(out, prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, r.Value, e.Code, string(r.Fluid), r.Unit))
		}
	}
	return out, true
}
