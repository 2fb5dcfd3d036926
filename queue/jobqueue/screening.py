"""Checking a job's prompts against its server's blocklist just before they reach the model.

The bot checks what users type before it submits; the language model's rewrite only exists
in the worker, so the pipeline asks the job's :class:`ModerationScreen` (its
:class:`~pipeline.clip.PromptScreen`) once the rewrite is written. A blocked rewrite is
dropped (the user's own words are used) and written to the moderation audit log. The user's
own prompts are checked again too: a prompt blocked by now (a moderator added a term after it
was queued) fails the job.
"""

from __future__ import annotations

import logging
from typing import Protocol

from jobqueue.models import Job
from jobqueue.moderation import BlockHit
from pipeline.clip import ScreenVerdict

log = logging.getLogger(__name__)


class PromptRules(Protocol):
    """A server's blocklist as the screen uses it: :class:`~jobqueue.moderation.Moderation`
    on the bot's host, the copy sent with the job on a remote worker."""

    async def check_prompts(
        self,
        guild_id: int | None,
        *,
        prompt: str,
        negative_prompt: str = "",
        rewritten_prompt: str | None = None,
    ) -> BlockHit | None: ...

    async def record_rewrite_block(
        self, guild_id: int | None, user_id: int, hit: BlockHit, *, job_id: int
    ) -> None: ...


class ModerationScreen:
    """The pipeline's prompt screen for one job, backed by its server's moderation blocklist."""

    def __init__(self, moderation: PromptRules, job: Job) -> None:
        self._moderation = moderation
        self._job = job

    async def check(
        self, prompt: str, negative_prompt: str, rewritten: str | None
    ) -> ScreenVerdict:
        job = self._job
        hit = await self._moderation.check_prompts(
            job.guild_id,
            prompt=prompt,
            negative_prompt=negative_prompt,
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
