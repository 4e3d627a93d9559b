"""edge-flash: provision and flash edge-agent gateways (see docs/flashing.md).

Run as `edge-flash ...` once installed, or `python -m tools.flash ...` from a checkout.
"""
from __future__ import annotations

import sys

from tools.flashing.cli import main

if __name__ == "__main__":
    sys.exit(main())
