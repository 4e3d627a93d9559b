"""Fixtures shared by the unit tests."""

from collections.abc import Iterator
from typing import Any

import pytest
from broker_support import BrokerThread, client_factory, running_broker
from flash_support import disk_tools  # noqa: F401  (fails a flashing test when sfdisk/mtools are missing)


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    """An embedded broker in its own event-loop thread."""
    yield from running_broker()


@pytest.fixture
def clients(broker: BrokerThread) -> Iterator[Any]:
    """make(proto, client_id, connect, inflight) -> a recording paho client of `broker`."""
    yield from client_factory(broker)
