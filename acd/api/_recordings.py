"""GET /api/v1/recordings/{id}: the WAV file, streamed from disk, with Range support.

aiohttp's ``FileResponse`` does the HTTP part: it streams with sendfile,
answers a single ``Range`` with 206 and ``Content-Range``, an unsatisfiable
one with 416, and honours ``If-Range`` and ``ETag``. This module decides
which file, if any, may be sent.
"""

from __future__ import annotations

import re

from aiohttp import web

from ..recordings import RecordingStore
from ..storage import Storage
from ._params import Params, error, from_storage
from ._principal import principal_of

__all__ = ["RecordingsApi"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class RecordingsApi:
    """Serves recording files that the database knows and the RecordingStore holds."""

    def __init__(self, storage: Storage, recordings: RecordingStore) -> None:
        self.storage = storage
        self.recordings = recordings

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/recordings/{recording_id}", self.get_recording)]

    async def get_recording(self, request: web.Request) -> web.StreamResponse:
        """The recording as audio/wav; one 404 for every way it can be missing.

        An unknown id, a row whose file retention or a person removed, a
        call outside the caller's reach (a team lead hears their team's
        calls) and a row pointing outside the recordings directory all get
        the same answer: telling them apart would tell a caller which ids exist and
        how the disk is laid out.
        """
        Params(request, ())
        recording_id = request.match_info["recording_id"]
        recording = await from_storage(self.storage.get_recording(recording_id))
        principal = principal_of(request)
        if recording is not None and principal.agents is not None:
            call = await from_storage(self.storage.get_call(recording.call_id))
            if call is None or not principal.reaches(call.agent):
                recording = None
        path = self.recordings.resolve(recording.path) if recording is not None else None
        if path is None:
            error(web.HTTPNotFound, "not_found", "no such recording")
        name = _UNSAFE.sub("_", recording_id)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "audio/wav",
                "Content-Disposition": f'attachment; filename="{name}.wav"',
                # Call audio is personal data: no shared cache may keep a copy.
                "Cache-Control": "private, no-store",
            },
        )
