"""Topic names, topic filters and the subscription tree.

Matching follows MQTT section 4.7: `+` matches exactly one level (possibly
empty), `#` matches the parent level and everything below it, and a filter
starting with a wildcard never matches a topic starting with `$` (so `#` does
not see `$SYS/...`, while `$SYS/#` does).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any


def valid_topic_name(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            return False
        if "+" in level and level != "+":
            return False
    return True


def is_shared(topic_filter: str) -> bool:
    return topic_filter.startswith("$share/")


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Does one filter match one topic name (used for retained messages)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


class _Node:
    __slots__ = ("children", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subs: dict[Hashable, Any] = {}


class SubscriptionTree:
    """Filters stored level by level, so a publish costs the depth of the topic
    rather than the number of subscriptions. Each filter maps subscriber keys
    to a value (the subscription options)."""

    def __init__(self) -> None:
        self._root = _Node()
        self.count = 0

    def add(self, topic_filter: str, key: Hashable, value: Any) -> bool:
        """Store; True if the key had no subscription on this filter before."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        new = key not in node.subs
        node.subs[key] = value
        self.count += new
        return new

    def remove(self, topic_filter: str, key: Hashable) -> bool:
        path = [self._root]
        levels = topic_filter.split("/")
        for level in levels:
            child = path[-1].children.get(level)
            if child is None:
                return False
            path.append(child)
        if path[-1].subs.pop(key, None) is None:
            return False
        self.count -= 1
        # Prune emptied branches so churn of client subscriptions cannot grow memory.
        for depth in range(len(levels), 0, -1):
            node = path[depth]
            if node.subs or node.children:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def match(self, topic: str) -> Iterator[tuple[Hashable, Any]]:
        """(key, value) for every subscription matching `topic`; a key appears once
        per matching filter."""
        levels = topic.split("/")
        end = len(levels)
        dollar = topic.startswith("$")
        stack = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == end:
                yield from node.subs.items()
                hash_node = node.children.get("#")
                if hash_node is not None:  # "a/#" also matches "a"
                    yield from hash_node.subs.items()
                continue
            if i or not dollar:
                hash_node = node.children.get("#")
                if hash_node is not None:
                    yield from hash_node.subs.items()
                plus = node.children.get("+")
                if plus is not None:
                    stack.append((plus, i + 1))
            child = node.children.get(levels[i])
            if child is not None:
                stack.append((child, i + 1))
