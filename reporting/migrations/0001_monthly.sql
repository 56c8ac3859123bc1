-- Each device's monthly consumption (décret BACS: monthly data kept five years, longer than the store's raw
-- readings). One row per device, delta metric and civil month of Europe/Paris; a month re-read from the store
-- replaces its rows.
CREATE TABLE reporting_monthly (
    device     TEXT    NOT NULL,
    metric     TEXT    NOT NULL, -- energy_kwh_delta, volume_m3_delta, heat_kwh_delta
    month      TEXT    NOT NULL, -- YYYY-MM
    value      REAL    NOT NULL, -- the month's sum, in the metric's unit (kWh, m³)
    hours      INTEGER NOT NULL, -- distinct hours with a value
    updated_at INTEGER NOT NULL, -- Unix ms of the write
    PRIMARY KEY (device, metric, month)
) WITHOUT ROWID;

CREATE INDEX reporting_monthly_by_month ON reporting_monthly (metric, month);
