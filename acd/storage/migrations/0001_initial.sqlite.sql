-- The first schema. Timestamps are ISO 8601 text in UTC with microseconds
-- (fixed width, so text order is time order); JSON columns are text.
-- Dispositions and event names are checked by the code, not by CHECK
-- constraints: SQLite can only change a CHECK by rebuilding the table.

CREATE TABLE calls (
    call_id       TEXT PRIMARY KEY,
    sip_call_id   TEXT NOT NULL,
    caller_number TEXT,
    caller_name   TEXT,
    did           TEXT,
    trunk         TEXT,
    route         TEXT,
    ivr_path      TEXT NOT NULL DEFAULT '[]',
    digits        TEXT NOT NULL DEFAULT '',
    variables     TEXT NOT NULL DEFAULT '{}',
    queue         TEXT,
    agent         TEXT,
    ring_attempts INTEGER NOT NULL DEFAULT 0,
    arrived_at    TEXT NOT NULL,
    queued_at     TEXT,
    answered_at   TEXT,
    ended_at      TEXT,
    disposition   TEXT NOT NULL,
    hangup_side   TEXT NOT NULL,
    sip_cause     INTEGER,
    survey_score  INTEGER,
    recording_id  TEXT
);

-- list_calls: a time range, optionally one queue, agent, caller or
-- disposition, paged by (arrived_at, call_id).
CREATE INDEX calls_by_arrival ON calls (arrived_at, call_id);
CREATE INDEX calls_by_queue ON calls (queue, arrived_at, call_id);
CREATE INDEX calls_by_agent ON calls (agent, arrived_at, call_id);
CREATE INDEX calls_by_caller ON calls (caller_number, arrived_at, call_id);
CREATE INDEX calls_by_disposition ON calls (disposition, arrived_at, call_id);

-- call_id is '' for agent events outside any call (LOGIN, PAUSE...): a
-- primary key column cannot be NULL.
CREATE TABLE call_events (
    call_id TEXT NOT NULL,
    at      TEXT NOT NULL,
    event   TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    queue   TEXT,
    agent   TEXT,
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, at, event, seq)
);

CREATE INDEX call_events_by_time ON call_events (at);

CREATE TABLE recordings (
    id         TEXT PRIMARY KEY,
    call_id    TEXT NOT NULL,
    path       TEXT NOT NULL,
    duration_s REAL NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    channels   INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX recordings_by_creation ON recordings (created_at);
CREATE INDEX recordings_by_call ON recordings (call_id);

CREATE TABLE agent_sessions (
    agent      TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    PRIMARY KEY (agent, started_at)
);

CREATE INDEX agent_sessions_by_start ON agent_sessions (started_at);
