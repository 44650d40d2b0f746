"""A Grid whose ``send_and_receive`` polls for replies at a short, fixed interval.

Flower 1.42's ``HttpGrid.send_and_receive`` (Deployment Engine) sleeps 3 s between
two pulls, so every phase of a round waits up to 3 s after its last reply arrived:
with a train and an evaluate phase that is up to 6 s per round of idle server. This
wrapper implements the same contract (push, then pull until every reply is in or the
timeout passes) with Flower's public ``push_messages``/``pull_messages`` and a
sub-second interval; everything else is delegated to the wrapped Grid.

It also remembers where each message went: an error reply the SuperLink makes for a
node that stopped answering comes from the SuperLink itself (node id 1), and only
the message it replies to tells which node failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

log = logging.getLogger(__name__)


class PollingGrid(Grid):
    """Delegates to ``grid``; waits for replies polling every ``interval`` seconds."""

    def __init__(self, grid: Grid, interval: float = 0.2) -> None:
        if interval <= 0:
            raise ValueError(f"engine.server_poll_s: expected > 0 s, got {interval}")
        self._grid = grid
        self.interval = interval
        self.destinations: dict[str, int] = {}

    def set_run(self, run: Run) -> None:
        """Delegate to the wrapped Grid."""
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        """The wrapped Grid's run."""
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Delegate to the wrapped Grid."""
        return self._grid.create_message(
            content, message_type, dst_node_id, group_id, ttl
        )

    def get_node_ids(self) -> Iterable[int]:
        """Delegate to the wrapped Grid."""
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push through the wrapped Grid, remembering each message's destination."""
        messages = list(messages)
        started = time.perf_counter()
        ids = list(self._grid.push_messages(messages))
        log.debug(
            "pushed %d messages in %.3f s", len(messages), time.perf_counter() - started
        )
        for message, message_id in zip(messages, ids, strict=True):
            if message_id:
                self.destinations[message_id] = message.metadata.dst_node_id
        return ids

    def sender_of(self, reply: Message) -> int:
        """The node a reply stands for (the destination of the message it answers)."""
        return self.destinations.get(
            reply.metadata.reply_to_message_id, reply.metadata.src_node_id
        )

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delegate to the wrapped Grid."""
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``; pull replies until all are in or ``timeout`` passes."""
        waiting = {i for i in self.push_messages(messages) if i}
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting:
            pulled = list(self.pull_messages(waiting))
            for reply in pulled:
                log.debug("reply from node %d", self.sender_of(reply))
            replies.extend(pulled)
            waiting -= {m.metadata.reply_to_message_id for m in pulled}
            if not waiting or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.interval)
        return replies
