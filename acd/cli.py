"""The ``acd`` command: ``serve`` the engine, ``check-config`` a file, ``prompts build``,
``simulate-agents``, ``users add|list``.

Exit status: 0 success, 2 for a configuration or usage error, 1 when
``prompts build`` cannot render (espeak-ng missing or failing) or
``simulate-agents`` cannot register or stop cleanly; ``serve`` otherwise
returns what the server returns.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from acd._cli_config import add_config_parser
from acd._cli_users import add_users_parser
from acd.config import Config, ConfigError, load_config

__all__ = ["default_config_path", "main"]

EXIT_CONFIG_ERROR = 2
_EXAMPLE = Path("config") / "example.yaml"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _version() -> str:
    try:
        return metadata.version("acd-engine")
    except metadata.PackageNotFoundError:  # running from a checkout without pip install
        return "unknown (not installed)"


def default_config_path(cwd: Path | None = None) -> Path | None:
    """``config/example.yaml`` under the working directory, else in this checkout."""
    candidates = [
        (cwd or Path.cwd()) / _EXAMPLE,
        Path(__file__).resolve().parents[1] / _EXAMPLE,
    ]
    return next((path for path in candidates if path.is_file()), None)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _summary(config: Config) -> str:
    return ", ".join(
        [
            _plural(len(config.agents), "agent"),
            _plural(len(config.trunks), "trunk"),
            _plural(len(config.routes), "route"),
            _plural(len(config.queues), "queue"),
        ]
    )


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: time (UTC, ISO 8601), level, logger,
    message, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """One line per record on stderr: time, level, logger, message (or JSON)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _config_reference(args: argparse.Namespace) -> int:
    from acd.config._reference import render_reference

    sys.stdout.write(render_reference())
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from acd.flows import load_flows_for

    try:
        config = load_config(args.file)
        checked = load_flows_for(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG_ERROR
    for warning in checked.warnings:
        print(warning, file=sys.stderr)
    flows = _plural(len(checked.flows), "IVR flow")
    print(f"{args.file}: OK ({_summary(config)}, {flows})")
    return 0


def _command_config(command: str, given: Path | None) -> tuple[Path, Config] | None:
    """The configuration a command runs on (``--config``, else the example in the
    working directory) and its path; None, with the reason on stderr, when there is
    none usable."""
    path = given or default_config_path()
    if path is None:
        print(
            f"acd {command}: no --config given and no {_EXAMPLE} in the working directory",
            file=sys.stderr,
        )
        return None
    try:
        return path, load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from acd.flows import load_flows_for

    loaded = _command_config("serve", args.config)
    if loaded is None:
        return EXIT_CONFIG_ERROR
    path, config = loaded
    try:
        checked = load_flows_for(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG_ERROR
    configure_logging(config.logging.level, args.log_format or config.logging.format)
    for warning in checked.warnings:
        logging.getLogger("acd.cli").warning("%s", warning)
    logging.getLogger("acd.cli").info("configuration %s: %s", path, _summary(config))
    # Imported here so that check-config never pays for (or depends on) the
    # sockets, media and storage the server pulls in.
    from acd.server import run

    return run(config)


def _prompts_build(args: argparse.Namespace) -> int:
    # Imported here so that serve and check-config never load the renderer.
    import asyncio

    from acd.prompts import PromptBuildError, build_prompts, prompt_texts

    out: Path | None = args.out
    if out is None or args.config is not None:
        path: Path | None = args.config or default_config_path()
        if path is None:
            print(
                f"acd prompts build: give --out DIR or --config FILE (no {_EXAMPLE})",
                file=sys.stderr,
            )
            return EXIT_CONFIG_ERROR
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CONFIG_ERROR
        # Where the configuration keeps them (prompts.dir, beside the file by default).
        out = out or config.prompts.dir
        texts = prompt_texts(config.prompts.texts)
        config_voice: dict[str, object] = {
            "voice": config.prompts.voice,
            "speed": config.prompts.speed,
        }
    else:
        texts = None
        config_voice = {}

    def progress(action: str, name: str) -> None:
        if action != "skipped":
            print(f"{action} {name}")

    # Only what was given, so the defaults live in one place: acd.prompts.
    chosen = {key: value for key in ("voice", "speed") if (value := getattr(args, key)) is not None}
    settings = {**config_voice, **chosen}  # flags win over the file
    try:
        report = asyncio.run(
            build_prompts(out, texts, force=args.force, on_progress=progress, **settings)
        )
    except PromptBuildError as exc:
        print(f"acd prompts build: {exc}", file=sys.stderr)
        return 1
    print(
        f"{out}: {len(report.rendered)} rendered, {len(report.skipped)} unchanged,"
        f" {len(report.removed)} removed"
    )
    return 0


def _agent_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give usernames separated by commas")
    return names


def _simulate_agents(args: argparse.Namespace) -> int:
    loaded = _command_config("simulate-agents", args.config)
    if loaded is None:
        return EXIT_CONFIG_ERROR
    _path, config = loaded
    configure_logging("WARNING")
    # Imported here: pyVoIP (and its threads) only for this command.
    from acd.simulate import SimulationError, pyvoip_threads, run_simulator

    try:
        status = run_simulator(
            config,
            usernames=args.agents,
            count=args.count,
            answer_after=args.answer_after,
            tone=args.tone,
            server=args.server,
        )
    except SimulationError as exc:
        print(f"acd simulate-agents: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if pyvoip_threads():
        # A pyVoIP thread stuck on the network would keep the interpreter
        # from exiting; the problem has been reported, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status or 1)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acd", description="Contact-centre engine with its own SIP stack."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the engine until SIGINT or SIGTERM")
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"configuration file (default: {_EXAMPLE} in the working directory)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text lines, or one JSON object a line for log shippers (default: logging.format)",
    )
    serve.set_defaults(handler=_serve)

    reference = commands.add_parser(
        "config-reference",
        help="print every configuration key with its type, default and meaning (Markdown)",
    )
    reference.set_defaults(handler=_config_reference)

    check = commands.add_parser(
        "check-config", help="validate a configuration file and exit 0, or 2 with its errors"
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=_check_config)

    prompts = commands.add_parser("prompts", help="manage the prompt WAV files")
    prompt_commands = prompts.add_subparsers(
        dest="prompts_command", required=True, metavar="COMMAND"
    )
    build = prompt_commands.add_parser(
        "build", help="render prompt texts to 8 kHz WAV with espeak-ng, skipping unchanged ones"
    )
    build.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"configuration whose directory gets prompts/ (default: {_EXAMPLE})",
    )
    build.add_argument("--out", type=Path, metavar="DIR", help="write the prompts here instead")
    build.add_argument("--voice", help="espeak-ng voice (default en-us)")
    build.add_argument("--speed", type=int, help="words per minute (default 150)")
    build.add_argument("--force", action="store_true", help="render every prompt again")
    build.set_defaults(handler=_prompts_build)

    simulate = commands.add_parser(
        "simulate-agents",
        help="register the configured agents with pyVoIP phones that answer calls with a tone",
    )
    simulate.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"configuration with the agents' accounts (default: {_EXAMPLE})",
    )
    simulate.add_argument(
        "--agents",
        type=_agent_list,
        metavar="1001,1002,...",
        help="usernames to simulate (default: every agent)",
    )
    simulate.add_argument("--count", type=int, metavar="N", help="simulate the first N agents")
    simulate.add_argument(
        "--answer-after",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="ring this long before answering (default 1)",
    )
    simulate.add_argument(
        "--tone",
        type=int,
        default=600,
        metavar="HZ",
        help="the first agent's tone; each next agent's is higher (default 600)",
    )
    simulate.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        help="the engine's SIP address (default: from the configuration, over UDP)",
    )
    simulate.set_defaults(handler=_simulate_agents)
    add_users_parser(commands, lambda command, path: _command_config(command, _path(path)))
    add_config_parser(commands, lambda command, path: _command_config(command, _path(path)))
    return parser


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``acd`` console script."""
    args = _parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
