"""Content credentials: every clip carries a signed C2PA manifest saying an AI model made it,
``reelbot verify`` reads it back, a changed file fails, and a copy refitted to an upload limit
keeps valid credentials of its own."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4
from pipeline.provenance import (
    ClipFacts,
    ProvenanceError,
    SigningIdentity,
    credit,
    fit_clip_signed,
    prompt_hash,
    sign_clip,
    verify_clip,
)
from tests.bot_harness import Reel

PROMPT = "a lighthouse in a storm"


@pytest.fixture
async def signing_reel(reel: Reel) -> AsyncIterator[Reel]:
    """The bot and a tiny-model worker that signs its clips with the data folder's key."""
    async with reel.bot_running(), reel.worker_running(signing=True):
        yield reel


def verify(*clips: Path, data_dir: Path, json_lines: bool = False) -> tuple[int, str]:
    """``reelbot verify`` as a user runs it, in a folder whose settings name ``data_dir``."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "verify", *map(str, clips)]
        + (["--json"] if json_lines else []),
        env={**os.environ, "REELBOT_DATA_DIR": str(data_dir)},
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


def tampered(clip: Path, out: Path) -> Path:
    """``clip`` with one bit of its video changed."""
    data = bytearray(clip.read_bytes())
    data[data.index(b"mdat") + 64] ^= 0x01
    out.write_bytes(data)
    return out


def noise_clip(path: Path, *, frames: int = 24, size: int = 128) -> EncodedClip:
    """An unsigned clip of random pixels (they barely compress: big enough to refit)."""
    pixels = np.random.default_rng(7).integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    return encode_mp4(pixels, 8, path, metadata=ClipMetadata(PROMPT, 7, "tiny"))


async def test_a_fresh_clip_says_it_was_made_by_the_model_with_its_seed(
    signing_reel: Reel, tmp_path: Path
) -> None:
    _, job = await signing_reel.create(PROMPT, seed=31)
    done = await signing_reel.delivered(job.id)
    assert done.result_path is not None
    clip = Path(done.result_path)

    data_dir = signing_reel.settings.data_dir
    code, output = await asyncio.to_thread(verify, clip, data_dir=data_dir)
    assert code == 0, output
    assert "Valid content credentials, signed by this reelbot" in output
    assert "Made by an AI model" in output
    assert "Model: tiny" in output
    assert "Seed: 31" in output
    assert f"Prompt SHA-256: {prompt_hash(PROMPT)}" in output
    # What Discord got is the same signed file.
    posted = (await signing_reel.clip_message(job.id)).attachments[0].data
    assert posted == await asyncio.to_thread(clip.read_bytes)

    changed = await asyncio.to_thread(tampered, clip, tmp_path / "changed.mp4")
    code, output = await asyncio.to_thread(verify, changed, data_dir=data_dir)
    assert code == 1
    assert "INVALID content credentials" in output
    assert "hash" in output


async def test_refitting_to_the_upload_limit_keeps_valid_credentials(
    signing_reel: Reel, tmp_path: Path
) -> None:
    fake = signing_reel.fake
    _, first = await signing_reel.create(PROMPT, seed=5, duration=5.0)
    full_size = (await signing_reel.clip_message(first.id)).attachments[0].size
    limit = full_size * 3 // 4

    fake.set_upload_limit(limit)
    _, second = await signing_reel.create(PROMPT, seed=5, duration=5.0)
    posted = (await signing_reel.clip_message(second.id)).attachments[0]
    assert posted.size <= limit
    copy = tmp_path / "posted.mp4"
    await asyncio.to_thread(copy.write_bytes, posted.data)

    code, output = await asyncio.to_thread(
        verify, copy, data_dir=signing_reel.settings.data_dir, json_lines=True
    )
    report = json.loads(output)
    assert code == 0, output
    assert report["state"] == "trusted"
    assert (report["model"], report["seed"], report["ai_generated"]) == ("tiny", 5, True)
    assert report["re_encoded"] is True
    assert report["original_valid"] is True


def test_the_own_key_is_made_once_even_by_processes_starting_together(tmp_path: Path) -> None:
    identity = SigningIdentity.in_data_dir(tmp_path / "data")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: identity.ensure(), range(4)))
    first = identity.cert_path.read_bytes()
    identity.ensure()
    assert identity.cert_path.read_bytes() == first
    assert identity.key_path.stat().st_mode & 0o077 == 0
    assert sorted(path.name for path in identity.key_path.parent.iterdir()) == [
        "ca.pem",
        "signer.key",
        "signer.pem",
    ]


def self_signed(folder: Path) -> SigningIdentity:
    """An ES256 key with a self-signed certificate: fine for TLS, refused by C2PA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "owner")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "owner.key", folder / "owner.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return SigningIdentity(key_path, cert_path)


def test_an_owners_certificate_c2pa_refuses_is_named_and_clips_go_out_unsigned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    owners = self_signed(tmp_path)
    with pytest.raises(ProvenanceError, match=r"owner\.pem"):
        owners.ensure()
    with pytest.raises(ProvenanceError, match=r"missing\.pem"):
        SigningIdentity(owners.key_path, tmp_path / "missing.pem").ensure()

    clip = noise_clip(tmp_path / "clip.mp4", frames=4, size=32)
    unsigned = credit(clip, ClipFacts.of(model="tiny", seed=7, prompt=PROMPT), owners)
    assert unsigned == clip
    assert verify_clip(clip.path).state == "missing"
    assert "goes out without content credentials" in caplog.text


def test_a_changed_clip_is_never_signed_anew_when_refitted(tmp_path: Path) -> None:
    identity = SigningIdentity.in_data_dir(tmp_path / "data")
    clip = sign_clip(
        noise_clip(tmp_path / "clip.mp4"),
        ClipFacts.of(model="tiny", seed=7, prompt=PROMPT),
        identity,
    )
    changed = tampered(clip.path, tmp_path / "changed.mp4")
    copy = fit_clip_signed(
        changed, clip.size_bytes // 2, out_path=tmp_path / "copy.mp4", identity=identity
    )
    assert copy.size_bytes <= clip.size_bytes // 2
    assert verify_clip(copy.path).state == "missing"

    honest = fit_clip_signed(
        clip.path, clip.size_bytes // 2, out_path=tmp_path / "honest.mp4", identity=identity
    )
    report = verify_clip(honest.path, trust_anchor=identity.trust_anchor())
    assert (report.state, report.re_encoded, report.original_valid) == ("trusted", True, True)
    assert honest.size_bytes <= clip.size_bytes // 2
