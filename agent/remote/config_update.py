"""Signed configuration updates: validate, apply atomically, prove health, or roll back.

The update is checked with the same validator as `edge-agent config check`,
then the running file is replaced atomically (the old bytes kept in
`<data_dir>/remote/config.previous.toml`) and the agent restarts itself with
it (re-exec; under systemd the PID and the unit stay the same). A trial record
in the data_dir makes the next start a trial: the new config must connect to
the hub with every task healthy within `[remote] rollback_deadline`. If it
does not, or the agent crashed twice while trying, the old file is put back
and the agent restarts again with it; the hub then gets the `failed` result
and a `config_rolled_back` event with the reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from agent.remote.commands_basic import CommandFailed
from agent.remote.envelope import Command, Refused
from agent.remote.secrets import insecure_secrets
from agent.remote.statefile import read_json, write_bytes, write_json

if TYPE_CHECKING:
    from agent.remote.manager import RemoteManager

MAX_TRIAL_STARTS = 2  # a config that crashed the agent this often is rolled back at the next start


class ConfigUpdater:
    def __init__(self, mgr: RemoteManager) -> None:
        self.mgr = mgr
        self.trial_path = os.path.join(mgr.state_dir, "config_trial.json")
        self.previous_path = os.path.join(mgr.state_dir, "config.previous.toml")

    # -- the command ----------------------------------------------------------

    def precheck(self, cmd: Command) -> None:
        """Refusals decided before `accepted`: a version that is not newer is a downgrade."""
        version, current = cmd.args.get("version"), self.mgr.state.get("config_version", 0)
        if isinstance(version, int) and not isinstance(version, bool) and version <= current:
            raise Refused("downgrade", f"config version {version} is not newer than the running version {current}; send a higher version")

    async def handle(self, cmd: Command) -> dict[str, Any]:
        from agent.config.errors import ConfigError
        from agent.config.handoff import load_plain
        from agent.diag.redact import scrub_text

        mgr = self.mgr
        text, version = cmd.args.get("config"), cmd.args.get("version")
        if not isinstance(text, str) or isinstance(version, bool) or not isinstance(version, int):
            raise CommandFailed("args.config (the TOML text) and args.version (an integer, higher than the running one) are required")
        self.precheck(cmd)
        current = mgr.state.get("config_version", 0)
        if not mgr.agent.config_path:
            raise CommandFailed("the agent was started without a config file, so there is nothing to replace")
        try:
            # validated in a child process, like at start-up: pydantic stays out of the agent
            new = await asyncio.to_thread(load_plain, text=text, name="<config update>")
        except ConfigError as exc:
            raise CommandFailed("the new config is invalid, nothing changed:\n" + scrub_text(exc.render())) from None
        except RuntimeError as exc:
            raise CommandFailed(f"cannot check the new config, nothing changed: {exc}") from None
        if new.gateway.id != mgr.gateway:
            raise CommandFailed(f"the new config names gateway {new.gateway.id!r}; a gateway's id cannot change remotely (re-provision it)")
        problems = insecure_secrets(new)
        if problems:
            raise CommandFailed("the new config names secret files with unsafe permissions: " + "; ".join(problems))
        path = mgr.agent.config_path
        with open(path, "rb") as fh:
            old = fh.read()
        write_bytes(self.previous_path, old)
        write_json(
            self.trial_path,
            {"id": cmd.id, "version": version, "previous_version": current, "deadline": mgr.config.rollback_deadline, "starts": 0, "created": time.time()},
        )
        try:
            write_bytes(path, text.encode(), mode=_mode(path))
        except OSError as exc:
            os.unlink(self.trial_path)
            raise CommandFailed(f"cannot replace {path} ({exc.strerror}); the config's directory must be writable by the agent (docs/security.md)") from None
        mgr.log.warning(
            "config version %d written to %s (command %s); restarting to try it, rollback after %.0f s if unhealthy",
            version,
            path,
            cmd.id,
            mgr.config.rollback_deadline,
        )
        mgr.request_restart(f"config update {cmd.id}")
        return {"version": version, "previous_version": current, "restarting": True, "rollback_deadline": mgr.config.rollback_deadline}

    # -- at start-up ----------------------------------------------------------

    def pending_trial(self) -> dict[str, Any] | None:
        trial = read_json(self.trial_path, None)
        if not isinstance(trial, dict):
            return None
        trial["starts"] = int(trial.get("starts", 0)) + 1
        write_json(self.trial_path, trial)
        return trial

    async def run_trial(self, trial: dict[str, Any]) -> None:
        """Watch the new config come up; commit it, or roll it back (bounded by its deadline)."""
        mgr = self.mgr
        if trial["starts"] > MAX_TRIAL_STARTS:
            self._rollback(trial, f"the agent stopped {trial['starts'] - 1} times while trying it")
            return
        deadline = time.monotonic() + float(trial["deadline"])
        while time.monotonic() < deadline:
            if self._healthy():
                self._commit(trial)
                return
            await asyncio.sleep(0.25)
        uplink = mgr.agent.uplink.stats()
        why = f"not healthy within {float(trial['deadline']):.0f} s"
        if not uplink.get("connected"):
            why += f": no connection to the hub broker {uplink.get('broker')} ({uplink.get('last_error') or 'no answer'})"
        else:
            failing = [n for n, s in mgr.agent.supervisor.status().items() if s.get("failing")]
            why += f": failing tasks {', '.join(failing)}"
        self._rollback(trial, why)

    def _healthy(self) -> bool:
        agent = self.mgr.agent
        if not agent.uplink.stats().get("connected"):
            return False
        return not any(s.get("failing") for s in agent.supervisor.status().values())

    def _commit(self, trial: dict[str, Any]) -> None:
        mgr = self.mgr
        mgr.state["config_version"] = trial["version"]
        mgr.save_state()
        os.unlink(self.trial_path)
        mgr.log.info("config version %d is healthy and kept (command %s)", trial["version"], trial["id"])
        mgr.results.send("config", trial["id"], "done", version=trial["version"], previous_version=trial["previous_version"])
        mgr.agent.uplink.send_event("config_applied", {"id": trial["id"], "version": trial["version"]})

    def _rollback(self, trial: dict[str, Any], why: str) -> None:
        mgr = self.mgr
        path = mgr.agent.config_path
        with open(self.previous_path, "rb") as fh:
            write_bytes(path, fh.read(), mode=_mode(path))
        os.unlink(self.trial_path)
        reason = f"config version {trial['version']} rolled back to version {trial['previous_version']}: {why}"
        mgr.log.error("%s", reason)
        # The event is durable (outbox); the result waits in the data_dir for the restarted agent.
        mgr.agent.uplink.send_event(
            "config_rolled_back", {"id": trial["id"], "version": trial["version"], "restored_version": trial["previous_version"], "reason": why}
        )
        mgr.results.send_after_restart("config", trial["id"], "failed", reason, rolled_back=True)
        mgr.request_restart("config rollback")


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o640
