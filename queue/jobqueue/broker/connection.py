"""The broker reelbot shares between hosts: SAQ queues on one Redis or Postgres connection.

One :class:`Broker` per process opens the connection once and hands out SAQ queues on it:
the registry (``reelbot``), where every remote worker advertises itself, and one queue per
remote worker (``reelbot.worker.<id>``), into which the bot's dispatcher puts exactly the jobs
it chose for that worker. A Redis client retries a failed connection a few times with a
growing pause, so a process whose broker is down waits instead of spinning.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from saq import Queue

if TYPE_CHECKING:
    from saq.queue.postgres import PostgresQueue

log = logging.getLogger(__name__)

REGISTRY_QUEUE = "reelbot"
"""The queue whose worker list is the registry of remote workers (it never holds jobs)."""
WORKER_QUEUE_PREFIX = "reelbot.worker."
CONNECT_TIMEOUT_S = 5.0
RETRIES = 3

BROKER_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)
"""What a call to an unreachable broker raises (extended below by the client libraries')."""
try:
    from redis.exceptions import RedisError

    BROKER_ERRORS += (RedisError,)
except ImportError:  # pragma: no cover - saq[redis] is a dependency
    pass
try:
    from psycopg import Error as PsycopgError
    from psycopg_pool import PoolTimeout

    BROKER_ERRORS += (PsycopgError, PoolTimeout)
except ImportError:  # Postgres support is the optional extra reelbot[postgres].
    pass


class RateLimitedLog:
    """Logs a recurring problem at most once per ``every_s`` (a broker that stays down)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._last = -every_s

    def due(self) -> bool:
        """True at most once per ``every_s``."""
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True

    def warning(self, message: str, *args: object) -> None:
        if self.due():
            log.warning(message, *args)


def worker_queue_name(worker_id: str) -> str:
    """The SAQ queue that holds the jobs sent to one remote worker."""
    return f"{WORKER_QUEUE_PREFIX}{worker_id}"


def shown_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Broker:
    """SAQ queues on one connection to the broker at ``url`` (redis:// or postgresql://)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown_url = shown_url(url)
        self._queues: dict[str, Queue] = {}
        self._registry: Queue | None = None

    async def open(self) -> Broker:
        """Connect (the first call to an unreachable broker raises one of BROKER_ERRORS)."""
        if self._registry is None:
            self._registry = _first_queue(self.url, REGISTRY_QUEUE)
            self._queues[REGISTRY_QUEUE] = self._registry
        await self._registry.connect()
        return self

    @property
    def registry(self) -> Queue:
        if self._registry is None:
            raise RuntimeError("open the broker first")
        return self._registry

    async def queue(self, name: str) -> Queue:
        """The SAQ queue ``name``, sharing this broker's connection."""
        found = self._queues.get(name)
        if found is None:
            found = _sibling_queue(self.registry, name)
            await found.connect()
            self._queues[name] = found
        return found

    async def close(self) -> None:
        # Every queue shares the registry's client or pool: closing it closes them all.
        registry, self._registry = self._registry, None
        self._queues.clear()
        if registry is None:
            return
        try:
            await registry.disconnect()
        except Exception:
            log.debug("closing the broker connection failed", exc_info=True)


def _first_queue(url: str, name: str) -> Queue:
    if url.lower().startswith(("postgres://", "postgresql://")):
        return _postgres_queue(url, name)
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from saq.queue.redis import RedisQueue

    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.2), RETRIES),
        health_check_interval=30,
    )
    return RedisQueue(client, name=name)


def _postgres_queue(url: str, name: str) -> PostgresQueue:
    try:
        from psycopg_pool import AsyncConnectionPool
        from saq.queue.postgres import PostgresQueue
    except ImportError as exc:
        raise RuntimeError(
            "A postgresql:// broker needs the Postgres driver: pip install 'reelbot[postgres]'."
        ) from exc
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        open=False,
        kwargs={"autocommit": True},
        check=AsyncConnectionPool.check_connection,
        timeout=CONNECT_TIMEOUT_S,
    )
    # The queue opens the pool it was given a URL for; one made here is shared, so reelbot
    # opens and closes it (see Broker.close).
    return PostgresQueue(pool=pool, name=name, manage_pool_lifecycle=True)


def _sibling_queue(first: Queue, name: str) -> Queue:
    from saq.queue.redis import RedisQueue

    if isinstance(first, RedisQueue):
        sibling: RedisQueue = RedisQueue(first.redis, name=name)
        return sibling
    from saq.queue.postgres import PostgresQueue

    assert isinstance(first, PostgresQueue)
    return PostgresQueue(pool=first.pool, name=name, manage_pool_lifecycle=False)
