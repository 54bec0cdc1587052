"""Prometheus collectors, Grafana dashboard and alert rules."""
