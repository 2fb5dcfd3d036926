"""`reelbot run`: one clear sentence for a missing or rejected token; with a good token it
serves Discord with its own worker process, which it restarts when it dies mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.cli import main
from jobqueue.jobs import JobQueue
from jobqueue.models import Stage
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.fakediscord import FakeDiscord


def test_missing_token_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DISCORD_TOKEN is not set" in err


def reelbot_env(fake: FakeDiscord, data_dir: Path, token: str) -> dict[str, str]:
    return {
        **os.environ,
        "DISCORD_TOKEN": token,
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DISCORD_GUILD_IDS": str(fake.guild.id),
        "REELBOT_DATA_DIR": str(data_dir),
        "REELBOT_MODEL": "tiny",
        "REELBOT_I2V_MODEL": "tiny-i2v",
        "REELBOT_REWRITER": "off",
        "REELBOT_DEVICE": "cpu",
        "REELBOT_WORKERS": "1",
        "REELBOT_LEASE_SECONDS": "3",
        "REELBOT_PROGRESS_EDIT_SECONDS": "0.5",
    }


async def start_reelbot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_rejected_token_is_one_sentence(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    env = reelbot_env(fake_discord, tmp_path / "data", token="not-the-token")
    process = await start_reelbot(env, tmp_path)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "Traceback" not in err.decode()
    assert err.decode().splitlines()[-1] == (
        "Discord rejected DISCORD_TOKEN: copy the token again from the Bot tab of the"
        " developer portal into .env."
    )


@pytest.fixture
async def reelbot_process(
    reel: Reel, reel_settings: object, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`reelbot run` in a child process against the fake, sharing the test's database."""
    env = reelbot_env(reel.fake, reel.settings.data_dir, token=reel.fake.token)
    process = await start_reelbot(env, tmp_path)
    try:
        await reel.fake.wait_connected(timeout=60)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)


def worker_pids(parent_pid: int) -> list[int]:
    children = Path(f"/proc/{parent_pid}/task/{parent_pid}/children").read_text().split()
    return [int(pid) for pid in children]


async def test_a_worker_killed_mid_job_ends_in_exactly_one_clip(
    reel: Reel, reelbot_process: asyncio.subprocess.Process
) -> None:
    fake = reel.fake
    handle = await fake.invoke("create", {"prompt": "a windmill", "duration": 5}, user=fake.alice)
    job = await reel.job_of(handle)
    await wait_until_running(reel.queue, job.id)
    (worker_pid,) = worker_pids(reelbot_process.pid)
    os.kill(worker_pid, signal.SIGKILL)

    # The bot keeps answering while its worker is dead and restarting.
    other = await fake.invoke("queue", user=fake.bob)
    assert "waiting" in (await other.response()).content

    await reel.clip_message(job.id)
    finished = await reel.delivered(job.id)
    assert finished.attempts == 2
    assert len([m for m in reel.clip_messages() if f"job:{job.id}:retry" in m.custom_ids()]) == 1

    reelbot_process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(reelbot_process.wait(), 60)
    assert reelbot_process.returncode == 0


async def wait_until_running(queue: JobQueue, job_id: int) -> None:
    """Until the worker has started generating: a kill now lands inside the job.

    Waiting for a denoising step instead races the tiny model, which can finish the whole
    clip before the kill arrives on a quiet machine.
    """
    async with asyncio.timeout(CLIP_TIMEOUT_S):
        async for job in queue.changes(since=0, poll_interval=0.02):
            if job.id == job_id and job.stage == Stage.GENERATING:
                return
