"""Pictures for /animate (the start image, and the end image): checked before, during and
after download, then kept as PNG. Each check's sentence names the picture (``which``).

Discord tells the type, byte size and pixel size of an attachment up front, so most bad
uploads are refused before a byte is fetched; the download stops at the byte limit whatever
the server claims, and the decoded size is checked from the header before pixels are decoded
(a small file can claim a huge image: a decompression bomb).
"""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import discord
from PIL import Image, UnidentifiedImageError

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
CHUNK_BYTES = 64 * 1024
START_IMAGE = "start image"
END_IMAGE = "end image"


class ImageRefused(Exception):
    """The picture cannot be used; ``str(error)`` is the sentence for the user."""


def check_attachment(attachment: discord.Attachment, *, which: str = START_IMAGE) -> None:
    """Refuse an attachment from what Discord says about it, before downloading."""
    content_type = (attachment.content_type or "").split(";")[0].strip()
    if content_type not in IMAGE_TYPES:
        raise ImageRefused(f"The {which} must be a PNG, JPEG or WebP picture.")
    if attachment.size > MAX_IMAGE_BYTES:
        raise ImageRefused(
            f"The {which} is {attachment.size / 2**20:.1f} MB; the most is"
            f" {MAX_IMAGE_BYTES // 2**20} MB."
        )
    if attachment.width is not None and attachment.height is not None:
        check_pixel_size(attachment.width, attachment.height, which=which)


def check_pixel_size(width: int, height: int, *, which: str = START_IMAGE) -> None:
    if width < 1 or height < 1 or max(width, height) > MAX_IMAGE_SIDE:
        raise ImageRefused(
            f"The {which} is {width}×{height} pixels; each side must be at most"
            f" {MAX_IMAGE_SIDE} pixels."
        )


async def download(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int, which: str = START_IMAGE
) -> bytes:
    """The file at ``url``, stopping as soon as it passes ``max_bytes``."""
    larger = f"The {which} is larger than it claimed; it was not used."
    async with session.get(url) as response:
        if response.status != 200:
            raise ImageRefused(f"The {which} could not be downloaded from Discord.")
        if response.content_length is not None and response.content_length > max_bytes:
            raise ImageRefused(larger)
        data = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            data.extend(chunk)
            if len(data) > max_bytes:
                raise ImageRefused(larger)
    return bytes(data)


def save_start_image(data: bytes, path: Path, *, which: str = START_IMAGE) -> Path:
    """Decode ``data`` safely and save it as an RGB PNG at ``path`` (blocking: use a thread)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            # The header alone gives the size: refuse before decoding any pixels.
            check_pixel_size(image.width, image.height, which=which)
            rgb = image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise ImageRefused(f"The {which} claims too many pixels to decode safely.") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageRefused(f"The {which} could not be read as a picture.") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb.save(path, format="PNG")
    return path
