"""The installer's record of flashed gateways, for the central platform's registry.

Two files in one directory, kept in step: inventory.csv (for people and
spreadsheets) and inventory.json (for the registry import). One row per card
written, including failed ones, so nothing flashed goes unrecorded.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from .errors import FlashError

FIELDS = (
    "gateway_id",
    "site",
    "hostname",
    "status",
    "certificate_sha256",
    "public_key_sha256",
    "identity",
    "image",
    "image_sha256",
    "written_sha256",
    "written_bytes",
    "target",
    "target_serial",
    "mechanism",
    "release",
    "flashed_at",
    "error",
)


class Inventory:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.csv_path = self.dir / "inventory.csv"
        self.json_path = self.dir / "inventory.json"

    def rows(self) -> list[dict[str, Any]]:
        if not self.json_path.exists():
            return []
        try:
            data = json.loads(self.json_path.read_text())
        except (OSError, ValueError) as exc:
            raise FlashError(f"{self.json_path} cannot be read ({exc})", "restore it from inventory.csv or a backup; it is the registry's record") from exc
        if not isinstance(data, list):
            raise FlashError(f"{self.json_path} is not a JSON list", "restore it from a backup")
        return data

    def check_new(self, gateway_id: str, public_key_sha256: str = "", replace: bool = False) -> None:
        for row in self.rows():
            if public_key_sha256 and row.get("public_key_sha256") == public_key_sha256:
                raise FlashError(
                    f"the key for {gateway_id} is already recorded for {row.get('gateway_id')}", "this must never happen; report it and do not install the card"
                )
            if row.get("gateway_id") == gateway_id and row.get("status") == "verified" and not replace:
                raise FlashError(
                    f"gateway {gateway_id} already has a verified card (flashed {row.get('flashed_at')})",
                    "pass --replace to make a new card with a new identity (revoke the old certificate)",
                )

    def append(self, row: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = self.rows()
        record = {field: row.get(field, "") for field in FIELDS}
        rows.append(record)
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rows, indent=2) + "\n")
        os.replace(tmp, self.json_path)
        new_csv = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new_csv:
                writer.writeheader()
            writer.writerow(record)
