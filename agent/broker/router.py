"""Routing between sessions: who is connected, who subscribed to what, and
the retained messages."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from agent.broker.session import Message, Session, SubOptions
from agent.broker.topics import SubscriptionTree, filter_matches

log = logging.getLogger("agent.broker")


class Router:
    def __init__(self, publisher_wait: float, hold_limit: int = 0) -> None:
        self.sessions: dict[str, Session] = {}
        self.tree = SubscriptionTree()
        self.retained: dict[str, Message] = {}
        # How long one publish may wait for a slow subscriber's queue to shrink
        # before that subscriber is marked stalled and no longer waited for.
        self.publisher_wait = publisher_wait
        # QoS 1 messages no subscriber matched, with the PUBACK each still owes
        # its publisher. A broker that acknowledges what nobody receives lets a
        # store-and-forward client delete readings no consumer ever saw; holding
        # the acknowledgement keeps them in the client's outbox instead.
        self.hold_limit = hold_limit
        self.held: collections.deque[tuple[Message, Callable[[], None]]] = collections.deque()

    # -- sessions -------------------------------------------------------------

    def register(self, session: Session) -> Session | None:
        """Make `session` the live one for its client id; returns the session it
        takes over (whose connection the caller must close), if any."""
        old = self.sessions.get(session.client_id)
        self.sessions[session.client_id] = session
        return old

    def unregister(self, session: Session) -> None:
        # Its held messages go: unacknowledged, the client sends them again
        # when it reconnects.
        if self.held:
            self.held = collections.deque(h for h in self.held if h[0].origin is not session)
        for topic_filter in list(session.subscriptions):
            self.tree.remove(topic_filter, session)
        session.subscriptions.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    # -- subscriptions --------------------------------------------------------

    def subscribe(self, session: Session, topic_filter: str, opts: SubOptions) -> bool:
        """Add or replace; True if it is new for this session."""
        session.subscriptions[topic_filter] = opts
        return self.tree.add(topic_filter, session, opts)

    # -- held messages ----------------------------------------------------------

    def should_hold(self, msg: Message) -> bool:
        return bool(self.hold_limit) and msg.qos >= 1 and not msg.retain and not self._has_subscriber(msg.topic)

    def _has_subscriber(self, topic: str) -> bool:
        return next(iter(self.tree.match(topic)), None) is not None

    def hold(self, msg: Message, acknowledge: Callable[[], None]) -> bool:
        """Keep `msg` until a subscriber matches; False when the hold is full."""
        if len(self.held) >= self.hold_limit:
            return False
        self.held.append((msg, acknowledge))
        return True

    def release_held(self) -> int:
        """Deliver, in order, the held messages that now have a subscriber, and
        send their publishers the PUBACKs they were owed."""
        if not self.held:
            return 0
        keep: collections.deque[tuple[Message, Callable[[], None]]] = collections.deque()
        released = 0
        for msg, acknowledge in self.held:
            if self._has_subscriber(msg.topic):
                self.publish(msg)
                acknowledge()
                released += 1
            else:
                keep.append((msg, acknowledge))
        self.held = keep
        return released

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        session.subscriptions.pop(topic_filter, None)
        return self.tree.remove(topic_filter, session)

    def send_retained(self, session: Session, topic_filter: str, opts: SubOptions, is_new: bool) -> None:
        if opts.retain_handling == 2 or (opts.retain_handling == 1 and not is_new):
            return
        for topic, msg in list(self.retained.items()):
            if filter_matches(topic_filter, topic):
                session.enqueue(msg, min(msg.qos, opts.qos), True)

    # -- publishing -----------------------------------------------------------

    def publish(self, msg: Message) -> list[Session]:
        """Store if retained, deliver to every matching session once (at the
        highest QoS of its matching subscriptions). Returns the sessions that are
        now above their high-water mark, for the publisher to wait on."""
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
        targets: dict[Session, list] = {}
        for session, opts in self.tree.match(msg.topic):
            if opts.no_local and session is msg.origin:
                continue
            current = targets.get(session)
            if current is None:
                targets[session] = [opts.qos, opts.retain_as_published]
            else:
                current[0] = max(current[0], opts.qos)
                current[1] = current[1] or opts.retain_as_published
        full = []
        for session, (qos, keep_retain) in targets.items():
            session.enqueue(msg, min(qos, msg.qos), msg.retain and keep_retain)
            if not session.has_room.is_set() and not session.stalled:
                full.append(session)
        return full

    async def wait_for_room(self, sessions: list[Session]) -> None:
        """Back-pressure: hold the publisher (and so its PUBACK) until slow
        subscribers catch up. A subscriber that does not drain within the bound
        is marked stalled so it cannot slow every publisher down; its queue then
        fills up to the hard cap and further messages for it are dropped."""
        for session in sessions:
            try:
                await asyncio.wait_for(session.has_room.wait(), self.publisher_wait)
            except TimeoutError:
                if not session.closed:
                    session.stalled = True
                    log.warning("client %s is slow to read; publishers no longer wait for it", session.client_id)
