"""Shared fixtures for the hardware-in-the-loop tests.

Broker fixtures (see hil_tests/broker.py for the full API):

- `mosquitto`: a plain Mosquitto on a free 127.0.0.1 port, one per test.
- `mosquitto_factory(**options)`: start any number of brokers, e.g.
  `mosquitto_factory(tls=True, require_certificate=True)`; options are those of
  `MosquittoBroker` (`tls=True` means "use the session's test_ca").
- `test_ca`: a session-wide CertAuthority (ca.pem, server/client/expired certs,
  `other_ca()` for a wrong CA).

A failing test's report carries the log of every agent process it started
(hil_tests/agent_process.py), so the agent's own account of the failure is there.

A missing Mosquitto is a test failure telling how to install it, never a skip:
a skipped broker test would hide that the uplink was never exercised.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from hil_tests.agent_process import started_agents, take_started_agents
from hil_tests.broker import MosquittoBroker, MosquittoNotInstalled
from hil_tests.broker_certs import CertAuthority


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Callable[..., MosquittoBroker]]:
    brokers: list[MosquittoBroker] = []

    def make(tls: bool = False, start: bool = True, **options: Any) -> MosquittoBroker:
        if tls and "ca" not in options:
            options["ca"] = request.getfixturevalue("test_ca")
        workdir = tmp_path_factory.mktemp("mosquitto")
        try:
            broker = MosquittoBroker(workdir, **options)
        except MosquittoNotInstalled as exc:
            pytest.fail(str(exc), pytrace=False)
        brokers.append(broker)
        return broker.start() if start else broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    return mosquitto_factory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Teardown is a test's last report: its agents are then forgotten.
    agents = take_started_agents() if report.when == "teardown" else started_agents()
    if report.failed:
        # agents run one after another may share a log: each log once
        for log_file, agent in {agent.log_file: agent for agent in agents}.items():
            report.sections.append((f"agent log {log_file}", agent.log_tail()))
    return report
