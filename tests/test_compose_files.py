"""deploy/compose.yaml and the files it mounts, checked without containers.

tests/test_container.py brings the stack up with Podman. Here: every path
the stack mounts exists, every variable it reads is documented in its
header or in docs/configuration.md, Prometheus' configuration passes
promtool exactly as the container sees it (the shipped alerts.yml beside
it), and Grafana's provisioning agrees with the dashboard it provisions.
Grafana itself cannot run here (it is not in Debian and no image registry
is reachable), and it ships no offline validator, so its provisioning is
checked against the fields Grafana's documentation names as required.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from acd.config._loader import ENVIRONMENT

from .conftest import ROOT, require_tool

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def bind_mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts, defaults filled in."""
    mounts: dict[str, Path] = {}
    for volume in compose()["services"][service].get("volumes", []):
        source, target = volume.split(":")[:2]
        source = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", source)
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def test_the_stack_has_its_four_services_on_loopback_by_default() -> None:
    services = compose()["services"]
    assert set(services) == {"acd", "postgres", "prometheus", "grafana"}
    for name, service in services.items():
        for port in service.get("ports", []):
            # Published on 127.0.0.1 unless the operator sets ACD_PUBLISH.
            assert port.startswith("${ACD_PUBLISH:-127.0.0.1}:"), (name, port)
    assert "ports" not in services["postgres"], "the database is reachable by the stack only"


def test_every_mounted_file_exists() -> None:
    for service in compose()["services"]:
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{service}: {source} (mounted at {target}) is missing"


def test_secrets_come_from_the_environment_and_have_no_default() -> None:
    text = COMPOSE.read_text()
    for variable in ("ACD_DB_PASSWORD", "ACD_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{variable}:?" in text, variable
        assert f"${{{variable}:-" not in text, variable
        assert variable in text.split("\nname:")[0], f"{variable} not named in the header"


def test_every_variable_the_file_reads_is_named_in_its_header() -> None:
    header, _, body = COMPOSE.read_text().partition("\nname:")
    for variable in sorted(set(re.findall(r"\$\{(\w+)", body))):
        assert variable in header, f"{variable} is read but not listed in the header"


def test_no_variable_defaults_to_empty() -> None:
    # podman-compose 1.0.3 leaves ${VAR:-} as literal text (its pattern needs a default),
    # which once turned /metrics' token into the string "${ACD_METRICS_TOKEN:-}".
    assert not re.search(r"\$\{\w+:?-\}", COMPOSE.read_text())


def test_the_engine_variables_it_sets_are_ones_the_engine_reads() -> None:
    environment = compose()["services"]["acd"]["environment"]
    admin = {"ACD_ADMIN_USER", "ACD_ADMIN_PASSWORD"}  # read by the identity bootstrap
    assert set(environment) - admin <= set(ENVIRONMENT), set(environment) - set(ENVIRONMENT)
    reference = (ROOT / "docs" / "configuration.md").read_text()
    for variable in set(environment) - admin:
        assert f"`{variable}`" in reference, variable


def test_promtool_accepts_prometheus_as_the_container_sees_it(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    for target, source in bind_mounts("prometheus").items():
        if target.startswith("/etc/prometheus/"):
            shutil.copy(source, tmp_path / Path(target).name)
    result = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    scraped = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    (job,) = scraped["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["acd:8080"], "the engine's service name"


def test_grafana_provisions_the_dashboard_with_a_prometheus_it_reaches() -> None:
    mounts = bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasources,) = (provisioning / "datasources").glob("*.yaml")
    sources = yaml.safe_load(datasources.read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert {"name", "type", "access", "url"} <= set(source), source
    assert source["type"] == "prometheus" and source["isDefault"] is True
    prometheus_port = compose()["services"]["prometheus"]["command"][-1].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{prometheus_port}", source

    (providers_file,) = (provisioning / "dashboards").glob("*.yaml")
    providers = yaml.safe_load(providers_file.read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and {"name", "options"} <= set(provider)
    dashboards = mounts[provider["options"]["path"]]  # the provider reads a mounted directory
    (dashboard_file,) = dashboards.glob("*.json")
    dashboard = json.loads(dashboard_file.read_text())
    assert dashboard["uid"] and dashboard["title"]
    # The dashboard asks for a data source of the provisioned type, so the default fits.
    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["query"] == source["type"]
