"""Start images are refused by type, size and pixel count, and bombs are never decoded."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from PIL import Image

from bot.uploads import ImageRefused, check_attachment, save_start_image


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def with_claimed_size(png: bytes, width: int, height: int) -> bytes:
    """A real PNG whose header claims another size (how a decompression bomb starts)."""
    ihdr_start = 8 + 8  # signature, then the IHDR chunk's length and type
    header = struct.pack(">II", width, height) + png[ihdr_start + 8 : ihdr_start + 13]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return png[:ihdr_start] + header + crc + png[ihdr_start + 17 :]


def attachment(**changes: Any) -> discord.Attachment:
    data = {
        "id": 1, "filename": "start.png", "size": 1000, "url": "http://x/start.png",
        "proxy_url": "http://x/start.png", "content_type": "image/png", "width": 64, "height": 64,
    }  # fmt: skip
    data.update(changes)
    state = SimpleNamespace(http=None)
    return discord.Attachment(data=data, state=state)  # type: ignore[arg-type]


def test_a_good_picture_is_saved_as_png(tmp_path: Path) -> None:
    path = save_start_image(png_bytes(64, 48), tmp_path / "uploads" / "1.png")
    with Image.open(path) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (64, 48), "RGB")


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = with_claimed_size(png_bytes(8, 8), 60000, 60000)
    with pytest.raises(ImageRefused, match="pixels"):
        save_start_image(bomb, tmp_path / "bomb.png")
    assert not (tmp_path / "bomb.png").exists()


def test_bytes_that_are_not_a_picture_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageRefused, match="could not be read"):
        save_start_image(b"<html>not an image</html>", tmp_path / "x.png")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"content_type": "application/zip"}, "PNG, JPEG or WebP"),
        ({"size": 50 * 2**20}, "the most is 10 MB"),
        ({"width": 9000, "height": 100}, "at most 4096"),
    ],
)
def test_attachments_are_refused_before_download(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ImageRefused, match=words):
        check_attachment(attachment(**changes))


def test_a_fitting_attachment_passes() -> None:
    check_attachment(attachment())


def test_a_tall_picture_is_refused_from_its_header(tmp_path: Path) -> None:
    tall = with_claimed_size(png_bytes(8, 8), 10, 5000)
    with pytest.raises(ImageRefused, match="10×5000"):
        save_start_image(tall, tmp_path / "tall.png")
