"""/healthz: whether the bot is connected, the database takes writes, a worker is alive and,
with remote workers, the broker answers.

A worker counts as alive when it was seen within the last minute and has not stopped; one on
this host must also still be running (a worker killed with ``kill -9`` never says it
stopped, and its process is gone at once). The bot's connection and the broker (as the
dispatcher last found it, within a poll interval) are checked only where the bot runs,
inside ``reelbot run``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobqueue.models import WorkerInfo
from jobqueue.telemetry import Telemetry

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Health:
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "checks": {
                check.name: {"ok": check.ok, "detail": check.detail} for check in self.checks
            },
        }


class HealthCheck:
    """The checks behind /healthz; ``bot_connected`` is given where the bot runs, and
    ``broker_reachable`` where it also dispatches to remote workers."""

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        bot_connected: Callable[[], bool] | None = None,
        broker_reachable: Callable[[], bool] | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.bot_connected = bot_connected
        self.broker_reachable = broker_reachable
        self.host = socket.gethostname()

    async def check(self) -> Health:
        checks = []
        if self.bot_connected is not None:
            checks.append(self._bot())
        checks.append(await self._database())
        checks.append(await self._workers())
        if self.broker_reachable is not None:
            checks.append(self._broker(self.broker_reachable()))
        return Health(checks)

    def _broker(self, reachable: bool) -> CheckResult:
        if reachable:
            return CheckResult("broker", True, "reachable")
        # The address may carry a password: the log names it, /healthz does not.
        return CheckResult("broker", False, "unreachable; jobs wait in the queue until it is back")

    def _bot(self) -> CheckResult:
        assert self.bot_connected is not None
        if self.bot_connected():
            return CheckResult("bot", True, "connected to Discord")
        return CheckResult("bot", False, "not connected to Discord")

    async def _database(self) -> CheckResult:
        try:
            await asyncio.wait_for(self.telemetry.probe_write(), WRITE_TIMEOUT_S)
        except Exception:
            # /healthz is public: the error's text (paths, SQL) goes to the log only.
            log.exception("health check: the database cannot be written")
            return CheckResult("database", False, "cannot write (the log says why)")
        return CheckResult("database", True, "writable")

    async def _workers(self) -> CheckResult:
        found = [item.worker for item in await self.telemetry.workers()]
        alive = [worker for worker in found if self._running(worker)]
        if not alive:
            return CheckResult("workers", False, "no worker is alive")
        names = ", ".join(worker.worker_id for worker in alive)
        return CheckResult("workers", True, f"{len(alive)} alive: {names}")

    def _running(self, worker: WorkerInfo) -> bool:
        if worker.host != self.host or worker.pid is None:
            return True
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
