-- Users of the dashboard, their API tokens and their browser sessions. Secrets are never stored: passwords
-- as argon2id hashes (with their parameters), tokens and session ids as SHA-256.
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	role          TEXT NOT NULL,             -- admin, technicien, pilote, lecteur
	epcis         TEXT NOT NULL DEFAULT '',  -- SIREN codes, comma-separated; empty: the whole département
	password_hash TEXT NOT NULL,             -- $argon2id$v=19$m=…,t=…,p=…$salt$key
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_ms    INTEGER NOT NULL,
	updated_ms    INTEGER NOT NULL
);

CREATE TABLE user_tokens (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	user         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	label        TEXT NOT NULL,
	sha256       TEXT NOT NULL UNIQUE,
	created_ms   INTEGER NOT NULL,
	last_used_ms INTEGER NOT NULL DEFAULT 0,
	UNIQUE (user, label)
);

CREATE TABLE user_sessions (
	id_sha256    TEXT PRIMARY KEY,
	user         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	created_ms   INTEGER NOT NULL,
	last_seen_ms INTEGER NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user);
