-- The first schema: the same tables as 0001_initial.sqlite.sql, with native
-- types (timestamptz, jsonb). Dispositions and event names are checked by
-- the code, as in SQLite, so both dialects accept the same data.

CREATE TABLE calls (
    call_id       text PRIMARY KEY,
    sip_call_id   text NOT NULL,
    caller_number text,
    caller_name   text,
    did           text,
    trunk         text,
    route         text,
    ivr_path      jsonb NOT NULL DEFAULT '[]',
    digits        text NOT NULL DEFAULT '',
    variables     jsonb NOT NULL DEFAULT '{}',
    queue         text,
    agent         text,
    ring_attempts integer NOT NULL DEFAULT 0,
    arrived_at    timestamptz NOT NULL,
    queued_at     timestamptz,
    answered_at   timestamptz,
    ended_at      timestamptz,
    disposition   text NOT NULL,
    hangup_side   text NOT NULL,
    sip_cause     integer,
    survey_score  integer,
    recording_id  text
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
    call_id text NOT NULL,
    at      timestamptz NOT NULL,
    event   text NOT NULL,
    seq     bigint NOT NULL,
    queue   text,
    agent   text,
    data    jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, at, event, seq)
);

CREATE INDEX call_events_by_time ON call_events (at);

CREATE TABLE recordings (
    id         text PRIMARY KEY,
    call_id    text NOT NULL,
    path       text NOT NULL,
    duration_s double precision NOT NULL,
    size_bytes bigint NOT NULL,
    sha256     text NOT NULL,
    channels   integer NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX recordings_by_creation ON recordings (created_at);
CREATE INDEX recordings_by_call ON recordings (call_id);

CREATE TABLE agent_sessions (
    agent      text NOT NULL,
    state      text NOT NULL,
    reason     text,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    PRIMARY KEY (agent, started_at)
);

CREATE INDEX agent_sessions_by_start ON agent_sessions (started_at);
