-- Alerts of the rules engine: current state, history, acknowledgements, silences.
-- Times are Unix milliseconds, 0 when unset.

-- One row per alert (per fingerprint): the current occurrence, or the last one once resolved.
CREATE TABLE alerts (
    fingerprint      TEXT PRIMARY KEY,          -- 16 hex digits: FNV-1a of rule + sorted labels; the alert id
    rule             TEXT NOT NULL,
    labels           TEXT NOT NULL,             -- JSON object
    epci             TEXT NOT NULL DEFAULT '',  -- labels.epci, for a pilote's scope
    severity         TEXT NOT NULL,
    state            TEXT NOT NULL,             -- pending, firing, resolved
    summary          TEXT NOT NULL DEFAULT '',
    value            REAL,                      -- NULL: not a number
    evidence         TEXT NOT NULL DEFAULT '{}', -- JSON rules.Evidence
    active_at        INTEGER NOT NULL,          -- start of the current activation: `for` progress
    fired_at         INTEGER NOT NULL DEFAULT 0,
    resolved_at      INTEGER NOT NULL DEFAULT 0,
    last_seen        INTEGER NOT NULL DEFAULT 0,
    cleared_at       INTEGER NOT NULL DEFAULT 0, -- firing but absent since: keep_firing_for progress
    prev_active_at   INTEGER NOT NULL DEFAULT 0, -- the resolved occurrence a pending one returns to if it never fires
    prev_fired_at    INTEGER NOT NULL DEFAULT 0,
    prev_resolved_at INTEGER NOT NULL DEFAULT 0,
    notified         TEXT NOT NULL DEFAULT '',  -- last state delivered: '', firing, resolved
    flaps            TEXT NOT NULL DEFAULT '[]', -- JSON array of recent firing/resolved transition times
    flapping         INTEGER NOT NULL DEFAULT 0,
    ack_by           TEXT NOT NULL DEFAULT '',  -- '' when not acknowledged
    ack_comment      TEXT NOT NULL DEFAULT '',
    ack_at           INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX alerts_state ON alerts (state, resolved_at);

-- Every transition and action on an alert, append-only.
CREATE TABLE alert_history (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,   -- rules.EventKind
    value       REAL,
    by_user     TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX alert_history_alert ON alert_history (fingerprint, at);
CREATE INDEX alert_history_at ON alert_history (at);

-- Every acknowledgement, also kept after the alert resolves (the alert row only holds the current one).
CREATE TABLE acks (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    by_user     TEXT NOT NULL,
    comment     TEXT NOT NULL DEFAULT '',
    at          INTEGER NOT NULL
) STRICT;

CREATE INDEX acks_alert ON acks (fingerprint, at);

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    matchers   TEXT NOT NULL,   -- JSON object of label equalities
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    by_user    TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX silences_end ON silences (ends_at);
