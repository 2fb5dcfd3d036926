"""/storyboard: an idea planned as a list of shots, shown first, then shot into a film.

1. ``/storyboard idea:"…" [shots] [seconds] [style]`` is checked at the door (the options'
   ranges, the channel, bans, the server's blocklist), then planned here in the bot's process
   (:class:`Planner`: the rewriter's language model, loaded on the first plan, on the CPU, one
   plan at a time, within the planner's time limit; when it cannot plan, the simple plan with
   its sentence). The plan is posted in the channel with **Shoot** and **Edit plan**.
2. **Edit plan** (its owner or a moderator, before it is shot) opens a modal with the look and
   the shots, one line each; the plan message shows the new plan.
3. **Shoot** starts a thread from the plan message and hands the storyboard to the queue
   (:class:`jobqueue.storyboards.Storyboards`): each shot is a job of its owner's. Shots are
   never posted on their own; the plan message says "shot 2 of 4". The joined film (a FILM job)
   is posted into the thread by the delivery cog, with **Reshoot N** buttons.
4. **Reshoot N** re-renders shot N and the shots after it; the new film is posted in the
   thread again. A failed or cancelled shot ends the storyboard and its owner is told in the
   thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import discord
from discord import app_commands
from discord.ext import commands

from bot.channel_writes import NOT_SENT, Priority, Route
from bot.gate import admit_user
from bot.options import job_preset
from bot.permissions import is_moderator
from bot.render import NO_PINGS
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from bot.settings import Settings
from bot.storyboard_views import (
    SHOT_EVENT,
    PlanModal,
    StoryboardButton,
    edited_plan,
    plan_embed,
    plan_view,
    reshoot_view,
)
from jobqueue.errors import QueueError
from jobqueue.models import NO_MESSAGE, Job, JobKind, JobRequest, JobStatus
from jobqueue.storyboards import Storyboard, Storyboards, StoryboardState
from pipeline.errors import InvalidRequest
from pipeline.rewrite.base import TextBackend
from pipeline.rewrite.config import RewriterConfig
from pipeline.rewrite.rewriter import build_backend
from pipeline.storyboard import (
    DEFAULT_SHOTS,
    MAX_IDEA_CHARS,
    MAX_SHOTS,
    MAX_STYLE_CHARS,
    MIN_SHOT_SECONDS,
    MIN_SHOTS,
    Plan,
    checked_shot_count,
    fallback_plan,
    shot_length_range,
    write_plan,
)
from pipeline.text import checked_text

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Final = 1440
THREAD_NAME_MAX = 100
THREAD_ALREADY_CREATED = 160004
CANNOT_ON_CHANNEL_TYPE = 50024
GONE = "That storyboard no longer exists."
CANNOT_POST = "I may not post in this channel; ask a moderator which channel to use."
NOT_IN_THREAD = "Use /storyboard in a text channel: its film gets a thread of its own."


def not_the_plan(storyboard_id: int) -> str:
    return f"Press Shoot on storyboard #{storyboard_id}'s plan message to shoot it."


def not_yours(storyboard_id: int) -> str:
    return f"Only the person who planned storyboard #{storyboard_id} or a moderator can do that."


class Planner:
    """Writes plans in the bot's process with the rewriter's language model.

    The model is built on the first plan (never at start-up: most servers rarely plan), on the
    CPU (the GPU belongs to the workers), and plans are written one at a time, each within
    the planner's time limit (``REELBOT_PLAN_TIMEOUT_S``: a small model on the CPU writes a
    plan far slower than a rewrite). Loading runs on its own: a plan that runs out of time while the
    model loads leaves it loading for the next plan, so the model is loaded once. When the
    model cannot load, answer or finish in time, the plan is the simple one made from the
    idea, with its sentence.
    """

    def __init__(self, config: RewriterConfig, *, timeout_s: float) -> None:
        self.config = replace(config, device="cpu", timeout_s=timeout_s)
        self.timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._backend: TextBackend | None = None
        self._loading: asyncio.Task[TextBackend | None] | None = None

    async def plan(self, idea: str, *, shots: int, seconds: float, style: str | None) -> Plan:
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout_s):
                    backend = await self._loaded()
                    return await write_plan(
                        backend,
                        idea,
                        shots=shots,
                        seconds=seconds,
                        style=style,
                        timeout_s=self.timeout_s,
                    )
            except TimeoutError:
                log.warning("planning %r took over %.0f s", idea, self.timeout_s)
                reason = "the language model took too long"
                return fallback_plan(idea, shots=shots, seconds=seconds, style=style, reason=reason)

    async def _loaded(self) -> TextBackend | None:
        if self.config.backend == "off":
            return None
        if self._loading is None:
            self._loading = asyncio.create_task(self._load())
        # Shielded: a plan's time limit stops the wait, not the load.
        return await asyncio.shield(self._loading)

    async def _load(self) -> TextBackend | None:
        backend = build_backend(self.config)
        self._backend = backend  # kept while it loads, so aclose closes it
        try:
            await backend.warm_up()
        except Exception:
            # A plan still gets written (the simple one); the log says why.
            log.exception("the storyboard planner's model could not load")
            self._backend = None
            await backend.aclose()
            return None
        return backend

    async def aclose(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loading
            self._loading = None
        if self._backend is not None:
            await self._backend.aclose()
            self._backend = None


@dataclass
class ShownLine:
    """The progress line the plan message shows, the one it should show, when it was last
    edited, and the timer of an edit waiting for its turn."""

    text: str = ""
    wanted: str = ""
    edited_at: float = -math.inf
    timer: asyncio.TimerHandle | None = None


class StoryboardCog(commands.Cog, name="Storyboard"):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot
        self.storyboards = Storyboards(bot.queue, clips_dir=bot.settings.clips_dir)
        self.planner = Planner(
            bot.settings.rewriter_config(), timeout_s=bot.settings.plan_timeout_s
        )
        self.lines: dict[int, ShownLine] = {}

    async def cog_unload(self) -> None:
        for shown in self.lines.values():
            if shown.timer is not None:
                shown.timer.cancel()
        await self.planner.aclose()

    @app_commands.command(name="storyboard")
    @app_commands.guild_only()
    @app_commands.describe(
        idea="What the film is about: who, where, what happens",
        shots=f"How many shots ({MIN_SHOTS}-{MAX_SHOTS}, default {DEFAULT_SHOTS})",
        seconds="Seconds per shot (the model's longest clip if left out)",
        style="The look shared by every shot, e.g. 'watercolour, warm light'",
    )
    async def storyboard(
        self,
        interaction: discord.Interaction[ReelBot],
        idea: app_commands.Range[str, 1, MAX_IDEA_CHARS],
        shots: app_commands.Range[int, MIN_SHOTS, MAX_SHOTS] = DEFAULT_SHOTS,
        seconds: app_commands.Range[float, MIN_SHOT_SECONDS, 60.0] | None = None,
        style: app_commands.Range[str, 1, MAX_STYLE_CHARS] | None = None,
    ) -> None:
        """Plan a film of several shots from an idea; shoot it once the plan looks right."""
        if not await acknowledge(interaction):
            return
        sentence = await self.plan_and_post(interaction, idea, shots, seconds, style)
        await reply_privately(interaction, sentence)

    async def plan_and_post(
        self,
        interaction: discord.Interaction[ReelBot],
        idea: str,
        shots: int,
        seconds: float | None,
        style: str | None,
    ) -> str:
        """Check, plan and post; the sentence for the user."""
        channel = interaction.channel
        if isinstance(channel, discord.Thread) or not isinstance(channel, discord.abc.Messageable):
            return NOT_IN_THREAD
        try:
            asked = checked_options(self.bot.settings, idea, shots, seconds, style)
        except InvalidRequest as exc:
            return str(exc)
        refusal = await admit_user(
            self.bot,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            request=JobRequest(prompt=" ".join(filter(None, (asked.idea, asked.style)))),
            what="idea",
        )
        if refusal is not None:
            return refusal
        plan = await self.planner.plan(
            asked.idea, shots=asked.shots, seconds=asked.seconds, style=asked.style
        )
        try:
            storyboard = await self.storyboards.create(
                user_id=interaction.user.id,
                guild_id=interaction.guild_id,
                channel_id=channel.id,
                plan=plan,
            )
        except QueueError as exc:
            return str(exc)
        try:
            message = await self.bot.writes.run(
                channel.id,
                Route.SEND,
                Priority.FINAL,
                lambda: channel.send(
                    embed=plan_embed(storyboard.id, plan, owner_id=storyboard.user_id),
                    view=plan_view(storyboard.id),
                    allowed_mentions=NO_PINGS,
                ),
            )
        except discord.HTTPException as exc:
            # Nobody could ever press its Shoot: end it rather than leave it planned.
            await self.storyboards.cancel(storyboard.id)
            if not isinstance(exc, discord.Forbidden):
                raise
            log.info("may not post storyboard %s in %s", storyboard.id, channel.id, exc_info=True)
            return CANNOT_POST
        self.bot.writes.sent(channel.id, message.id)
        await self.storyboards.set_plan_message(storyboard.id, message.id)
        planned = f"Storyboard #{storyboard.id} is planned: {message.jump_url}"
        advice = "Press Shoot to film it, or Edit plan to change it first."
        return " ".join(filter(None, (planned, plan.note, advice)))

    @commands.Cog.listener(f"on_{SHOT_EVENT}")
    async def on_shot(self, job: Job) -> None:
        """A SHOT job changed: show its progress on the plan message; once it has ended,
        mark it delivered (shots are not posted) and tell the owner if the film stopped."""
        try:
            await self.follow_shot(job)
        except Exception:
            log.exception("following shot job %s failed", job.id)

    async def follow_shot(self, job: Job) -> None:
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            # End the storyboard now (idempotent), not at a worker's sweep, which waits a
            # minute and never runs while the workers are busy: Reshoot works at once.
            await self.storyboards.advance(job)
        storyboard = await self.storyboards.for_job(job.id)
        if job.status.is_terminal and not await self.bot.queue.mark_delivered(job.id, NO_MESSAGE):
            return  # seen before: its outcome was shown
        number = None if storyboard is None else storyboard.shot_number(job.id)
        if storyboard is None or number is None:
            return  # a shot of an earlier take: a reshoot replaced it
        total = storyboard.shots
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            await self.tell_owner_stopped(storyboard, job, number, total)
        self.show_line(storyboard, shot_line(job, number, total), final=job.status.is_terminal)

    async def tell_owner_stopped(
        self, storyboard: Storyboard, job: Job, number: int, total: int
    ) -> None:
        what = "was cancelled" if job.status is JobStatus.CANCELLED else "failed"
        why = f" ({job.error})" if job.error and job.status is JobStatus.FAILED else ""
        sentence = (
            f"<@{storyboard.user_id}> Storyboard #{storyboard.id} stopped: shot {number} of "
            f"{total} {what}{why}. Reshoot N starts again from shot N."
        )
        channel_id = storyboard.post_channel_id
        if channel_id is None:
            return
        channel = self.bot.get_partial_messageable(channel_id, guild_id=storyboard.guild_id)
        owner_only = discord.AllowedMentions(
            users=[discord.Object(storyboard.user_id)], roles=False, everyone=False
        )
        try:
            posted = await self.bot.writes.run(
                channel_id,
                Route.SEND,
                Priority.FINAL,
                lambda: channel.send(
                    sentence,
                    view=reshoot_view(storyboard.id, total),
                    allowed_mentions=owner_only,
                ),
            )
        except discord.HTTPException:
            log.warning("could not tell the owner of storyboard %s", storyboard.id, exc_info=True)
            return
        self.bot.writes.sent(channel_id, posted.id)

    def show_line(self, storyboard: Storyboard, text: str, *, final: bool = False) -> None:
        """Show ``text`` above the plan: at most one edit per ``progress_edit_seconds`` (a
        line that comes sooner waits for its turn; a newer one replaces it), a final line at
        once."""
        if storyboard.plan_message_id is None or storyboard.channel_id is None:
            return
        shown = self.lines.setdefault(storyboard.id, ShownLine())
        shown.wanted = text
        if shown.timer is not None:
            if not final:
                return  # the waiting edit will show the newest line
            shown.timer.cancel()
            shown.timer = None
        wait = shown.edited_at + self.bot.settings.progress_edit_seconds - time.monotonic()
        if wait > 0 and not final:
            loop = asyncio.get_running_loop()
            shown.timer = loop.call_later(wait, self.offer_edit, storyboard, shown, False)
            return
        self.offer_edit(storyboard, shown, final)

    def offer_edit(self, storyboard: Storyboard, shown: ShownLine, final: bool) -> None:
        shown.timer = None
        if shown.wanted == shown.text or storyboard.channel_id is None:
            return
        shown.edited_at = time.monotonic()
        message = self.bot.get_partial_messageable(
            storyboard.channel_id, guild_id=storyboard.guild_id
        ).get_partial_message(storyboard.plan_message_id or 0)

        async def edit() -> object:
            text = shown.wanted
            if text == shown.text:
                return NOT_SENT
            with contextlib.suppress(discord.NotFound, discord.Forbidden):
                await message.edit(content=text, allowed_mentions=NO_PINGS)
            shown.text = text
            return None

        priority = Priority.FINAL if final else Priority.UPDATE
        key = ("storyboard", storyboard.id)
        self.bot.writes.offer(storyboard.channel_id, Route.EDIT, priority, key, edit)


@dataclass(frozen=True)
class AskedStoryboard:
    idea: str
    shots: int
    seconds: float
    style: str | None


def checked_options(
    settings: Settings, idea: str, shots: int, seconds: float | None, style: str | None
) -> AskedStoryboard:
    """The options cleaned and checked whatever Discord's client enforced; raises
    InvalidRequest with the sentence for the first that is wrong."""
    idea = checked_text(idea, "idea", limit=MAX_IDEA_CHARS, required=True)
    style = checked_text(style or "", "style", limit=MAX_STYLE_CHARS, required=False) or None
    checked_shot_count(shots)
    longest = longest_shot_s(settings)
    chosen = longest if seconds is None else seconds
    if not MIN_SHOT_SECONDS <= chosen <= longest:
        raise InvalidRequest(
            f"A shot is {MIN_SHOT_SECONDS:g} to {longest:g} seconds on this server; "
            f"{chosen:g} was asked for."
        )
    return AskedStoryboard(idea, shots, chosen, style)


def longest_shot_s(settings: Settings) -> float:
    """The longest shot both the text-to-video and the image-to-video model can make, in
    tenths of a second (Wan's 81 frames at 16 fps: 5.0 s)."""
    first = job_preset(settings, JobKind.CREATE, None)
    rest = job_preset(settings, JobKind.ANIMATE, None)
    return shot_length_range(first, rest)[1]


def shot_line(job: Job, number: int, total: int) -> str:
    """The plan message's line for shot ``number`` of ``total`` (the job's state)."""
    shot = f"shot {number} of {total} (#{job.id})"
    if job.status is JobStatus.DONE:
        if number == total:
            return f"✅ All {total} shots are shot; the film goes into the thread."
        return f"🎬 Shooting: {shot} is done."
    if job.status is JobStatus.FAILED:
        return f"⚠️ Stopped: {shot} failed."
    if job.status is JobStatus.CANCELLED:
        return f"🛑 Stopped: {shot} was cancelled."
    if job.status is JobStatus.RUNNING:
        return f"🎬 Shooting {shot}: {job.percent}%."
    return f"⏳ Shooting: {shot} is waiting for a worker."


# --- buttons and the modal (bot.storyboard_views draws them) ---


def cog_of(bot: ReelBot) -> StoryboardCog:
    cog = bot.get_cog("Storyboard")
    if not isinstance(cog, StoryboardCog):
        raise RuntimeError("the storyboard cog is not loaded")
    return cog


async def press(
    bot: ReelBot, interaction: discord.Interaction[Any], button: StoryboardButton
) -> None:
    """Shoot, Edit plan or Reshoot N was pressed."""
    try:
        cog = cog_of(bot)
        if button.action == "edit":
            await open_plan_editor(bot, cog, interaction, button.storyboard_id)
            return
        if not await acknowledge(interaction):
            return
        if button.action == "shoot":
            sentence = await shoot(bot, cog, interaction, button.storyboard_id)
        else:
            sentence = await reshoot(bot, cog, interaction, button.storyboard_id, button.shot or 1)
        await reply_privately(interaction, sentence)
    except Exception:
        log.exception("the %s button of storyboard %s failed", button.action, button.storyboard_id)
        await reply_privately(interaction, SOMETHING_WRONG)


async def may_direct(bot: ReelBot, user: discord.abc.User, storyboard: Storyboard) -> bool:
    """Its owner or a moderator may shoot, edit and reshoot a storyboard."""
    return user.id == storyboard.user_id or await is_moderator(bot, user, storyboard.guild_id)


async def refusal_for(
    bot: ReelBot, interaction: discord.Interaction[Any], storyboard: Storyboard | None
) -> str | None:
    if storyboard is None:
        return GONE
    if not await may_direct(bot, interaction.user, storyboard):
        return not_yours(storyboard.id)
    return None


async def admit_plan(bot: ReelBot, storyboard: Storyboard, plan: Plan) -> str | None:
    """The gate's checks for the owner, on every word the video model will get."""
    words = "\n".join(plan.shot_prompt(index) for index in range(len(plan.shots)))
    return await admit_user(
        bot,
        guild_id=storyboard.guild_id,
        channel_id=storyboard.channel_id,
        user_id=storyboard.user_id,
        request=JobRequest(prompt=words),
        what="storyboard",
    )


async def shoot(
    bot: ReelBot, cog: StoryboardCog, interaction: discord.Interaction[Any], storyboard_id: int
) -> str:
    storyboard = await cog.storyboards.get(storyboard_id)
    refusal = await refusal_for(bot, interaction, storyboard)
    if refusal is not None or storyboard is None:
        return refusal or GONE
    if storyboard.state is not StoryboardState.PLANNED:
        return f"Storyboard #{storyboard.id} is already {storyboard.state}."
    refusal = await admit_plan(bot, storyboard, storyboard.plan)
    if refusal is not None:
        return refusal
    plan_message = interaction.message
    if plan_message is None:
        return GONE
    if plan_message.id != storyboard.plan_message_id:
        # The thread starts from the pressed message: only the plan's may start it.
        return not_the_plan(storyboard.id)
    thread = await thread_for(bot, plan_message, storyboard)
    try:
        first = await cog.storyboards.shoot(
            storyboard.id, thread_id=None if thread is None else thread.id
        )
    except QueueError as exc:
        return str(exc)
    await bot.writes.run(
        storyboard.channel_id,
        Route.EDIT,
        Priority.FINAL,
        # The buttons go: the plan is being shot (Reshoot N sits under the film).
        lambda: plan_message.edit(view=None),
    )
    if storyboard.id not in cog.lines:  # else the shot's own progress is showing already
        cog.show_line(storyboard, shot_line(first, 1, storyboard.shots), final=True)
    where = "this channel (I may not start threads here)" if thread is None else thread.mention
    return f"Shooting storyboard #{storyboard.id}: the film will be posted in {where}."


async def thread_for(
    bot: ReelBot, message: discord.Message, storyboard: Storyboard
) -> discord.Thread | None:
    """The storyboard's thread, started from its plan message (or the one already started,
    when two presses raced); None where the bot may not start threads (a server that invited
    it before storyboards existed, a voice channel's chat): the film then goes into the
    channel."""
    name = f"Storyboard #{storyboard.id}: {storyboard.plan.idea}"[:THREAD_NAME_MAX]
    try:
        return await message.create_thread(name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES)
    except discord.Forbidden:
        log.info("may not start a thread in channel %s", message.channel.id, exc_info=True)
        return None
    except discord.HTTPException as exc:
        if exc.code == CANNOT_ON_CHANNEL_TYPE:
            # A voice or stage channel's chat takes no threads: the film goes into the chat.
            log.info("no threads in channel %s", message.channel.id)
            return None
        if exc.code != THREAD_ALREADY_CREATED:
            raise
    found = await bot.fetch_channel(message.id)
    if not isinstance(found, discord.Thread):
        raise RuntimeError(f"channel {message.id} is not a thread")
    return found


async def reshoot(
    bot: ReelBot,
    cog: StoryboardCog,
    interaction: discord.Interaction[Any],
    storyboard_id: int,
    shot: int,
) -> str:
    storyboard = await cog.storyboards.get(storyboard_id)
    refusal = await refusal_for(bot, interaction, storyboard)
    if refusal is not None or storyboard is None:
        return refusal or GONE
    refusal = await admit_plan(bot, storyboard, storyboard.plan)
    if refusal is not None:
        return refusal
    try:
        await cog.storyboards.reshoot(storyboard.id, shot)
    except QueueError as exc:
        return str(exc)
    total = storyboard.shots
    cog.show_line(storyboard, f"⏳ Reshooting from shot {shot} of {total}.", final=True)
    return (
        f"Reshooting storyboard #{storyboard.id} from shot {shot}: "
        "the new film will be posted where the first one was."
    )


async def open_plan_editor(
    bot: ReelBot, cog: StoryboardCog, interaction: discord.Interaction[Any], storyboard_id: int
) -> None:
    # A modal must be the first response: one read and the owner check, then open it.
    storyboard = await cog.storyboards.get(storyboard_id)
    refusal = await refusal_for(bot, interaction, storyboard)
    if (
        refusal is None
        and storyboard is not None
        and storyboard.state is not StoryboardState.PLANNED
    ):
        refusal = f"Storyboard #{storyboard.id} is already {storyboard.state}; use Reshoot."
    if refusal is not None or storyboard is None:
        await reply_privately(interaction, refusal or GONE)
        return
    modal = PlanModal(storyboard.id, storyboard.plan, key=str(interaction.id))
    await interaction.response.send_modal(modal)


async def submit_plan_edit(
    bot: ReelBot,
    interaction: discord.Interaction[Any],
    storyboard_id: int,
    *,
    sheet: str,
    shots: str,
) -> None:
    """The Edit plan modal was submitted: check the plan, keep it, show it."""
    if not await acknowledge(interaction):
        return
    cog = cog_of(bot)
    storyboard = await cog.storyboards.get(storyboard_id)
    refusal = await refusal_for(bot, interaction, storyboard)
    if refusal is not None or storyboard is None:
        await reply_privately(interaction, refusal or GONE)
        return
    try:
        plan = edited_plan(
            storyboard.plan, sheet=sheet, shots=shots, longest_s=longest_shot_s(bot.settings)
        )
    except InvalidRequest as exc:
        await reply_privately(interaction, str(exc))
        return
    refusal = await admit_plan(bot, storyboard, plan)
    if refusal is not None:
        await reply_privately(interaction, refusal)
        return
    try:
        storyboard = await cog.storyboards.replace_plan(storyboard.id, plan)
    except QueueError as exc:
        await reply_privately(interaction, str(exc))
        return
    if interaction.message is not None:
        message = interaction.message
        embed = plan_embed(storyboard.id, plan, owner_id=storyboard.user_id)
        await bot.writes.run(
            storyboard.channel_id, Route.EDIT, Priority.FINAL, lambda: message.edit(embed=embed)
        )
    await reply_privately(interaction, f"Storyboard #{storyboard.id}'s plan is updated.")


async def setup(bot: ReelBot) -> None:
    bot.add_dynamic_items(StoryboardButton)
    await bot.add_cog(StoryboardCog(bot))
