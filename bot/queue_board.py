"""One queue board per busy channel: the jobs being made, the next ones and how many more.

In a busy channel new jobs get no status message of their own (each would cost one of the
channel's few sends and then edits); the board lists them instead. It is one message, posted
when the channel gets busy, edited at most every ``interval_s`` and only when it changes, and
deleted when the line is empty. When the bot has posted many messages below it (clips), it is
posted again at the bottom, and the old one deleted, as the budget allows. Its message id is
kept in the database, so a restarted bot edits the board it left instead of adding one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.channel_writes import NOT_SENT, ChannelWrites, Priority, Route
from bot.render import NO_PINGS
from bot.store import BotStore

log = logging.getLogger(__name__)

SCROLLED_AFTER = 10
"""Bot messages posted below the board before it is posted again at the bottom."""

ChannelOf = Callable[[int], discord.PartialMessageable]
Write = Callable[[], Awaitable[object]]


@dataclass
class Board:
    message_id: int | None
    wanted: str | None = None
    shown: str = ""
    edited_at: float = -math.inf
    posted_at_count: int = 0


class QueueBoards:
    """The boards of every channel, kept to what :meth:`show` last asked for."""

    def __init__(
        self,
        store: BotStore,
        writes: ChannelWrites,
        channel_of: ChannelOf,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.writes = writes
        self.channel_of = channel_of
        self.interval_s = interval_s
        self.clock = clock
        self.boards: dict[int, Board] = {}
        self.closed_channels: set[int] = set()

    async def load(self) -> None:
        """Adopt the boards a previous run left up."""
        for channel_id, message_id in (await self.store.queue_boards()).items():
            self.boards[channel_id] = Board(message_id)

    def channels(self) -> set[int]:
        return set(self.boards)

    def show(self, channel_id: int, text: str | None) -> None:
        """Make the channel's board say ``text``; None: the channel needs no board."""
        board = self.boards.get(channel_id)
        if board is None:
            if text is None or channel_id in self.closed_channels:
                return
            board = self.boards[channel_id] = Board(None)
        board.wanted = text
        key = ("board", channel_id)
        if text is None:
            if board.message_id is None:
                self.writes.drop(key)
                del self.boards[channel_id]
                return
            self.writes.offer(
                channel_id, Route.DELETE, Priority.UPDATE, key, self.remover(channel_id)
            )
        elif board.message_id is None:
            self.writes.offer(
                channel_id, Route.SEND, Priority.NEW_STATUS, key, self.poster(channel_id)
            )
        elif self.clock() - board.edited_at < self.interval_s:
            return
        elif self.scrolled_up(channel_id, board):
            self.writes.offer(
                channel_id, Route.SEND, Priority.NEW_STATUS, key, self.poster(channel_id)
            )
        elif text != board.shown:
            self.writes.offer(channel_id, Route.EDIT, Priority.UPDATE, key, self.editor(channel_id))

    def scrolled_up(self, channel_id: int, board: Board) -> bool:
        below = self.writes.sent_count(channel_id) - board.posted_at_count
        clips_waiting = self.writes.waiting(channel_id, Route.SEND, up_to=Priority.FINAL)
        return below >= SCROLLED_AFTER and not clips_waiting

    def poster(self, channel_id: int) -> Write:
        async def post() -> object:
            board = self.boards.get(channel_id)
            if board is None or board.wanted is None:
                return NOT_SENT
            text = board.wanted
            try:
                message = await self.channel_of(channel_id).send(text, allowed_mentions=NO_PINGS)
            except (discord.NotFound, discord.Forbidden) as exc:
                log.info("cannot post a queue board in channel %s: %s", channel_id, exc)
                self.closed_channels.add(channel_id)
                self.boards.pop(channel_id, None)
                return None
            self.writes.sent(channel_id, message.id)
            # The line may have emptied while this was on its way: then the next look at the
            # queue finds this board up but unwanted, and deletes it.
            board = self.boards.setdefault(channel_id, Board(None))
            old_id = board.message_id
            board.message_id, board.shown, board.edited_at = message.id, text, self.clock()
            board.posted_at_count = self.writes.sent_count(channel_id)
            await self.store.remember_queue_board(channel_id, message.id)
            if old_id is not None:
                self.writes.offer(
                    channel_id, Route.DELETE, Priority.UPDATE, ("old board", old_id),
                    self.deleter(channel_id, old_id),
                )  # fmt: skip
            return message

        return post

    def editor(self, channel_id: int) -> Write:
        async def edit() -> object:
            board = self.boards.get(channel_id)
            if board is None or board.wanted is None or board.message_id is None:
                return NOT_SENT
            text = board.wanted
            message = self.channel_of(channel_id).get_partial_message(board.message_id)
            try:
                await message.edit(content=text, allowed_mentions=NO_PINGS)
            except (discord.NotFound, discord.Forbidden):
                # Someone deleted the board: the next change posts a new one.
                log.info("the queue board in channel %s is gone", channel_id)
                board.message_id, board.shown = None, ""
                await self.store.forget_queue_board(channel_id)
                return None
            board.shown, board.edited_at = text, self.clock()
            return None

        return edit

    def remover(self, channel_id: int) -> Write:
        async def remove() -> object:
            board = self.boards.get(channel_id)
            if board is None or board.wanted is not None or board.message_id is None:
                return NOT_SENT
            await self.deleter(channel_id, board.message_id)()
            board.message_id, board.shown = None, ""
            await self.store.forget_queue_board(channel_id)
            if board.wanted is None:
                self.boards.pop(channel_id, None)
            return None

        return remove

    def deleter(self, channel_id: int, message_id: int) -> Write:
        async def delete() -> object:
            try:
                await self.channel_of(channel_id).get_partial_message(message_id).delete()
            except (discord.NotFound, discord.Forbidden):
                log.info("queue board %s in channel %s was already gone", message_id, channel_id)
            return None

        return delete
