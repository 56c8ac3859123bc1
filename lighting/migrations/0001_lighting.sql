-- Lighting control: what each controller was told (programs, commands), the overrides that produced the
-- commands, programs edited through the API, maintenance work items closed, and the audit log.
CREATE TABLE lighting_programs (
	device      TEXT PRIMARY KEY,
	version     INTEGER NOT NULL,
	hash        TEXT NOT NULL,     -- of the steps, so an identical program is not pushed again
	downlink_id TEXT NOT NULL DEFAULT '', -- LoRaWAN: the downlink id its ack comes back with
	payload     TEXT NOT NULL,
	state       TEXT NOT NULL,     -- desired, sent, acked, measured, rejected
	detail      TEXT NOT NULL DEFAULT '',
	created_ms  INTEGER NOT NULL,
	sent_ms     INTEGER NOT NULL DEFAULT 0,
	acked_ms    INTEGER NOT NULL DEFAULT 0,
	measured_ms INTEGER NOT NULL DEFAULT 0,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_ms     INTEGER NOT NULL DEFAULT 0  -- last publication: a program unacknowledged is published again
);

CREATE TABLE lighting_overrides (
	id           TEXT PRIMARY KEY,
	target_kind  TEXT NOT NULL,    -- group or device
	target       TEXT NOT NULL,
	level        REAL NOT NULL,
	from_ms      INTEGER NOT NULL,
	until_ms     INTEGER NOT NULL,
	actor        TEXT NOT NULL,
	reason       TEXT NOT NULL,
	created_ms   INTEGER NOT NULL,
	cancelled_ms INTEGER NOT NULL DEFAULT 0,
	cancelled_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE lighting_commands (
	id          TEXT PRIMARY KEY,  -- a UUID: also the LoRaWAN downlink id
	device      TEXT NOT NULL,
	override_id TEXT NOT NULL DEFAULT '',
	level       REAL NOT NULL,
	from_ms     INTEGER NOT NULL,
	until_ms    INTEGER NOT NULL,
	actor       TEXT NOT NULL,
	state       TEXT NOT NULL,     -- scheduled, queued, sent, acked, measured, rejected, expired, cancelled
	attempts    INTEGER NOT NULL DEFAULT 0,
	detail      TEXT NOT NULL DEFAULT '',
	created_ms  INTEGER NOT NULL,
	sent_ms     INTEGER NOT NULL DEFAULT 0,
	acked_ms    INTEGER NOT NULL DEFAULT 0,
	measured_ms INTEGER NOT NULL DEFAULT 0,
	updated_ms  INTEGER NOT NULL
);
CREATE INDEX lighting_commands_device ON lighting_commands (device, created_ms);
CREATE INDEX lighting_commands_open ON lighting_commands (state) WHERE state IN ('scheduled', 'queued', 'sent', 'acked');

CREATE TABLE lighting_program_defs (
	name       TEXT PRIMARY KEY,
	def        TEXT NOT NULL,      -- JSON ProgramDef; '' when deleted through the API
	updated_by TEXT NOT NULL,
	updated_ms INTEGER NOT NULL
);

CREATE TABLE lighting_work_closed (
	item       TEXT PRIMARY KEY,   -- the alert id the work item stands for
	closed_ms  INTEGER NOT NULL,
	closed_by  TEXT NOT NULL,
	comment    TEXT NOT NULL
);

CREATE TABLE audit (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	at_ms   INTEGER NOT NULL,
	actor   TEXT NOT NULL,         -- a user, or "programme" for what the service does by itself
	action  TEXT NOT NULL,         -- command.sent, override.create, program.push, …
	target  TEXT NOT NULL,         -- device, group, program, work item
	ref     TEXT NOT NULL DEFAULT '', -- command id, program version, override id
	detail  TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at_ms);
CREATE INDEX audit_target ON audit (target, at_ms);
CREATE INDEX audit_ref ON audit (ref);
