"""What the bot says: status lines, clip embeds and job details, within Discord's limits.

User text (prompts, rewritten prompts) is made inert before it is shown: markdown is escaped so
a prompt cannot break out of its formatting, and mentions are broken so it cannot ping anyone
even where a message's ``AllowedMentions`` would let it. Every message the bot sends with user
text also passes :data:`NO_PINGS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage
from jobqueue.scenes import SceneState

if TYPE_CHECKING:
    from bot.extend_chain import Segment
    from jobqueue.jobs import QueuePosition
    from jobqueue.scenes import Scene

NO_PINGS = discord.AllowedMentions.none()

CONTENT_LIMIT = 2000
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_LIMIT = 1024
PROMPT_IN_STATUS = 200
SCENE_IN_STATUS = 700
SCENE_IN_PRIVATE = 1200
REASON_IN_STATUS = 200
WAIT_NOTE_IN_STATUS = 300
PROMPT_IN_CLIP = 1500
# The details DM shows three long texts; 3000 + 2 x 1024 leaves room under the 6000 total.
PROMPT_IN_DETAILS = 3000
ELLIPSIS = "…"

KIND_NAMES = {
    JobKind.CREATE: "clip",
    JobKind.ANIMATE: "animation",
    JobKind.RETRY: "retry",
    JobKind.REMIX: "remix",
    JobKind.EXTEND: "extension",
    JobKind.HD: "HD version",
    JobKind.DRAFTS: "drafts",
    JobKind.VARY: "variations",
    JobKind.RENDER: "render",
    JobKind.SHOT: "shot",
    JobKind.FILM: "film",
}
STAGE_LINES = {
    Stage.WAITING: "starting",
    Stage.REWRITING: "rewriting the prompt",
    Stage.GENERATING: "generating",
    Stage.ENCODING: "encoding the video",
}


def escape(text: str) -> str:
    """``text`` on one line, with markdown shown literally and mentions unable to ping."""
    one_line = " ".join(text.split())
    return discord.utils.escape_mentions(discord.utils.escape_markdown(one_line))


def shown(text: str, limit: int) -> str:
    """``text`` escaped and cut to at most ``limit`` characters (cut text ends with "…")."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    # Cut the raw text, not the escaped one, so no escape sequence is split in half.
    keep = min(len(text), limit)
    while keep > 0:
        candidate = escape(text[:keep]).rstrip("\\") + ELLIPSIS
        if len(candidate) <= limit:
            return candidate
        keep -= max(1, len(candidate) - limit)
    return ELLIPSIS


def mention(user_id: int) -> str:
    """A mention of the requester; it never pings, since messages pass :data:`NO_PINGS`."""
    return f"<@{user_id}>"


def duration_words(seconds: float | None) -> str:
    """A rough duration for an ETA: "about 40 s", "about 3 min", "about 2 h"."""
    if seconds is None:
        return "an unknown time"
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5)} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def job_label(job: Job) -> str:
    return f"{KIND_NAMES[job.kind]} #{job.id}"


def queued_ack(job: Job, position: QueuePosition | None) -> str:
    """The requester's private confirmation that a job was accepted (kept up to date)."""
    if position is None:
        return f"Queued your {job_label(job)}; it is starting. {KEPT_CURRENT}"
    place = "next in line" if position.position == 1 else f"number {position.position} in line"
    return (
        f"Queued your {job_label(job)}: it is {place} ({position.waiting_total} waiting) and"
        f" should start in {duration_words(position.eta_seconds)}. {KEPT_CURRENT}"
    )


KEPT_CURRENT = "This message shows your place until the clip is up."
PRIVATE_HANDOFF = (
    "-# Discord lets me edit this message for 15 minutes only: the queue board in the channel"
    " and /queue show where your clip stands from here."
)


def private_line(job: Job, position: QueuePosition | None, scene: Scene | None = None) -> str:
    """The requester's private reply while the job waits (with its scene) or runs."""
    if job.status is JobStatus.QUEUED:
        return queued_ack(job, position) + wait_line(job) + scene_lines(scene, SCENE_IN_PRIVATE)
    return f"Your {job_label(job)} is being made: {progress_words(job)}."


def private_posting(job: Job) -> str:
    """The requester's private reply between the job's end and its clip being up."""
    return f"Your {job_label(job)} is done: it goes up in the channel as soon as Discord allows."


def private_done(job: Job, clip_url: str) -> str:
    """The requester's private reply once the clip is up."""
    return f"✅ Your {job_label(job)} is ready: {clip_url}"


def private_handoff(text: str) -> str:
    """The last version of a private reply before its interaction token runs out."""
    return f"{text}\n{PRIVATE_HANDOFF}"


def progress_words(job: Job) -> str:
    """How far a running job has got: "generating, 45% (step 9 of 20), about 20 s left"."""
    if job.cancel_requested:
        return "stopping"
    if job.stage is Stage.GENERATING and job.total_steps > 0:
        return (
            f"generating, {job.percent}% (step {job.step} of {job.total_steps}),"
            f" {duration_words(running_eta(job))} left"
        )
    return f"{STAGE_LINES[job.stage]}…"


def running_eta(job: Job) -> float | None:
    elapsed = job.elapsed
    if elapsed is None or job.step <= 0 or job.total_steps <= 0:
        return None
    return elapsed * (job.total_steps - job.step) / job.step


def status_line(job: Job, position: QueuePosition | None = None, scene: Scene | None = None) -> str:
    """The public status message of a job that is waiting (with its scene) or running."""
    head = f"{job_label(job)} for {mention(job.user_id)}"
    prompt = f"\n> {shown(job.request.prompt, PROMPT_IN_STATUS)}"
    if job.status is JobStatus.QUEUED:
        prompt = wait_line(job) + prompt + scene_lines(scene, SCENE_IN_STATUS)
        if position is None:
            return f"⏳ {head} is queued.{prompt}"
        place = (
            "next in line"
            if position.position == 1
            else f"number {position.position} of {position.waiting_total} in line"
        )
        starts = duration_words(position.eta_seconds)
        return f"⏳ {head} is queued: {place}, starting in {starts}.{prompt}"
    if job.cancel_requested:
        return f"🛑 {head} is stopping.{prompt}"
    ending = "" if progress_words(job).endswith("…") else "."
    return f"🎨 {head}: {progress_words(job)}{ending}{prompt}"


def wait_line(job: Job) -> str:
    """Why a waiting job does not start, on a line of its own (no GPU worker can take it)."""
    if not job.wait_note:
        return ""
    note = f"{job.wait_note[0].upper()}{job.wait_note[1:]}"
    return f"\n🕓 {shown(note, WAIT_NOTE_IN_STATUS)}."


def scene_lines(scene: Scene | None, limit: int) -> str:
    """What a waiting job's messages say of its scene, on lines of their own (nothing until
    a scene writer takes it on); the scene is cut to ``limit`` characters."""
    if scene is None or scene.state is SceneState.NOT_WANTED:
        return ""
    if scene.state is SceneState.WRITING:
        return "\n✍️ Writing the scene…"
    if scene.text is None:
        why = f" ({shown(scene.reason, REASON_IN_STATUS)})" if scene.reason else ""
        return f"\n🎬 Scene: the prompt as written{why}."
    label = "Scene, as its owner wrote it" if scene.edited else "Scene"
    return f"\n🎬 {label}:\n> {shown(scene.text, limit)}"


BOARD_WAITING_SHOWN = 5
BOARD_RUNNING_SHOWN = 5
PROMPT_ON_BOARD = 60


def queue_board(running: list[Job], waiting: list[tuple[Job, QueuePosition | None]]) -> str:
    """A busy channel's one shared message: the jobs being made, the next ones, how many more.

    ``waiting`` is in the order the jobs should start.
    """
    lines = [f"📋 **Queue here**: {len(running)} being made, {len(waiting)} waiting"]
    for job in running[:BOARD_RUNNING_SHOWN]:
        lines.append(f"🎨 {board_head(job)}: {progress_words(job)}")
    for job, position in waiting[:BOARD_WAITING_SHOWN]:
        starts = "soon" if position is None else f"in {duration_words(position.eta_seconds)}"
        if job.wait_note:
            lines.append(f"🕓 {board_head(job)}: {shown(job.wait_note, WAIT_NOTE_IN_STATUS)}")
        else:
            lines.append(f"⏳ {board_head(job)}: starts {starts}")
    hidden = len(waiting) - BOARD_WAITING_SHOWN + max(0, len(running) - BOARD_RUNNING_SHOWN)
    if hidden > 0:
        lines.append(f"+{hidden} more")
    lines.append("-# Your own place and ETA: your private reply, or /queue.")
    return "\n".join(lines)


def board_head(job: Job) -> str:
    prompt = shown(job.request.prompt, PROMPT_ON_BOARD)
    return f"{job_label(job)} for {mention(job.user_id)} · {prompt}"


def finished_line(job: Job, *, clip_url: str | None = None) -> str:
    """The status message once a job has ended: a link to the clip or a sentence why not."""
    head = f"{job_label(job)} for {mention(job.user_id)}"
    if job.status is JobStatus.DONE:
        return f"✅ {head} is done: {clip_url}" if clip_url else f"✅ {head} is done."
    if job.status is JobStatus.CANCELLED:
        return f"🚫 {head} was cancelled."
    reason = job.error or "the worker stopped without saying why."
    return f"❌ {head} failed: {shown(reason, 1500)}"


def too_large_line(job: Job, size_bytes: int, limit_bytes: int) -> str:
    size, limit = file_size_words(size_bytes), file_size_words(limit_bytes)
    return (
        f"⚠️ {job_label(job)} for {mention(job.user_id)} is done, but the clip is {size},"
        f" over this server's {limit} upload limit even after re-encoding; the file is kept"
        " on the bot's host."
    )


def file_size_words(size: int) -> str:
    """ "9.5 MB", "120 KB" or "300 bytes"."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} bytes"


def prompt_embed(job: Job, *, page_url: str | None = None) -> discord.Embed:
    """The start of a finished job's embed (a clip's or a grid's): the job, its prompt and
    the rewrite; the title links to ``page_url`` (its page in the web gallery) if given."""
    embed = discord.Embed(
        title=job_label(job).capitalize(),
        description=shown(job.request.prompt, PROMPT_IN_CLIP),
        colour=discord.Colour.blurple(),
        url=page_url,
    )
    if job.rewritten_prompt and job.rewritten_prompt != job.request.prompt:
        embed.add_field(
            name="Rewritten prompt",
            value=shown(job.rewritten_prompt, EMBED_FIELD_LIMIT),
            inline=False,
        )
    return embed


def clip_embed(
    job: Job, *, page_url: str | None = None, segments: Sequence[Segment] = ()
) -> discord.Embed:
    """The embed posted with a finished clip; its title links to ``page_url`` (the clip's
    page in the web gallery) when there is one; an extension lists its ``segments``."""
    request = job.request
    embed = prompt_embed(job, page_url=page_url)
    if request.negative_prompt:
        embed.add_field(
            name="Negative prompt",
            value=shown(request.negative_prompt, EMBED_FIELD_LIMIT),
            inline=False,
        )
    embed.add_field(name="Seed", value=str(job.seed))
    embed.add_field(name="Model", value=shown(job.model or "default", 100))
    ending = ending_words(request)
    if ending is not None:
        embed.add_field(name="Ends", value=ending)
    for name, value in direction_fields(job).items():
        embed.add_field(name=name, value=value)
    embed.add_field(name="Size", value=size_words(job))
    if segments:
        embed.add_field(name="Segments", value=segments_words(segments), inline=False)
    embed.add_field(name="Time taken", value=taken_words(job))
    embed.add_field(name="Requested by", value=mention(job.user_id))
    if job.parent_id is not None:
        embed.add_field(name="From", value=f"#{job.parent_id}")
    embed.set_footer(text=f"job {job.id} · react 🔁 retry · ❌ delete · ✉️ details by DM")
    return embed


def direction_fields(job: Job) -> dict[str, str]:
    """The camera move and motion asked for, as embed fields (only those given)."""
    request = job.request
    fields = {"Camera": request.camera, "Motion": request.motion}
    return {name: shown(value, 100) for name, value in fields.items() if value}


def segments_words(segments: Sequence[Segment]) -> str:
    """ "1 original 0–5.1 s · 2 extension #12 5.1–10.1 s", within a field's limit."""
    pieces = [
        f"{segment.number} {'original' if segment.original else 'extension'}"
        f" #{segment.job_id} {segment.start_s:.1f}–{segment.end_s:.1f} s"
        for segment in segments
    ]
    return shown(" · ".join(pieces), EMBED_FIELD_LIMIT)


def ending_words(request: JobRequest) -> str | None:
    """How the clip ends when it was asked to end on a chosen frame (None: as the model took
    it)."""
    if request.loop:
        return "where it began (loop)"
    if request.end_image_path is not None:
        return "on the end image"
    return None


def size_words(job: Job) -> str:
    if not (job.width and job.height and job.frames and job.fps):
        return "unknown"
    return f"{job.width}×{job.height}, {job.frames / job.fps:.1f} s ({job.frames} frames)"


def taken_words(job: Job) -> str:
    if job.finished_at is None:
        return "unknown"
    return f"{job.finished_at - job.created_at:.0f} s"


def details_embed(job: Job) -> discord.Embed:
    """Everything needed to make the clip again, for the ✉️ reaction's DM."""
    request = job.request
    embed = discord.Embed(
        title=f"Details of {job_label(job)}",
        description=shown(request.prompt, PROMPT_IN_DETAILS),
    )
    embed.add_field(
        name="Rewritten prompt",
        value=shown(job.rewritten_prompt or "(not rewritten)", EMBED_FIELD_LIMIT),
        inline=False,
    )
    embed.add_field(
        name="Negative prompt",
        value=shown(request.negative_prompt or "(none)", EMBED_FIELD_LIMIT),
        inline=False,
    )
    settings = {
        "Seed": job.seed,
        "Model": job.model or request.model or "default",
        "Aspect": request.aspect,
        "Frames": job.frames,
        "FPS": job.fps,
        "Steps": request.steps or "preset default",
        "Guidance": request.guidance or "preset default",
        "Enhanced": "yes" if request.enhance else "no",
        "HD": "yes" if request.hd else "no",
        "Ends": ending_words(request) or "where the model took it",
        "Camera": request.camera or "model's choice",
        "Motion": request.motion or "as usual",
    }
    for name, value in settings.items():
        embed.add_field(name=name, value=shown(str(value), 100))
    if job.parent_id is not None:
        embed.add_field(name="From job", value=f"#{job.parent_id}")
    return embed
