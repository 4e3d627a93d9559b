"""Which Raspberry Pi OS release a boot partition belongs to, and so how it is customised.

Images from October 2025 on (Trixie) carry `user-data`, `network-config` and
`meta-data` on the boot partition and run cloud-init at first boot. Bookworm
images (October 2023 to 2025) have no cloud-init and run `firstrun.sh` when
cmdline.txt asks for it. Bullseye and older ship Python 3.9, which the agent
cannot run on, so they are refused.
"""

from __future__ import annotations

import re

from .errors import FlashError
from .fat import FatVolume

ISSUE_DATE = re.compile(r"Raspberry Pi reference (\d{4}-\d{2}-\d{2})")
CLOUD_INIT_FILES = ("user-data", "meta-data", "network-config")
FIRST_BOOKWORM = "2023-10-10"
FIRST_TRIXIE = "2025-10-01"
MECHANISMS = ("auto", "cloud-init", "firstrun")


class Release:
    def __init__(self, name: str, date: str, python: str, mechanism: str, evidence: str) -> None:
        self.name = name
        self.date = date
        self.python = python
        self.mechanism = mechanism
        self.evidence = evidence

    def describe(self) -> str:
        date = f" {self.date}" if self.date else ""
        return f"Raspberry Pi OS {self.name}{date} (Python {self.python}; first boot via {self.mechanism}; {self.evidence})"


def detect_release(vol: FatVolume, forced: str = "auto") -> Release:
    date = ""
    if vol.exists("issue.txt"):
        match = ISSUE_DATE.search(vol.read_file("issue.txt").decode("utf-8", "replace"))
        date = match.group(1) if match else ""
    has_cloud_init = any(vol.exists(name) for name in CLOUD_INIT_FILES)
    if not vol.exists("cmdline.txt"):
        raise FlashError(
            "the boot partition has no cmdline.txt, so it is not a Raspberry Pi OS boot partition",
            "use a Raspberry Pi OS image as downloaded from raspberrypi.com",
        )
    if forced == "cloud-init" or (forced == "auto" and (has_cloud_init or date >= FIRST_TRIXIE)):
        evidence = "cloud-init files on the boot partition" if has_cloud_init else f"image date {date or 'forced'}"
        return Release("trixie", date, "3.13", "cloud-init", evidence)
    if forced == "firstrun" or date >= FIRST_BOOKWORM or vol.exists("kernel_2712.img"):
        return Release("bookworm", date, "3.11", "firstrun", f"image date {date or 'unknown'}, no cloud-init files")
    raise FlashError(
        f"this image ({'dated ' + date if date else 'no date in issue.txt'}) is older than Raspberry Pi OS Bookworm; "
        "its Python is too old for the agent (3.11 or newer needed)",
        "use a Raspberry Pi OS Bookworm or Trixie image, or --mechanism firstrun/cloud-init if you know better",
    )
