-- How long the agent spent in wrap-up after the call (seconds), written to
-- the CDR when the wrap-up ends, so that average handle time counts it
-- (talk plus wrap-up, over handled calls). One file for both dialects.

ALTER TABLE calls ADD COLUMN wrap_up_s DOUBLE PRECISION;
