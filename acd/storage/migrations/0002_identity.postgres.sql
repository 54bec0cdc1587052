-- The same tables as 0002_identity.sqlite.sql. Times are Unix seconds
-- (double precision) in both dialects, so the identity code reads one shape.

CREATE TABLE users (
    username      text PRIMARY KEY,
    role          text NOT NULL,
    team          text,
    password_hash text,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    double precision NOT NULL,
    updated_at    double precision NOT NULL
);

CREATE TABLE web_sessions (
    token_hash  text PRIMARY KEY,
    username    text NOT NULL,
    csrf_token  text NOT NULL,
    source      text NOT NULL,
    created_at  double precision NOT NULL,
    seen_at     double precision NOT NULL,
    expires_at  double precision NOT NULL
);
CREATE INDEX web_sessions_username ON web_sessions (username);

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    secret_hash  text NOT NULL,
    username     text NOT NULL,
    name         text NOT NULL,
    scopes       text NOT NULL,
    created_at   double precision NOT NULL,
    expires_at   double precision,
    revoked_at   double precision,
    last_used_at double precision
);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       double precision NOT NULL,
    actor    text NOT NULL,
    role     text NOT NULL,
    source   text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL,
    status   integer NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
