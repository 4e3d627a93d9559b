"""A gateway without cameras installs only the core dependencies: the agent must run without the vision extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_agent_runs_without_numpy_opencv_onnxruntime(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'[gateway]\nid = "gw-core"\nsite = "lab"\ndata_dir = "{tmp_path / "data"}"\n'
        '[clock]\nsync_source = "assume"\n[uplink]\nport = 0\n'
        '[[devices]]\nname = "gateway"\ndriver = "system"\npoll_interval = 0.2\n'
    )
    # None in sys.modules makes any import of these fail, as on a core install.
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        for name in ("numpy", "cv2", "onnxruntime"):
            sys.modules[name] = None
        from agent.config.loader import load_config
        from agent.runtime.app import Agent

        agent = Agent(load_config({str(cfg)!r}))

        async def main():
            task = asyncio.create_task(agent.run())
            await asyncio.sleep(2)
            assert not task.done(), task
            status = agent.status()
            assert status["devices"]["gateway"]["online"], status["devices"]
            agent.request_stop()
            return await task

        assert asyncio.run(main()) == 0
        unused = sorted(m for m in ("pymodbus", "serial") if m in sys.modules)
        print("unused imports:", unused)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
