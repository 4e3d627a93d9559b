"""Signed model updates: fetch (MQTT chunks or an https URL), verify, stage, warm up, switch.

The signed `model` command carries the manifest text, the model file's sha256
and size, and either `chunks` (the file then follows as raw MQTT messages on
`cmd/model_chunk/<command id>/<index>`) or a `url`. Chunks need no signature:
the signed sha256 decides whether the assembled file is the one the hub meant.

Layout under `[vision] models_dir`: `<name>` is a symlink to
`.versions/<name>-<version>/`; switching is one atomic rename of a new
symlink over it, so a reader sees the old model or the new one, never half of
each. The new model is loaded and run once (the vision warm-up) before the
switch: if that fails, nothing is switched. Versions are dotted numbers and
must be newer than the installed one (anti-rollback).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import time
import tomllib
from typing import TYPE_CHECKING, Any

from agent.remote.commands_basic import CommandFailed
from agent.remote.envelope import ID_PATTERN, Command, Refused

if TYPE_CHECKING:
    from agent.remote.manager import RemoteManager
    from agent.vision.manifest import Manifest

VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


class Transfer:
    def __init__(self, folder: str, chunks: int, max_bytes: int) -> None:
        self.folder = folder
        self.chunks = chunks
        self.max_bytes = max_bytes
        self.received: set[int] = set()
        self.bytes = 0
        self.done = asyncio.Event()
        self.error = ""


class ModelUpdater:
    def __init__(self, mgr: RemoteManager) -> None:
        self.mgr = mgr
        self.models_dir = os.path.abspath(mgr.agent.config.vision.models_dir)
        self.staging = os.path.join(mgr.state_dir, "model-staging")
        self.transfers: dict[str, Transfer] = {}

    # -- checks before `accepted` ---------------------------------------------

    def installed_version(self, name: str) -> str:
        # the manifest models load with the first model command, not at start-up
        from agent.vision.manifest import ModelError, load_manifest

        versions = [self.mgr.state.get("models", {}).get(name, "")]
        try:
            versions.append(load_manifest(os.path.join(self.models_dir, name)).model.version)
        except ModelError:
            pass
        numeric = [v for v in versions if v and VERSION.match(v)]
        return max(numeric, key=version_key) if numeric else ""

    def precheck(self, cmd: Command) -> Manifest:
        a = cmd.args
        text = a.get("manifest")
        if not isinstance(text, str):
            raise Refused("malformed", "args.manifest must be the manifest.toml text")
        from agent.vision.manifest import Manifest

        try:
            manifest = Manifest.model_validate(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise Refused("malformed", f"args.manifest is not a valid model manifest: {str(exc)[:300]}") from None
        m = manifest.model
        if not ID_PATTERN.match(m.name) or "." in m.name:
            raise Refused("malformed", f"model name {m.name!r} cannot be a folder name")
        if not VERSION.match(m.version):
            raise Refused("malformed", f"model version {m.version!r} must be dotted numbers (e.g. 1.4.0) so that older ones can be refused")
        if a.get("sha256") != m.sha256:
            raise Refused("malformed", "args.sha256 differs from the manifest's [model] sha256")
        current = self.installed_version(m.name)
        if current and version_key(m.version) <= version_key(current):
            raise Refused("downgrade", f"model {m.name} version {m.version} is not newer than the installed {current}; publish a higher version")
        size = a.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= self.mgr.config.max_model_bytes:
            raise Refused("malformed", f"args.size must be the file size in bytes, at most [remote] max_model_bytes ({self.mgr.config.max_model_bytes})")
        chunks, url = a.get("chunks"), a.get("url")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise Refused("malformed", "args.url must be an http(s) URL")
        elif isinstance(chunks, bool) or not isinstance(chunks, int) or not 0 < chunks <= 100_000:
            raise Refused("malformed", "give args.chunks (then send the file on cmd/model_chunk/<id>/<n>) or args.url")
        return manifest

    def accept(self, cmd: Command) -> None:
        """Runs with `accepted`, before any later message is handled: chunks that follow the command at once have a place to go."""
        self.precheck(cmd)
        work = os.path.join(self.staging, cmd.id)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work, mode=0o700)
        if not cmd.args.get("url"):
            self.transfers[cmd.id] = Transfer(work, cmd.args["chunks"], cmd.args["size"])

    # -- the command ----------------------------------------------------------

    async def handle(self, cmd: Command) -> dict[str, Any]:
        manifest = self.precheck(cmd)
        m = manifest.model
        work = os.path.join(self.staging, cmd.id)
        try:
            data_file = os.path.join(work, "download")
            if cmd.args.get("url"):
                await asyncio.to_thread(_download, cmd.args["url"], data_file, cmd.args["size"])
            else:
                await self._receive(cmd, data_file)
            digest = await asyncio.to_thread(_sha256, data_file)
            if digest != m.sha256 or os.path.getsize(data_file) != cmd.args["size"]:
                raise CommandFailed(
                    f"the delivered file has sha256 {digest} and {os.path.getsize(data_file)} bytes, not the signed {m.sha256} and {cmd.args['size']}: damaged or tampered, not installed"
                )
            folder = os.path.join(work, "model")
            os.makedirs(folder)
            os.replace(data_file, os.path.join(folder, m.file))
            with open(os.path.join(folder, "manifest.toml"), "w", encoding="utf-8") as fh:
                fh.write(cmd.args["manifest"])
            try:
                await asyncio.to_thread(_warm_up, folder)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises many types
                raise CommandFailed(f"warm-up of model {m.name} {m.version} failed, the installed model stays: {exc}") from None
            previous = self._switch(m.name, m.version, folder)
        except CommandFailed as exc:
            self.mgr.agent.uplink.send_event("model_refused", {"id": cmd.id, "model": m.name, "version": m.version, "reason": str(exc)})
            raise
        finally:
            self.transfers.pop(cmd.id, None)
            shutil.rmtree(work, ignore_errors=True)
        self.mgr.state.setdefault("models", {})[m.name] = m.version
        self.mgr.save_state()
        self.mgr.agent.uplink.send_event("model_updated", {"id": cmd.id, "model": m.name, "version": m.version, "previous": previous})
        self.mgr.log.warning("model %s switched to version %s (was %s)", m.name, m.version, previous or "none")
        data = {"model": m.name, "version": m.version, "previous": previous}
        if any(getattr(c, "model", None) == m.name for c in self.mgr.agent.config.cameras) and self.mgr.agent.vision is not None:
            # The vision workers load models at start: restart the agent so they use the new one.
            self.mgr.results.send_after_restart("model", cmd.id, "done", **data)
            self.mgr.request_restart(f"model {m.name} {m.version}")
            data["restarting"] = True
        return data

    async def _receive(self, cmd: Command, data_file: str) -> None:
        t = self.transfers[cmd.id]
        work = t.folder
        try:
            await asyncio.wait_for(t.done.wait(), self.mgr.config.transfer_timeout)
        except TimeoutError:
            raise CommandFailed(
                f"received {len(t.received)} of {t.chunks} chunks within transfer_timeout {self.mgr.config.transfer_timeout:.0f} s; send the missing ones again"
            ) from None
        if t.error:
            raise CommandFailed(t.error)
        with open(data_file, "wb") as out:
            for i in range(t.chunks):
                part = os.path.join(work, f"part-{i}")
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out)
                os.unlink(part)

    def chunk(self, name: str, payload: bytes) -> None:
        """`cmd/model_chunk/<id>/<index>`: raw bytes of one piece of the file."""
        parts = name.split("/")
        t = self.transfers.get(parts[1]) if len(parts) == 3 else None
        if t is None or t.done.is_set() or not parts[2].isdigit() or int(parts[2]) >= t.chunks:
            return  # not a transfer in progress (or a repeat after it ended): nothing to do
        index = int(parts[2])
        if index not in t.received:
            t.bytes += len(payload)
            if t.bytes > t.max_bytes:
                t.error = f"more than the announced {t.max_bytes} bytes arrived; not installed"
                t.done.set()
                return
            with open(os.path.join(t.folder, f"part-{index}"), "wb") as fh:
                fh.write(payload)
            t.received.add(index)
        if len(t.received) == t.chunks:
            t.done.set()

    def _switch(self, name: str, version: str, staged: str) -> str:
        versions = os.path.join(self.models_dir, ".versions")
        os.makedirs(versions, exist_ok=True)
        target = os.path.join(versions, f"{name}-{version}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
        link = os.path.join(self.models_dir, name)
        previous = self.installed_version(name)
        if os.path.isdir(link) and not os.path.islink(link):
            # A model installed as a plain folder (as shipped): keep it as a version, then link.
            os.replace(link, os.path.join(versions, f"{name}-{previous or 'original'}-{int(time.time())}"))
        tmp_link = os.path.join(self.models_dir, f".{name}.new")
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(os.path.relpath(target, self.models_dir), tmp_link)
        os.replace(tmp_link, link)  # the atomic switch
        from agent.remote.statefile import fsync_dir

        fsync_dir(self.models_dir)
        return previous


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _warm_up(folder: str) -> None:
    from agent.vision.models import Detector

    Detector(folder, warmup=True)


def _download(url: str, path: str, size: int) -> None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:  # noqa: S310 - http(s) only, checked above
            total = 0
            for block in iter(lambda: resp.read(1 << 20), b""):
                total += len(block)
                if total > size:
                    raise CommandFailed(f"{url} delivers more than the announced {size} bytes; not installed")
                out.write(block)
    except OSError as exc:
        raise CommandFailed(f"cannot download the model from {url}: {exc}") from None
