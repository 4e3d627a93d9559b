"""Remote management: the gateway's side of `<prefix>/<site>/<gateway>/cmd/<name>`.

Every command is checked in this order: well-formed, signature (mandatory for
`config` and `model`, or for all with `require_signed_commands`), freshness
and replay (timestamp within `max_clock_skew`, nonce never seen), and only
then run. Each gets results on `<base>/result` with its correlation id:
`accepted`, then `done` or `failed` with a reason; a refused one gets
`refused` and a durable `command_refused` event. Payloads are never logged:
they may carry configuration.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from agent.remote import commands_basic
from agent.remote.commands_basic import CommandFailed
from agent.remote.config_update import ConfigUpdater
from agent.remote.envelope import Command, Refused, TrustedKeys, parse, peek_id
from agent.remote.replay import ReplayWindow, replay_path
from agent.remote.results import Results
from agent.remote.statefile import read_json, write_json

SIGNED_ONLY = {"config", "model"}
Handler = Callable[[Any, Command], Awaitable[dict[str, Any]]]


class RemoteManager:
    def __init__(self, agent: Any, log: logging.Logger) -> None:
        self.agent = agent
        self.config = agent.config.remote
        self.gateway = agent.config.gateway.id
        self.log = log
        self.state_dir = os.path.join(agent.data_dir, "remote")
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.state_path = os.path.join(self.state_dir, "state.json")
        self.state: dict[str, Any] = read_json(self.state_path, {})
        self.trusted = TrustedKeys(self.config.trusted_keys)
        self.replay = ReplayWindow(replay_path(agent.data_dir), max_skew=self.config.max_clock_skew, max_entries=self.config.replay_window_max)
        self.results = Results(agent.uplink, agent.uplink.topics.base, agent.data_dir, log)
        self.config_updater = ConfigUpdater(self)
        self.handlers: dict[str, Handler] = dict(commands_basic.HANDLERS)
        self.handlers["config"] = lambda mgr, cmd: self.config_updater.handle(cmd)
        self.prechecks: dict[str, Callable[[Command], None]] = {"config": self.config_updater.precheck}
        self.models: Any = None
        try:
            from agent.remote.model_update import ModelUpdater

            self.models = ModelUpdater(self)
            self.handlers["model"] = lambda mgr, cmd: self.models.handle(cmd)
            self.prechecks["model"] = self.models.accept
        except ImportError:  # a build without vision (no onnxruntime): no model updates
            pass
        self.log_level_timer: asyncio.TimerHandle | None = None
        self.base_log_level = logging.getLogger().level
        self.counters = {"accepted": 0, "refused": 0, "done": 0, "failed": 0}
        self._update_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._trial = self.config_updater.pending_trial()

    def start(self) -> None:
        self.agent.uplink.set_command_handler(self.on_command)
        self.agent.supervisor.start("remote", self.run)

    async def run(self) -> None:
        trial, self._trial = self._trial, None
        if trial is not None:
            self._spawn(self.config_updater.run_trial(trial))
        await self.results.run()

    def status(self) -> dict[str, Any]:
        return {
            **self.counters,
            "results_queued": self.results.queued(),
            "config_version": self.state.get("config_version", 0),
            "models": self.state.get("models", {}),
        }

    def save_state(self) -> None:
        write_json(self.state_path, self.state)

    def request_restart(self, why: str) -> None:
        async def later() -> None:
            await self.results.flush(3.0)  # let `accepted` reach the hub before the session closes
            await self.agent.outbox.flush(force_sync=True)  # events about this restart are on disk before it
            self.log.warning("restarting the agent: %s", why)
            self.agent.restart_requested = why
            self.agent.request_stop()

        self._spawn(later())

    # -- incoming -------------------------------------------------------------

    def on_command(self, topic: str, payload: bytes) -> None:
        name = topic.rsplit("/cmd/", 1)[-1]
        if name.startswith("model_chunk/"):
            if self.models is not None:
                self.models.chunk(name, payload)
            return
        try:
            cmd = parse(name, payload, gateway=self.gateway, trusted=self.trusted)
            if name not in self.handlers:
                raise Refused("unknown_command", f"unknown command {name!r}; known: {', '.join(sorted(self.handlers))}")
            if cmd.signed_by is None and (name in SIGNED_ONLY or self.config.require_signed_commands):
                raise Refused("unsigned", f"command {name!r} must be signed with a key in [remote] trusted_keys")
            self.replay.check_and_remember(cmd.nonce, cmd.ts)
            precheck = self.prechecks.get(name)
            if precheck is not None:
                precheck(cmd)
        except Refused as exc:
            self.refuse(name, peek_id(payload), exc)
            return
        self.counters["accepted"] += 1
        self.log.info("command %s %s accepted%s", name, cmd.id, " (signed)" if cmd.signed_by is not None else "")
        self.results.send(name, cmd.id, "accepted")
        self._spawn(self._execute(cmd))

    def refuse(self, name: str, cid: str | None, exc: Refused) -> None:
        self.counters["refused"] += 1
        self.log.warning("command %s %s refused (%s): %s", name, cid or "(no id)", exc.code, exc)
        self.results.send(name, cid, "refused", str(exc), code=exc.code)
        self.agent.uplink.send_event("command_refused", {"cmd": name, "id": cid, "code": exc.code, "reason": str(exc)})

    async def _execute(self, cmd: Command) -> None:
        handler = self.handlers[cmd.name]
        try:
            if cmd.name in SIGNED_ONLY:
                async with self._update_lock:  # one update at a time
                    data = await handler(self, cmd)
            else:
                data = await handler(self, cmd)
        except Refused as exc:
            self.refuse(cmd.name, cmd.id, exc)
            return
        except CommandFailed as exc:
            self._failed(cmd, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - one command's bug must not take the agent down
            self.log.error("command %s %s crashed: %s: %s", cmd.name, cmd.id, type(exc).__name__, exc, exc_info=exc)
            self._failed(cmd, f"{type(exc).__name__}: {exc}")
            return
        if data.get("restarting"):
            return  # the outcome is reported by the restarted agent
        self.counters["done"] += 1
        self.results.send(cmd.name, cmd.id, "done", **data)

    def _failed(self, cmd: Command, reason: str) -> None:
        from agent.diag.redact import scrub_text

        self.counters["failed"] += 1
        reason = scrub_text(reason)
        self.log.warning("command %s %s failed: %s", cmd.name, cmd.id, reason)
        self.results.send(cmd.name, cmd.id, "failed", reason)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        if self.log_level_timer is not None:
            self.log_level_timer.cancel()
        for task in self._tasks:
            task.cancel()
