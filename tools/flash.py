"""edge-flash: provision and flash edge-agent gateways (see docs/flashing.md).

Run as `edge-flash ...` once installed, or `python tools/flash.py ...` from a checkout.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    # run as a script from a checkout: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.flashing.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
