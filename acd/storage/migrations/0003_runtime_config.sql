-- The runtime configuration: agents, queues, routes and pause reasons as
-- edited over the API (acd/admin), seeded from the YAML file when empty.
-- One file for both dialects: the types below mean the same in each.
--
-- config_revision holds one row: the revision every change bumps, so a
-- change made against an older revision (another node, another admin) is
-- refused instead of overwriting, and nodes see that something changed.

CREATE TABLE config_revision (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    revision   BIGINT NOT NULL,
    seeded_at  DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- One entry of a section: an agent (name = username), a queue, a route
-- (name = its match) or a pause reason. body is the entry as JSON, in the
-- YAML file's shape; position keeps the file's order, which routes (first
-- matching pattern) and agents (the order strategies break ties by) need.
CREATE TABLE config_items (
    section    TEXT NOT NULL,
    name       TEXT NOT NULL,
    position   BIGINT NOT NULL,
    body       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (section, name)
);
