"""The engine: calls, agents, queues, storage, HTTP API, CLI and configuration."""
