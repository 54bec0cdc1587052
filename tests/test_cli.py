"""The acd command: check-config output and exit codes, serve's config handling."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from acd.cli import default_config_path, main
from acd.config import ENVIRONMENT, Config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example.yaml"
BAD = "agents:\n  - username: 1001\n    pasword: correct-horse\n"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Stand in for acd.server so that serve returns at once with what it was given."""
    started: list[Config] = []

    def run(config: Config) -> int:
        started.append(config)
        return 0

    module = types.ModuleType("acd.server")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acd.server", module)
    return started


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{EXAMPLE}: OK (10 agents, 1 trunk, 6 routes, 3 queues, 2 IVR flows)\n"
    assert err == ""


def _flow_config(tmp_path: Path, flow: str, route_flow: str = "main") -> Path:
    (tmp_path / "ivr").mkdir()
    (tmp_path / "ivr" / "main.yaml").write_text(flow)
    path = tmp_path / "acd.yaml"
    path.write_text(f'routes:\n  - {{match: "100", ivr: {route_flow}}}\n')
    return path


def test_check_config_refuses_a_loop_that_waits_for_no_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = (
        "start: a\n"
        "nodes:\n"
        "  a: {type: play, prompts: [welcome], next: b}\n"
        "  b: {type: goto, next: a}\n"
    )
    assert main(["check-config", str(_flow_config(tmp_path, flow))]) == 2
    _, err = capsys.readouterr()
    assert "main.yaml:" in err and "error" in err


def test_check_config_warns_of_unreachable_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = "start: a\nnodes:\n  a: {type: hangup, prompt: [welcome]}\n  orphan: {type: hangup}\n"
    assert main(["check-config", str(_flow_config(tmp_path, flow))]) == 0
    out, err = capsys.readouterr()
    assert "1 IVR flow" in out
    assert "orphan" in err and "warning" in err


def test_check_config_refuses_a_route_to_a_missing_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = "start: a\nnodes:\n  a: {type: hangup}\n"
    assert main(["check-config", str(_flow_config(tmp_path, flow, route_flow="sales"))]) == 2
    _, err = capsys.readouterr()
    assert "unknown IVR flow 'sales'" in err


def test_check_config_refuses_a_prompt_the_library_does_not_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = (
        "start: a\n"
        "nodes:\n"
        "  a: {type: play, prompts: [welcome, gone], next: b}\n"
        "  b: {type: hangup, prompt: [welcome]}\n"
    )
    config = _flow_config(tmp_path, flow)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "manifest.json").write_text('{"prompts": {"welcome": {"file": "welcome.wav"}}}')
    config.write_text(config.read_text() + "prompts: {dir: prompts}\n")
    assert main(["check-config", str(config)]) == 2
    _, err = capsys.readouterr()
    assert "main.yaml:3: nodes.a.prompts[1]" in err, err
    assert "no prompt named 'gone'" in err and "welcome'" not in err, err


def test_check_config_warns_when_no_prompt_library_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = "start: a\nnodes:\n  a: {type: hangup, prompt: [welcome]}\n"
    assert main(["check-config", str(_flow_config(tmp_path, flow))]) == 0
    _, err = capsys.readouterr()
    assert "no prompt library built" in err and "acd prompts build" in err, err


def test_check_config_reports_errors_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:2: agents[0].password: Field required",
        f"{path}:3: agents[0].pasword: unknown key; did you mean 'password'?",
    ]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_config_names_a_bad_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACD_SIP_PORT", "fifty")
    assert main(["check-config", str(EXAMPLE)]) == 2
    assert capsys.readouterr().err.startswith("ACD_SIP_PORT='fifty': sip.port:")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("acd ")


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_serve_hands_the_loaded_config_to_the_server(fake_server: list[Config]) -> None:
    assert main(["serve", "--config", str(EXAMPLE)]) == 0
    assert len(fake_server) == 1 and len(fake_server[0].agents) == 10


def test_serve_applies_environment_overrides(
    fake_server: list[Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACD_SIP_PORT", "5070")
    assert main(["serve", "--config", str(EXAMPLE)]) == 0
    assert fake_server[0].sip.port == 5070


def test_serve_with_a_bad_config_exits_2_without_starting(
    tmp_path: Path, fake_server: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["serve", "--config", str(path)]) == 2
    assert f"{path}:2: agents[0].password: Field required" in capsys.readouterr().err
    assert fake_server == []


def test_serve_defaults_to_the_example_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_server: list[Config]
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "example.yaml").write_text("agents: []\n")
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 0
    assert fake_server[0].agents == ()


def test_default_config_falls_back_to_this_checkout(tmp_path: Path) -> None:
    assert default_config_path(tmp_path) == EXAMPLE


def test_serve_sets_the_log_level_from_the_config(
    tmp_path: Path, fake_server: list[Config]
) -> None:
    path = tmp_path / "acd.yaml"
    path.write_text("logging: {level: debug}\n")
    assert main(["serve", "--config", str(path)]) == 0
    assert logging.getLogger().level == logging.DEBUG


def test_check_config_as_a_program() -> None:
    command = [sys.executable, "-m", "acd.cli", "check-config", "config/example.yaml"]
    env = {"PATH": "/usr/bin:/bin"}
    ok = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout.startswith("config/example.yaml: OK")) == (0, True), ok
    bad = subprocess.run(
        [*command[:-1], "pyproject.toml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("pyproject.toml:"), bad.stderr
