-- Callback requests (acd/queues/_callbacks.py): a caller who chose to be
-- called back keeps a row here until an agent reached them, every attempt
-- failed, a supervisor cancelled it or it expired, so that a restart puts
-- the request back in its queue. One file for both dialects: times are
-- ISO 8601 text in UTC (fixed width, so text order is time order) and body
-- is the whole record as JSON (acd.storage.to_json).

CREATE TABLE callbacks (
    call_id      TEXT PRIMARY KEY,
    queue        TEXT NOT NULL,
    state        TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    body         TEXT NOT NULL
);

CREATE INDEX callbacks_by_state ON callbacks (state, requested_at);
