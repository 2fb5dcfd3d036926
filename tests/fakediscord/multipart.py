"""Reading a request body the way Discord does: JSON, or multipart with payload_json + files[n]."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakediscord.errors import ApiError

_FILE_FIELD = re.compile(r"files\[(\d+)\]")


@dataclass(frozen=True)
class UploadedFile:
    index: int
    filename: str
    data: bytes


async def read_body(request: web.Request) -> tuple[dict[str, Any], list[UploadedFile]]:
    """The JSON payload and the uploaded files (ordered by their files[n] index)."""
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request)
    if not request.can_read_body:
        return {}, []
    text = await request.text()
    return (_parse_json(text) if text else {}), []


async def _read_multipart(request: web.Request) -> tuple[dict[str, Any], list[UploadedFile]]:
    payload: dict[str, Any] = {}
    files: list[UploadedFile] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, 50035, "Invalid Form Body")
        data = await part.read()
        match = _FILE_FIELD.fullmatch(part.name or "")
        if part.name == "payload_json":
            payload = _parse_json(data.decode())
        elif match:
            files.append(UploadedFile(int(match.group(1)), part.filename or "unknown", data))
        else:
            raise ApiError(400, 50035, f"Invalid Form Body: unexpected part {part.name!r}")
    files.sort(key=lambda f: f.index)
    return payload, files


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    if not isinstance(value, dict):
        raise ApiError(400, 50035, "Invalid Form Body")
    return value
