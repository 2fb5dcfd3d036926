"""Job statuses as SQL text, spelled from :class:`~jobqueue.models.JobStatus` and its sets.

Queries inline statuses as literals instead of binding them as parameters: SQLite uses a
partial index built ``WHERE status = <constant>`` only for a query whose own WHERE clause
names the same constant. The indexes and triggers in schema.py are written with these same
fragments, so queries and indexes cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Collection

from jobqueue.models import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus


def literal(status: JobStatus) -> str:
    """The status as an SQL string literal: its value in single quotes."""
    return f"'{status.value}'"


def status_is(status: JobStatus, *, column: str = "status") -> str:
    """``status = <literal>``; ``column`` may name another row's, as a trigger's ``NEW.status``."""
    return f"{column} = {literal(status)}"


def status_in(statuses: Collection[JobStatus], *, column: str = "status") -> str:
    """``status IN (<literals>)``, listed in the enum's order.

    Not the set's own order: a frozenset of strings iterates differently from one process
    to the next, and a migration must write the same SQL every time.
    """
    listed = ", ".join(literal(status) for status in JobStatus if status in statuses)
    return f"{column} IN ({listed})"


IS_QUEUED = status_is(JobStatus.QUEUED)
IS_RUNNING = status_is(JobStatus.RUNNING)
IS_DONE = status_is(JobStatus.DONE)
IS_ACTIVE = status_in(ACTIVE_STATUSES)
IS_TERMINAL = status_in(TERMINAL_STATUSES)
