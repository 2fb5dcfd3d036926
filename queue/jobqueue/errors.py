"""Why the queue refused something, in a sentence the bot can show as it is."""

from __future__ import annotations


class QueueError(Exception):
    """A refusal a user can read: ``str(error)`` is one sentence."""


class LimitExceeded(QueueError):
    """A per-user, daily or queue-wide limit would be passed."""


class QueuePaused(QueueError):
    """The server's moderators have paused the queue."""


class JobNotFound(QueueError):
    """No job has that id."""


class NotAllowed(QueueError):
    """Someone tried to act on another user's job without moderator rights."""
