"""Prompt texts rendered to 8 kHz WAV files with espeak-ng, and only when they change.

``acd prompts build`` writes one WAV per prompt into a prompts directory
(``config/prompts`` beside the configuration by default) and a manifest,
``manifest.json``, mapping each prompt name to its file and the SHA-256 of
what produced it: the text, the voice, the speed, the espeak-ng version and
this module's post-processing. A prompt whose hash matches the manifest (and
whose file is still there) is skipped, so a rebuild after editing one text
renders one file, and the committed defaults are rebuilt only when espeak-ng
itself changes.

Each rendering is resampled to 8 kHz, trimmed of espeak-ng's leading and
trailing silence (which would put gaps between the words of a spoken number)
and normalised to one peak level, so prompts played in a row sound alike.

The defaults, :data:`DEFAULT_PROMPTS`, are what a contact centre needs,
including the word prompts the player builds numbers from
("you are number" + "three" + "in the queue") and music on hold, ``moh``,
which is not spoken but synthesised (:mod:`acd.moh`): a :class:`Synthesised`
prompt is hashed by its generator's version and written as it is made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from acd import moh
from media import DIGIT_NAMES, NUMBER_WORDS, ORDINAL_WORDS, PROMPT_MANIFEST, load_wav, write_wav

__all__ = [
    "DEFAULT_PROMPTS",
    "DEFAULT_SPEED",
    "DEFAULT_VOICE",
    "MUSIC_ON_HOLD",
    "BuildReport",
    "EspeakNotFound",
    "PromptBuildError",
    "PromptSource",
    "Synthesised",
    "build_prompts",
    "espeak_version",
    "prompt_texts",
]

DEFAULT_VOICE = "en-us"
DEFAULT_SPEED = 150
"""Words per minute: espeak-ng's own 175 is hurried over a phone line."""

# Bumped when the post-processing below changes, so every prompt re-renders.
_PROCESSING = "trim-40ms-peak-0.7-v1"
_PEAK = 0.7 * 32767
_SILENCE_LEVEL = 0.01 * 32767
_MARGIN = 320  # samples (40 ms) kept either side of the speech
_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
_DEBIAN_HINT = "install the Debian package espeak-ng (apt-get install espeak-ng)"

_SENTENCES: dict[str, str] = {
    "recording_notice": "This call may be recorded for quality and training purposes.",
    "welcome": "Welcome, and thank you for calling.",
    "main_menu": (
        "For sales, press 1. For support, press 2. For billing, press 3."
        " To hear these options again, press star."
    ),
    "invalid_choice": "Sorry, that is not a valid choice.",
    "no_input": "Sorry, I did not hear your choice.",
    "all_agents_busy": (
        "All of our agents are busy at the moment. Please hold,"
        " and your call will be answered by the next available agent."
    ),
    "please_hold": "Please hold.",
    "queue_position": "Your position in the queue is",
    "you_are_number": "You are number",
    "in_the_queue": "in the queue.",
    "expected_wait": "Your expected wait time is",
    "less_than_a_minute": "less than a minute.",
    "max_wait_reached": "We are sorry, all of our agents are still busy. Please call again later.",
    "closed": "Our office is now closed. Please call again during business hours.",
    "thank_you_goodbye": "Thank you for calling. Goodbye.",
    "transfer": "Please hold while your call is transferred.",
    "callback_offer": (
        "To keep your place in the queue and have us call you back, press 1."
        " To continue holding, press 2."
    ),
    "callback_confirmed": "Thank you. We will call you back as soon as an agent is available.",
    "enter_number": "Please enter the number, followed by the pound key.",
    "you_entered": "You entered",
    "agent_logged_in": "You are now logged in.",
    "agent_logged_out": "You are now logged out.",
    "agent_paused": "You are now paused.",
    "agent_unpaused": "You are now available for calls.",
    "agent_login_failed": "Login failed.",
    "wrap_up_code_saved": "Wrap-up code saved.",
    "survey_question": (
        "Please rate the service you received today, from 1 for poor to 5 for excellent."
    ),
    "survey_thanks": "Thank you for your feedback.",
    "survey_invalid": "Please press a key from 1 to 5.",
    "enter_account": "Please enter your eight digit account number, followed by the pound key.",
    "invalid_account": "Sorry, that is not a valid account number.",
    "goodbye": "Goodbye.",
}

_WORDS: dict[str, str] = {
    word: word
    for word in (
        *NUMBER_WORDS,
        *ORDINAL_WORDS,
        *DIGIT_NAMES.values(),
        "minute",
        "minutes",
        "second",
        "seconds",
    )
}


@dataclass(frozen=True, slots=True)
class Synthesised:
    """A prompt made by code, not spoken: ``render()`` gives 8 kHz mono int16 samples.

    ``version`` names what ``render`` makes; a new version is rendered again.
    """

    version: str
    render: Callable[[], npt.NDArray[np.int16]] = field(compare=False)
    description: str = ""


PromptSource = str | Synthesised
"""What a prompt is made from: a text for espeak-ng, or a synthesiser."""

MUSIC_ON_HOLD = Synthesised(
    moh.VERSION, moh.music_on_hold, "music on hold: a calm, royalty-free chord loop"
)

DEFAULT_PROMPTS: Mapping[str, PromptSource] = {**_SENTENCES, **_WORDS, "moh": MUSIC_ON_HOLD}
"""Prompt name -> source: the sentences a contact centre says, the words numbers use,
and music on hold."""


class PromptBuildError(RuntimeError):
    """A prompt could not be rendered: espeak-ng failed, or a name or text is unusable."""


class EspeakNotFound(PromptBuildError):
    """espeak-ng is not on PATH."""


@dataclass
class BuildReport:
    """What a build did, prompt by prompt."""

    directory: Path
    rendered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def prompt_texts(overrides: Mapping[str, str] | None = None) -> dict[str, PromptSource]:
    """The default prompts with ``overrides`` (from configuration) replacing or adding texts.

    Names are checked here, once, because each becomes a file name.
    """
    texts: dict[str, PromptSource] = dict(DEFAULT_PROMPTS)
    for name, text in (overrides or {}).items():
        if not _NAME.fullmatch(name):
            raise PromptBuildError(
                f"prompt name {name!r}: use lower-case letters, digits and _ (up to 64)"
            )
        if not text.strip():
            raise PromptBuildError(f"prompt {name!r} has no text")
        texts[name] = text
    return texts


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakNotFound(f"espeak-ng was not found on PATH: {_DEBIAN_HINT}")
    return path


async def espeak_version() -> str:
    """The installed espeak-ng's version, e.g. ``1.51``; :class:`EspeakNotFound` if absent."""
    process = await asyncio.create_subprocess_exec(
        _espeak(),
        "--version",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    match = re.search(r"text-to-speech:\s*(\S+)", out.decode(errors="replace"))
    if process.returncode != 0 or match is None:
        raise PromptBuildError(f"espeak-ng --version failed: {(out + err).decode().strip()}")
    return match.group(1)


def _digest(source: PromptSource, voice: str, speed: int, version: str) -> str:
    if isinstance(source, Synthesised):
        material = json.dumps(["synthesised", source.version])
    else:
        material = json.dumps([source, voice, speed, version, _PROCESSING])
    return hashlib.sha256(material.encode()).hexdigest()


def _tidy(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Trim the silence espeak-ng leaves around speech and bring the peak to one level."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _SILENCE_LEVEL)
    if len(loud) == 0:
        return pcm
    start = max(0, int(loud[0]) - _MARGIN)
    end = min(len(pcm), int(loud[-1]) + _MARGIN)
    speech = pcm[start:end].astype(np.float64)
    speech *= _PEAK / np.max(np.abs(speech))
    return np.round(speech).astype(np.int16)


async def _render(
    source: PromptSource, voice: str, speed: int, target: Path, scratch: Path
) -> None:
    if isinstance(source, Synthesised):
        # A fraction of a second of numpy; off the loop so espeak-ng runs meanwhile.
        write_wav(target, await asyncio.to_thread(source.render))
        return
    text = source
    raw = scratch / f"{target.stem}.raw.wav"
    process = await asyncio.create_subprocess_exec(
        _espeak(),
        "-v",
        voice,
        "-s",
        str(speed),
        "-w",
        str(raw),
        "--stdin",  # the text never passes through argv, so it cannot look like an option
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(text.encode())
    if process.returncode != 0 or not raw.is_file():
        detail = (err or out).decode(errors="replace").strip()
        raise PromptBuildError(f"espeak-ng failed for {target.stem!r} (voice {voice}): {detail}")
    # Resampling a second of speech takes a millisecond or two; not worth a thread.
    write_wav(target, _tidy(load_wav(raw)))


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
        prompts = manifest["prompts"]
        if not isinstance(prompts, dict):
            raise TypeError("'prompts' is not a mapping")
        return prompts
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError) as exc:
        raise PromptBuildError(
            f"{path}: unreadable manifest ({exc}); remove it to rebuild"
        ) from exc


async def build_prompts(
    directory: str | os.PathLike[str],
    texts: Mapping[str, PromptSource] | None = None,
    *,
    voice: str = DEFAULT_VOICE,
    speed: int = DEFAULT_SPEED,
    force: bool = False,
    concurrency: int | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> BuildReport:
    """Render ``texts`` (default: :func:`prompt_texts`) into ``directory``, skipping unchanged ones.

    Prompts the previous manifest listed but ``texts`` no longer has are
    deleted with their files; other files in the directory are left alone.
    ``on_progress(action, name)`` is called as each prompt is rendered,
    skipped or removed. The manifest is written last, so an interrupted
    build re-renders what it had not recorded.
    """
    texts = prompt_texts() if texts is None else dict(texts)
    for name in texts:
        if not _NAME.fullmatch(name):
            raise PromptBuildError(f"prompt name {name!r}: use lower-case letters, digits and _")
    version = await espeak_version()
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / PROMPT_MANIFEST
    previous = _read_manifest(manifest_path)
    report = BuildReport(root)
    notify = on_progress or (lambda action, name: None)
    entries: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, PromptSource]] = []
    for name, text in sorted(texts.items()):
        digest = _digest(text, voice, speed, version)
        entries[name] = {"file": f"{name}.wav", "sha256": digest}
        if isinstance(text, Synthesised):
            entries[name]["synthesised"] = text.version
            entries[name]["description"] = text.description
        else:
            entries[name]["text"] = text
        old = previous.get(name)
        if (
            not force
            and isinstance(old, dict)
            and old.get("sha256") == digest
            and (root / entries[name]["file"]).is_file()
        ):
            report.skipped.append(name)
            notify("skipped", name)
        else:
            pending.append((name, text))

    limit = asyncio.Semaphore(concurrency or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="acd-prompts-") as scratch:

        async def render(name: str, text: PromptSource) -> None:
            async with limit:
                await _render(text, voice, speed, root / f"{name}.wav", Path(scratch))
            report.rendered.append(name)
            notify("rendered", name)

        try:
            async with asyncio.TaskGroup() as group:
                for name, text in pending:
                    group.create_task(render(name, text))
        except ExceptionGroup as failures:
            # One voice or install problem fails every prompt alike: report one.
            first = failures.exceptions[0]
            if isinstance(first, PromptBuildError):
                raise first from None
            raise

    for name, old in sorted(previous.items()):
        if name not in entries:
            if isinstance(old, dict) and isinstance(old.get("file"), str):
                (root / Path(old["file"]).name).unlink(missing_ok=True)
            report.removed.append(name)
            notify("removed", name)
    report.rendered.sort()
    manifest = {
        "generator": "acd prompts build",
        "voice": voice,
        "speed": speed,
        "espeak_ng": version,
        "prompts": entries,
    }
    temporary = manifest_path.with_name(f".{manifest_path.name}.tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    temporary.replace(manifest_path)
    return report
