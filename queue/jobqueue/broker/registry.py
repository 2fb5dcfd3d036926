"""Which remote workers are alive, and what each can run.

Every remote worker writes its :class:`WorkerAd` into SAQ's worker info of the registry
queue every few seconds, with a time to live; the bot's dispatcher reads the list. A worker
that stops writing (killed, cut off, powered down) drops out of the list when its entry
expires; one shutting down says so at once (``stopping``) so nothing more is sent to it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from saq import Queue

from jobqueue.broker.connection import REGISTRY_QUEUE, worker_queue_name
from jobqueue.broker.routing import Capability


@dataclass(frozen=True)
class WorkerAd:
    """What a remote worker says about itself."""

    worker_id: str
    host: str
    pid: int
    capability: Capability
    started_at: float
    said_at: float = 0.0
    """When the worker wrote this (its clock): a new value means it is alive."""
    gpu_memory_bytes: int | None = None
    """GPU memory its process holds now (the models, the last job's activations)."""
    stopping: bool = False
    safety: dict[str, Any] = field(default_factory=dict)
    """Which output safety classifiers it runs (``classifiers``, ``thresholds``, ``error``)."""

    @property
    def queue(self) -> str:
        return worker_queue_name(self.worker_id)

    def to_metadata(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["capability"] = self.capability.to_wire()
        return data

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> WorkerAd:
        return cls(
            worker_id=str(data["worker_id"]),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            capability=Capability.from_wire(data.get("capability") or {}),
            started_at=float(data.get("started_at", 0.0)),
            said_at=float(data.get("said_at", 0.0)),
            gpu_memory_bytes=data.get("gpu_memory_bytes"),
            stopping=bool(data.get("stopping", False)),
            safety=dict(data.get("safety") or {}),
        )


async def advertise(registry: Queue, ad: WorkerAd, *, ttl_s: float) -> None:
    """Write ``ad`` into the registry for ``ttl_s`` seconds (SAQ keeps whole seconds)."""
    info: Any = {"stats": None, "queue_key": REGISTRY_QUEUE, "metadata": ad.to_metadata()}
    # Not the worker's own id: SAQ's Postgres queue keeps one stats row per id, and the
    # worker's SAQ worker writes its own row under it.
    entry = f"{ad.worker_id}.ad"
    await registry.write_worker_info(entry, info, ttl=max(1, math.ceil(ttl_s)))


async def registered_workers(registry: Queue) -> list[WorkerAd]:
    """The remote workers whose entries have not expired, oldest first."""
    info = await registry.info()
    ads = [
        WorkerAd.from_metadata(metadata)
        for entry in info["workers"].values()
        if (metadata := entry.get("metadata"))
    ]
    return sorted(ads, key=lambda ad: (ad.started_at, ad.worker_id))
