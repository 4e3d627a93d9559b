"""`edge-agent remote keygen`: a private signing key only its owner can read, and the line for the gateway's config."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from agent.config.loader import load_config_text

ROOT = Path(__file__).resolve().parents[1]


def test_keygen_writes_a_private_key_and_prints_the_trusted_keys_line(tmp_path: Path) -> None:
    out = tmp_path / "hub-signing.key"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent.cli.main", "remote", "keygen", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and b"PRIVATE KEY" in out.read_bytes()
    line = next(ln for ln in first.stdout.splitlines() if ln.startswith("trusted_keys"))
    cfg = load_config_text(f'[gateway]\nid = "gw"\nsite = "x"\n[remote]\n{line}\n', "g.toml")
    assert len(cfg.remote.trusted_keys) == 1
    again = run()
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
