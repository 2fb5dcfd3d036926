"""/admin: moderation for server managers and the moderator role.

Discord shows the group only to members with Manage Server (its default permission), but a
server can grant it to anyone and an interaction's claims are not proof, so every call is
checked again here against the member as Discord's REST API reports them: Manage Server,
Administrator, or the server's moderator role. Anyone else gets one sentence, and the
attempt is audited. Every change writes an audit row, which :class:`~bot.modlog.ModLog`
posts to the mod-log channel. All answers are private.

Each command is written once. A request that cannot be done raises
:class:`~jobqueue.moderation.ModerationError` (or the queue's ``QueueError``) with its
sentence; the command tree's error handler (:class:`bot.client.ReelTree`) shows it, and turns
anything unexpected into one apology with the traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import admin_render, output_safety
from bot.drafts import server_drafts_sentence
from bot.modlog import ModLog
from bot.permissions import is_moderator
from bot.render import NO_PINGS, mention
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from jobqueue.clipfiles import delete_job_files, delete_uploaded_pictures
from jobqueue.gallery import Gallery, GalleryChannels
from jobqueue.models import NO_MESSAGE, Job, JobStatus
from jobqueue.moderation import AuditAction, Ban, ModerationError, parse_duration
from jobqueue.safety import MODE_MEANINGS, IfUnchecked, SafetyMode

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

NOT_ALLOWED = "Only server managers and moderators can use /admin."
DRAFTS_CHOICES: dict[str, bool | None] = {"on": True, "off": False, "default": None}
LOG_ENTRIES = 300


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(
    commands.GroupCog,
    group_name="admin",
    group_description="Moderate reelbot: bans, blocked terms, limits, the queue and the log",
):
    blocklist = app_commands.Group(name="blocklist", description="Terms and patterns refused")
    limits = app_commands.Group(name="limits", description="How many clips users may queue")
    queue = app_commands.Group(name="queue", description="Pause, resume or clear the queue")
    channels = app_commands.Group(name="channels", description="Where clips may be made")
    modrole = app_commands.Group(name="modrole", description="The role of moderators")
    modlog = app_commands.Group(name="modlog", description="Where moderation is logged")
    safety = app_commands.Group(
        name="safety", description="The check of every clip before it is posted"
    )
    gallery = app_commands.Group(
        name="gallery", description="Which channels' clips the public web gallery shows"
    )

    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot
        self.mod_log = ModLog(bot)
        super().__init__()

    async def cog_load(self) -> None:
        self.mod_log.start()

    async def cog_unload(self) -> None:
        await self.mod_log.stop()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Every /admin call: acknowledged privately at once (fetching the member can take a
        while), then allowed for a manager, an administrator or a moderator, by Discord's word.

        A refusal raised here, like any error in a command, reaches the user through the
        command tree's error handler, which edits the "thinking…" answer.
        """
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not await acknowledge(interaction):
            # Too late, or answered already: nobody waits for this one, so nothing is done.
            return False
        try:
            if await is_moderator(self.bot, interaction.user, interaction.guild_id):
                return True
            command = interaction.command.qualified_name if interaction.command else "admin"
            log.warning("user %s tried /%s without the rights", interaction.user.id, command)
            await self.audit(
                interaction,
                AuditAction.DENIED,
                target_user_id=interaction.user.id,
                detail=f"/{command}",
            )
        except Exception as exc:
            # discord.py hands only AppCommandErrors from a check to the error handler; the
            # user would watch "thinking…" until the interaction expires.
            log.exception("could not check the rights of user %s", interaction.user.id)
            raise app_commands.CheckFailure(SOMETHING_WRONG) from exc
        raise app_commands.CheckFailure(NOT_ALLOWED)

    # --- bans ---------------------------------------------------------------------------

    @app_commands.command(name="ban")
    @app_commands.describe(
        user="Who may no longer make clips",
        duration="How long: 30m, 2h, 7d, 1w… or permanent (the default)",
        reason="Why; shown in the moderation log",
    )
    async def ban(
        self,
        interaction: discord.Interaction[ReelBot],
        user: discord.User,
        duration: app_commands.Range[str, 1, 20] = "permanent",
        reason: app_commands.Range[str, 0, 400] = "",
    ) -> None:
        """Stop a user from making clips in this server, for a while or for good."""
        if user.bot:
            raise ModerationError("Bots cannot be banned from making clips.")
        if user.id == interaction.user.id:
            raise ModerationError("You cannot ban yourself.")
        ban = await self.bot.moderation.ban(
            interaction.guild_id,
            user.id,
            actor_id=interaction.user.id,
            duration_s=parse_duration(duration),
            reason=reason,
        )
        await reply_privately(
            interaction, f"{mention(user.id)} is banned from making clips {ban_end(ban)}."
        )

    @app_commands.command(name="unban")
    @app_commands.describe(user="Who may make clips again", reason="Why; shown in the log")
    async def unban(
        self,
        interaction: discord.Interaction[ReelBot],
        user: discord.User,
        reason: app_commands.Range[str, 0, 400] = "",
    ) -> None:
        """Lift a user's ban."""
        lifted = await self.bot.moderation.unban(
            interaction.guild_id, user.id, actor_id=interaction.user.id, reason=reason
        )
        if lifted is None:
            raise ModerationError(f"{mention(user.id)} is not banned.")
        await reply_privately(interaction, f"{mention(user.id)} may make clips again.")

    # --- blocklist ----------------------------------------------------------------------

    @blocklist.command(name="add")
    @app_commands.describe(
        term="A word or phrase, or a regular expression with regex:True",
        regex="Treat the term as a regular expression (matched against lowercase text)",
        category="What users are told their prompt matched, e.g. 'gore'",
    )
    async def blocklist_add(
        self,
        interaction: discord.Interaction[ReelBot],
        term: app_commands.Range[str, 1, 300],
        regex: bool = False,
        category: app_commands.Range[str, 0, 100] = "",
    ) -> None:
        """Refuse prompts containing a term or matching a pattern."""
        rule = await self.bot.moderation.blocklist_add(
            interaction.guild_id,
            term,
            actor_id=interaction.user.id,
            kind="regex" if regex else "term",
            category=category,
        )
        await reply_privately(
            interaction,
            f"Added {rule.kind} #{rule.id} ({rule.category}); prompts matching it are refused"
            " from now on.",
        )

    @blocklist.command(name="remove")
    @app_commands.describe(term="The rule's number (#12) or its exact text")
    async def blocklist_remove(
        self, interaction: discord.Interaction[ReelBot], term: app_commands.Range[str, 1, 300]
    ) -> None:
        """Remove a term or pattern from the blocklist."""
        rule = await self.bot.moderation.blocklist_remove(
            interaction.guild_id, term, actor_id=interaction.user.id
        )
        await reply_privately(
            interaction, f"Removed {rule.kind} #{rule.id} ({rule.category}) from the blocklist."
        )

    @blocklist.command(name="list")
    @app_commands.describe(page="Which page of the list")
    async def blocklist_list(
        self, interaction: discord.Interaction[ReelBot], page: app_commands.Range[int, 1, 1000] = 1
    ) -> None:
        """Show the blocked terms and patterns, with their numbers."""
        rules = await self.bot.moderation.blocklist_list(interaction.guild_id)
        await show_embed(interaction, admin_render.blocklist_embed(rules, page))

    # --- limits -------------------------------------------------------------------------

    @limits.command(name="set")
    @app_commands.describe(
        user="One user (leave out for everyone)",
        waiting="Clips waiting at once",
        running="Clips being made at once",
        daily="Clips per 24 hours; 0 means no daily limit",
    )
    async def limits_set(
        self,
        interaction: discord.Interaction[ReelBot],
        user: discord.User | None = None,
        waiting: app_commands.Range[int, 0, 1000] | None = None,
        running: app_commands.Range[int, 0, 100] | None = None,
        daily: app_commands.Range[int, 0, 100000] | None = None,
    ) -> None:
        """Set how many clips a user, or everyone, may queue."""
        given = {"waiting": waiting, "running": running, "daily": daily}
        if all(value is None for value in given.values()):
            raise ModerationError("Give at least one of waiting, running or daily.")
        user_id = None if user is None else user.id
        await self.bot.queue.set_limits(
            user_id=user_id, waiting=waiting, running=running, daily=daily
        )
        await self.audit(
            interaction,
            AuditAction.LIMITS_SET,
            target_user_id=user_id,
            detail=", ".join(
                f"{name} {value}" for name, value in given.items() if value is not None
            ),
        )
        limits = await self.bot.queue.limits_for(0 if user_id is None else user_id)
        await reply_privately(interaction, admin_render.limits_sentence(limits, user_id=user_id))

    # --- queue --------------------------------------------------------------------------

    @queue.command(name="pause")
    async def queue_pause(self, interaction: discord.Interaction[ReelBot]) -> None:
        """Accept and start no new clips; clips being made finish."""
        await self.bot.queue.pause()
        await self.audit(interaction, AuditAction.QUEUE_PAUSE)
        await reply_privately(
            interaction,
            "The queue is paused: no new clips are accepted or started; clips being made finish.",
        )

    @queue.command(name="resume")
    async def queue_resume(self, interaction: discord.Interaction[ReelBot]) -> None:
        """Accept and start clips again."""
        await self.bot.queue.resume()
        await self.audit(interaction, AuditAction.QUEUE_RESUME)
        await reply_privately(interaction, "The queue is running again.")

    @queue.command(name="clear")
    @app_commands.describe(user="Only this user's clips (leave out for everyone's)")
    async def queue_clear(
        self, interaction: discord.Interaction[ReelBot], user: discord.User | None = None
    ) -> None:
        """Cancel every waiting clip, or one user's."""
        user_id = None if user is None else user.id
        count = await self.bot.queue.clear(user_id=user_id)
        await self.audit(
            interaction,
            AuditAction.QUEUE_CLEAR,
            target_user_id=user_id,
            detail=f"{count} cancelled",
        )
        whose = "" if user is None else f" of {mention(user.id)}"
        await reply_privately(
            interaction, f"Cancelled {count} waiting clip{'' if count == 1 else 's'}{whose}."
        )

    # --- jobs ---------------------------------------------------------------------------

    @app_commands.command(name="cancel")
    @app_commands.describe(job="The job number")
    async def cancel(
        self, interaction: discord.Interaction[ReelBot], job: app_commands.Range[int, 1]
    ) -> None:
        """Cancel anyone's clip that is waiting or being made."""
        found = await self.job_in_this_server(interaction, job)
        cancelled = await self.bot.queue.cancel(
            found.id, by_user_id=interaction.user.id, is_moderator=True
        )
        await self.audit(
            interaction,
            AuditAction.JOB_CANCEL,
            target_user_id=found.user_id,
            target_job_id=found.id,
        )
        if cancelled.status is JobStatus.CANCELLED:
            sentence = f"Cancelled job #{found.id}."
        else:
            sentence = f"Job #{found.id} stops at its next step."
        await reply_privately(interaction, sentence)

    @app_commands.command(name="delete")
    @app_commands.describe(job="The job number")
    async def delete(
        self, interaction: discord.Interaction[ReelBot], job: app_commands.Range[int, 1]
    ) -> None:
        """Delete a job's posted clip and status message, and its files."""
        found = await self.job_in_this_server(interaction, job)
        if found.status.is_active:
            await self.bot.queue.cancel(found.id, by_user_id=interaction.user.id, is_moderator=True)
        # Claiming delivery first means the bot never posts this job's clip after this point.
        await self.bot.queue.mark_delivered(found.id, NO_MESSAGE)
        await Gallery(self.bot.queue.db).mark_deleted(found.id)
        found = await self.job_in_this_server(interaction, job)
        for message_id in (found.result_message_id, found.status_message_id):
            await self.delete_message(found, message_id)
        await asyncio.to_thread(delete_job_files, self.bot.settings.clips_dir, found.id)
        await asyncio.to_thread(delete_uploaded_pictures, found)
        await self.audit(
            interaction,
            AuditAction.JOB_DELETE,
            target_user_id=found.user_id,
            target_job_id=found.id,
        )
        await reply_privately(
            interaction, f"Deleted job #{found.id}: its messages and files are gone."
        )

    async def delete_message(self, job: Job, message_id: int | None) -> None:
        if not message_id or job.channel_id is None:
            return
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        try:
            await channel.get_partial_message(message_id).delete()
        except discord.NotFound:
            log.info("message %s of job %s was already gone", message_id, job.id)
        await self.bot.store.forget_clip(message_id)

    async def job_in_this_server(
        self, interaction: discord.Interaction[ReelBot], job_id: int
    ) -> Job:
        job = await self.bot.queue.get(job_id)
        if job is None or job.guild_id != interaction.guild_id:
            raise ModerationError(f"There is no job #{job_id} in this server.")
        return job

    # --- channels, roles, log -----------------------------------------------------------

    @channels.command(name="allow")
    @app_commands.describe(channel="Where clips may be made")
    async def channels_allow(
        self, interaction: discord.Interaction[ReelBot], channel: discord.TextChannel
    ) -> None:
        """Allow clips in a channel (once any channel is allowed, only allowed ones work)."""
        await self.bot.moderation.set_channel_allowed(
            interaction.guild_id, channel.id, True, actor_id=interaction.user.id
        )
        await reply_privately(interaction, f"Clips may be made in {channel.mention}.")

    @channels.command(name="deny")
    @app_commands.describe(channel="Where clips may not be made")
    async def channels_deny(
        self, interaction: discord.Interaction[ReelBot], channel: discord.TextChannel
    ) -> None:
        """Refuse clips in a channel."""
        await self.bot.moderation.set_channel_allowed(
            interaction.guild_id, channel.id, False, actor_id=interaction.user.id
        )
        await reply_privately(interaction, f"Clips can no longer be made in {channel.mention}.")

    @modrole.command(name="set")
    @app_commands.describe(role="Members with this role may use /admin (leave out to clear)")
    async def modrole_set(
        self, interaction: discord.Interaction[ReelBot], role: discord.Role | None = None
    ) -> None:
        """Choose the role of moderators who are not server managers."""
        await self.bot.moderation.set_mod_role(
            interaction.guild_id, None if role is None else role.id, actor_id=interaction.user.id
        )
        if role is None:
            sentence = "There is no moderator role now; only server managers can use /admin."
        else:
            sentence = (
                f"Members with {role.mention} are moderators now. To let them see /admin, allow"
                " the role under Server Settings → Integrations → reelbot."
            )
        await reply_privately(interaction, sentence)

    @modlog.command(name="set")
    @app_commands.describe(channel="Where moderation is logged (leave out to stop logging)")
    async def modlog_set(
        self, interaction: discord.Interaction[ReelBot], channel: discord.TextChannel | None = None
    ) -> None:
        """Choose the channel that gets a line for every moderation action."""
        await self.bot.moderation.set_mod_log_channel(
            interaction.guild_id,
            None if channel is None else channel.id,
            actor_id=interaction.user.id,
        )
        if channel is None:
            sentence = "Moderation is no longer posted to a channel; /admin log still shows it."
        else:
            sentence = f"Moderation is logged in {channel.mention} from now on."
        await reply_privately(interaction, sentence)

    @app_commands.command(name="log")
    @app_commands.describe(user="Only actions by or about this user", page="Which page")
    async def show_log(
        self,
        interaction: discord.Interaction[ReelBot],
        user: discord.User | None = None,
        page: app_commands.Range[int, 1, 1000] = 1,
    ) -> None:
        """Show recent moderation actions and refusals, newest first."""
        user_id = None if user is None else user.id
        entries = await self.bot.moderation.recent_actions(
            interaction.guild_id, user_id=user_id, limit=LOG_ENTRIES
        )
        await show_embed(interaction, admin_render.log_embed(entries, page, user_id=user_id))

    @app_commands.command(name="stats")
    async def stats(self, interaction: discord.Interaction[ReelBot]) -> None:
        """Jobs today, failures, average time per clip, the queue and the workers."""
        await show_embed(interaction, admin_render.stats_embed(await self.bot.queue.stats()))

    # --- drafts -------------------------------------------------------------------------

    @app_commands.command(name="drafts")
    @app_commands.describe(
        first="on: /create makes four quick drafts first; off: it renders at once; default:"
        " the bot's REELBOT_DRAFTS (leave out to see the current choice)"
    )
    @app_commands.choices(
        first=[app_commands.Choice(name=name, value=name) for name in DRAFTS_CHOICES]
    )
    async def drafts(
        self, interaction: discord.Interaction[ReelBot], first: str | None = None
    ) -> None:
        """Whether /create makes four quick drafts first here (users may choose otherwise)."""
        assert interaction.guild_id is not None  # interaction_check refuses DMs
        if first is not None:
            chosen = DRAFTS_CHOICES[first]
            await self.bot.store.set_server_drafts(interaction.guild_id, chosen)
            await self.audit(interaction, AuditAction.DRAFTS_SET, detail=first)
        own = await self.bot.store.server_drafts(interaction.guild_id)
        await reply_privately(
            interaction, server_drafts_sentence(own, default=self.bot.settings.drafts)
        )

    # --- output safety ------------------------------------------------------------------

    @safety.command(name="show")
    async def safety_show(self, interaction: discord.Interaction[ReelBot]) -> None:
        """What the safety check does here: mode, thresholds, strikes and its classifiers."""
        held = output_safety.held_clips(self.bot)
        policy = await held.policy(interaction.guild_id)
        thresholds = await held.policies.known_thresholds()
        status = await held.policies.check_status()
        await show_embed(interaction, output_safety.policy_embed(policy, thresholds, status))

    @safety.command(name="mode")
    @app_commands.describe(
        mode="withhold: never post flagged clips; spoiler: as spoilers in age-restricted"
        " channels; off: look at nothing"
    )
    @app_commands.choices(
        mode=[app_commands.Choice(name=mode.value, value=mode.value) for mode in SafetyMode]
    )
    async def safety_mode(self, interaction: discord.Interaction[ReelBot], mode: str) -> None:
        """Choose what happens to clips the safety check flags (or turn it off)."""
        chosen = SafetyMode(mode)
        await output_safety.held_clips(self.bot).set_mode(
            interaction.guild_id, chosen, actor_id=interaction.user.id
        )
        await reply_privately(
            interaction, f"The safety check's mode is {chosen}: {MODE_MEANINGS[chosen]}."
        )

    @safety.command(name="threshold")
    @app_commands.describe(
        category="What is scored: nudity, nsfw, or a plugged-in model's category",
        value="From 0 (flag every clip) to 1 (flag only certainties); leave out for the default",
    )
    async def safety_threshold(
        self,
        interaction: discord.Interaction[ReelBot],
        category: app_commands.Range[str, 1, 40],
        value: app_commands.Range[float, 0.0, 1.0] | None = None,
    ) -> None:
        """Set the score from which a clip is flagged, for one category."""
        name = category.strip().lower()
        policy = await output_safety.held_clips(self.bot).set_threshold(
            interaction.guild_id, name, value, actor_id=interaction.user.id
        )
        if value is None:
            sentence = f"The {name} threshold is back to the classifier's default."
        else:
            threshold = policy.thresholds[name]
            sentence = f"Clips scoring {threshold:.2f} or more for {name} are flagged."
        await reply_privately(interaction, sentence)

    @safety.command(name="strikes")
    @app_commands.describe(on="Whether a withheld clip counts as a strike against its user")
    async def safety_strikes(self, interaction: discord.Interaction[ReelBot], on: bool) -> None:
        """Count withheld clips as strikes against their users (off by default)."""
        await output_safety.held_clips(self.bot).set_strikes(
            interaction.guild_id, on, actor_id=interaction.user.id
        )
        if on:
            sentence = "Withheld clips now count as strikes, like refused prompts."
        else:
            sentence = "Withheld clips count as no strike: the model drew them, not the user."
        await reply_privately(interaction, sentence)

    @safety.command(name="unchecked")
    @app_commands.describe(
        action="withhold: post no clip the check could not look at; post: post it (logged)"
    )
    @app_commands.choices(
        action=[app_commands.Choice(name=item.value, value=item.value) for item in IfUnchecked]
    )
    async def safety_unchecked(
        self, interaction: discord.Interaction[ReelBot], action: str
    ) -> None:
        """Choose what happens when the classifiers cannot load or look at a clip."""
        chosen = IfUnchecked(action)
        await output_safety.held_clips(self.bot).set_if_unchecked(
            interaction.guild_id, chosen, actor_id=interaction.user.id
        )
        if chosen is IfUnchecked.POST:
            sentence = "Clips the safety check cannot look at are posted (the log warns)."
        else:
            sentence = "Clips the safety check cannot look at are withheld until it works again."
        await reply_privately(interaction, sentence)

    @safety.command(name="review")
    @app_commands.describe(page="Which page")
    async def safety_review(
        self, interaction: discord.Interaction[ReelBot], page: app_commands.Range[int, 1, 1000] = 1
    ) -> None:
        """List the clips the safety check withheld, newest first."""
        clips = await output_safety.held_clips(self.bot).review(interaction.guild_id)
        await show_embed(interaction, output_safety.review_embed(clips, page))

    @safety.command(name="release")
    @app_commands.describe(job="The withheld clip's job number")
    async def safety_release(
        self, interaction: discord.Interaction[ReelBot], job: app_commands.Range[int, 1]
    ) -> None:
        """Post a withheld clip after all; the log names you."""
        released = await output_safety.held_clips(self.bot).release(
            interaction.guild_id, job, actor_id=interaction.user.id
        )
        where = f" in <#{released.channel_id}>" if released.channel_id else ""
        await reply_privately(interaction, f"Released clip #{job}: it is being posted{where}.")

    @safety.command(name="delete")
    @app_commands.describe(job="The withheld clip's job number")
    async def safety_delete(
        self, interaction: discord.Interaction[ReelBot], job: app_commands.Range[int, 1]
    ) -> None:
        """Delete a withheld clip's files for good."""
        await output_safety.held_clips(self.bot).delete(
            interaction.guild_id, job, self.bot.settings.clips_dir, actor_id=interaction.user.id
        )
        await reply_privately(interaction, f"Deleted the withheld clip #{job}: its files are gone.")

    # --- web gallery --------------------------------------------------------------------

    @gallery.command(name="allow")
    @app_commands.describe(channel="Whose clips the web gallery shows, past and future")
    async def gallery_allow(
        self, interaction: discord.Interaction[ReelBot], channel: discord.TextChannel
    ) -> None:
        """Show a channel's clips in the public web gallery."""
        await self.set_gallery_channel(interaction, channel, public=True)
        await reply_privately(
            interaction,
            f"Clips made in {channel.mention} are shown in the web gallery from now on,"
            " those made before included (clips deleted here or withheld never are).",
        )

    @gallery.command(name="deny")
    @app_commands.describe(channel="Whose clips the web gallery no longer shows")
    async def gallery_deny(
        self, interaction: discord.Interaction[ReelBot], channel: discord.TextChannel
    ) -> None:
        """Stop showing a channel's clips in the web gallery."""
        await self.set_gallery_channel(interaction, channel, public=False)
        await reply_privately(
            interaction, f"Clips made in {channel.mention} are no longer shown in the web gallery."
        )

    async def set_gallery_channel(
        self,
        interaction: discord.Interaction[ReelBot],
        channel: discord.TextChannel,
        *,
        public: bool,
    ) -> None:
        assert interaction.guild_id is not None
        await GalleryChannels(self.bot.moderation).set_public(
            interaction.guild_id,
            channel.id,
            public,
            actor_id=interaction.user.id,
            guild_name=interaction.guild.name if interaction.guild else str(interaction.guild_id),
            channel_name=channel.name,
        )

    async def audit(
        self,
        interaction: discord.Interaction,
        action: AuditAction,
        *,
        target_user_id: int | None = None,
        target_job_id: int | None = None,
        detail: str = "",
    ) -> None:
        await self.bot.moderation.audit(
            interaction.guild_id,
            actor_id=interaction.user.id,
            action=action,
            target_user_id=target_user_id,
            target_job_id=target_job_id,
            detail=detail,
        )


async def show_embed(interaction: discord.Interaction[ReelBot], embed: discord.Embed) -> None:
    """Show ``embed`` in place of "thinking…"."""
    try:
        await interaction.edit_original_response(embed=embed, allowed_mentions=NO_PINGS)
    except discord.HTTPException:
        log.warning("could not show an /admin answer", exc_info=True)


def ban_end(ban: Ban) -> str:
    if ban.until is None:
        return "until unbanned"
    end = datetime.fromtimestamp(ban.until, tz=UTC)
    return f"until {discord.utils.format_dt(end, 'f')} ({discord.utils.format_dt(end, 'R')})"


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Admin(bot))
