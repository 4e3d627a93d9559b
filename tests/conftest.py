"""Fixtures shared by the unit tests."""

from flash_support import disk_tools  # noqa: F401  (fails a flashing test when sfdisk/mtools are missing)
