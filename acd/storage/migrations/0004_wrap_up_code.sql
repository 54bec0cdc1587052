-- The agent's disposition of a call (a queue's wrap_up_codes), given during
-- wrap-up, so written to the CDR after the call ended. One file for both
-- dialects. Reports count calls by it (report_by_wrap_up_code).

ALTER TABLE calls ADD COLUMN wrap_up_code TEXT;
CREATE INDEX calls_by_wrap_up_code ON calls (queue, wrap_up_code, arrived_at);
