"""Checking prompts against the server's blocklist just before they reach the model.

The bot checks what users type before it submits; the language model's rewrite only
exists in the worker, so the worker checks it. A blocked rewrite is dropped (the user's own
words are used) and written to the moderation audit log. The user's own prompts are checked
again too: a prompt blocked by now (a moderator added a term after it was queued) fails
the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from jobqueue.models import Job
from jobqueue.moderation import Moderation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScreenVerdict:
    rewrite_blocked: bool = False
    refusal: str | None = None
    """Set when the user's own prompt is blocked: the sentence the job fails with."""
    detail: str = ""


class PromptScreen(Protocol):
    async def check(self, job: Job, rewritten: str | None) -> ScreenVerdict:
        """Check the job's prompts and, when there is one, the rewritten prompt."""
        ...


class ModerationScreen:
    """A :class:`PromptScreen` backed by the server's moderation blocklist."""

    def __init__(self, moderation: Moderation) -> None:
        self._moderation = moderation

    async def check(self, job: Job, rewritten: str | None) -> ScreenVerdict:
        hit = await self._moderation.check_prompts(
            job.guild_id,
            prompt=job.request.prompt,
            negative_prompt=job.request.negative_prompt,
            rewritten_prompt=rewritten,
        )
        if hit is None:
            return ScreenVerdict()
        detail = f"rule {hit.rule_id} ({hit.category}) matched the {hit.field}"
        if hit.field != "rewritten prompt":
            return ScreenVerdict(
                refusal=f"This prompt is not allowed on this server ({hit.category}).",
                detail=detail,
            )
        log.info("job %d: rewritten prompt blocked, %s", job.id, detail)
        await self._moderation.record_rewrite_block(job.guild_id, job.user_id, hit, job_id=job.id)
        return ScreenVerdict(rewrite_blocked=True, detail=detail)
