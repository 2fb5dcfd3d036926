"""What /admin shows: the blocklist, the audit log, queue stats and limits, within Discord's limits.

Long lists are split into pages of ``PER_PAGE`` lines; each line is cut to a fixed length, so
a page always fits an embed description (4096 characters).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.modlog import mod_log_line
from bot.render import mention, shown
from jobqueue.jobs import QueueStats
from jobqueue.limits import QueueLimits
from jobqueue.models import WorkerInfo
from jobqueue.moderation import AuditEntry, BlockRule

PER_PAGE = 15
LINE_LIMIT = 250
PATTERN_IN_LIST = 120
WORKERS_SHOWN = 10
ADMIN_COLOUR = discord.Colour.dark_red()


@dataclass(frozen=True)
class Page:
    lines: list[str]
    number: int
    count: int


def paginate(lines: Sequence[str], page: int, *, per_page: int = PER_PAGE) -> Page:
    """Page ``page`` (1-based, clamped to the last) of ``lines``."""
    count = max(1, math.ceil(len(lines) / per_page))
    number = min(max(page, 1), count)
    start = (number - 1) * per_page
    return Page(list(lines[start : start + per_page]), number, count)


def list_embed(
    title: str, lines: Sequence[str], page: int, *, empty: str, hint: str
) -> discord.Embed:
    """An embed holding one page of ``lines``; the footer says how to see the next."""
    shown_page = paginate(lines, page)
    embed = discord.Embed(
        title=title,
        description="\n".join(line[:LINE_LIMIT] for line in shown_page.lines) or empty,
        colour=ADMIN_COLOUR,
    )
    footer = f"Page {shown_page.number} of {shown_page.count} · {len(lines)} in all"
    if shown_page.number < shown_page.count:
        footer += f" · next: {hint} page:{shown_page.number + 1}"
    embed.set_footer(text=footer)
    return embed


def rule_line(rule: BlockRule) -> str:
    source = "default" if rule.source == "default" else f"added by {mention(rule.added_by or 0)}"
    pattern = shown(rule.pattern, PATTERN_IN_LIST)
    return f"`#{rule.id}` {rule.kind} · {shown(rule.category, 80)} · {source}\n┗ {pattern}"


def blocklist_embed(rules: Sequence[BlockRule], page: int) -> discord.Embed:
    return list_embed(
        "Blocklist",
        [rule_line(rule) for rule in rules],
        page,
        empty="The blocklist is empty.",
        hint="/admin blocklist list",
    )


def log_line(entry: AuditEntry) -> str:
    return f"<t:{int(entry.created_at)}:f> {mod_log_line(entry)}"


def log_embed(entries: Sequence[AuditEntry], page: int, *, user_id: int | None) -> discord.Embed:
    title = "Moderation log" if user_id is None else "Moderation log for one user"
    embed = list_embed(
        title,
        [log_line(entry) for entry in entries],
        page,
        empty="Nothing has been logged yet.",
        hint="/admin log",
    )
    if user_id is not None:
        embed.description = f"{mention(user_id)}\n{embed.description}"
    return embed


def stats_embed(stats: QueueStats, *, now: float | None = None) -> discord.Embed:
    embed = discord.Embed(title="reelbot statistics", colour=ADMIN_COLOUR)
    embed.add_field(
        name="Jobs today",
        value=f"{stats.done_today} done · {stats.failed_today} failed"
        f" · {stats.cancelled_today} cancelled",
        inline=False,
    )
    average = "no clips yet" if stats.avg_seconds is None else f"{stats.avg_seconds:.0f} s"
    embed.add_field(name="Average time per clip", value=average)
    queue = f"{stats.waiting} waiting · {stats.running} running"
    embed.add_field(name="Queue", value=queue + (" · ⏸️ paused" if stats.paused else ""))
    embed.add_field(name="Workers", value=workers_text(stats.workers, now=now), inline=False)
    return embed


def workers_text(workers: Sequence[WorkerInfo], *, now: float | None = None) -> str:
    if not workers:
        return "No worker has been seen in the last minute: clips will wait."
    current = time.time() if now is None else now
    lines = [worker_line(worker, current) for worker in workers[:WORKERS_SHOWN]]
    if len(workers) > WORKERS_SHOWN:
        lines.append(f"…and {len(workers) - WORKERS_SHOWN} more.")
    return "\n".join(lines)[:1024]


def worker_line(worker: WorkerInfo, now: float) -> str:
    """One worker: its name, where it runs, what it serves, what it does, when last heard."""
    where = [worker.kind, shown(worker.host, 40)] if worker.host else [worker.kind]
    if worker.gpu_total_bytes:
        where.append(f"{worker.gpu_total_bytes / 2**30:.0f} GB GPU")
    doing = f"making job #{worker.job_id}" if worker.job_id is not None else "idle"
    seen = max(0, round(now - worker.last_seen))
    return (
        f"• {shown(worker.worker_id, 60)} ({', '.join(where)}): {models_words(worker)}"
        f" · {doing} · heartbeat {seen} s ago"
    )


def models_words(worker: WorkerInfo) -> str:
    if worker.models is None:
        return "any model"
    served = ", ".join(shown(model, 40) for model in worker.models) or "no model"
    if worker.max_video_pixels is not None:
        served += f" (up to {worker.max_video_pixels / 1e6:.0f} Mpx a clip)"
    return served


def limits_sentence(limits: QueueLimits, *, user_id: int | None) -> str:
    who = "Everyone" if user_id is None else mention(user_id)
    daily_limit = limits.max_daily_per_user
    daily = "no daily limit" if daily_limit == 0 else f"{clips(daily_limit)} a day"
    return (
        f"{who} may now have {clips(limits.max_waiting_per_user)} waiting and"
        f" {limits.max_running_per_user} running at once, {daily}."
    )


def clips(count: int) -> str:
    return f"{count} clip" if count == 1 else f"{count} clips"
