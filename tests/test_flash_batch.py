"""Batch mode: one card per CSV row, swap prompts, summary, inventory; and an interrupted write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flash_support import Kit, needs_disk_tools, write_config

from tools.flashing import batch
from tools.flashing.cli import main, parser
from tools.flashing.errors import FlashError
from tools.flashing.progress import SilentProgress
from tools.flashing.provision import Context
from tools.flashing.target import Target
from tools.flashing.writer import write_image

pytestmark = needs_disk_tools


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("batch"), "trixie")


def batch_args(kit: Kit, csv: Path, target: str, inventory: Path) -> list[str]:
    argv = kit.args(None)
    argv[0] = "batch"
    i = argv.index("--config")
    del argv[i : i + 2]
    i = argv.index("--inventory")
    argv[i + 1] = str(inventory)
    return argv[:1] + [str(csv)] + argv[1:] + ["--target", target]


def test_batch_writes_one_file_per_gateway_with_distinct_identities(kit: Kit, tmp_path: Path, capsys) -> None:
    for gid in ("gw-a", "gw-b", "gw-c"):
        write_config(tmp_path / f"{gid}.toml", gid)
    csv = tmp_path / "gateways.csv"
    csv.write_text("gateway_id,config,eth_address,eth_gateway\ngw-a,gw-a.toml,10.0.0.11/24,10.0.0.1\ngw-b,gw-b.toml,,\ngw-c,gw-c.toml,,\n")
    inventory = tmp_path / "inv"
    (tmp_path / "out").mkdir()
    code = main(batch_args(kit, csv, str(tmp_path / "out" / "{gateway_id}.img"), inventory))
    text = capsys.readouterr().out
    assert code == 0, text
    assert "3 of 3 done" in text
    rows = json.loads((inventory / "inventory.json").read_text())
    assert [r["gateway_id"] for r in rows] == ["gw-a", "gw-b", "gw-c"]
    assert all(r["status"] == "verified" for r in rows)
    assert len({r["certificate_sha256"] for r in rows}) == 3 and len({r["public_key_sha256"] for r in rows}) == 3
    assert len({r["written_sha256"] for r in rows}) == 3 and len({r["image_sha256"] for r in rows}) == 1
    for gid in ("gw-a", "gw-b", "gw-c"):
        assert (tmp_path / "out" / f"{gid}.img").exists()
    assert len((inventory / "inventory.csv").read_text().splitlines()) == 4
    # running the same batch again resumes it: nothing is written twice
    (tmp_path / "out" / "gw-b.img").unlink()
    assert main(batch_args(kit, csv, str(tmp_path / "out" / "{gateway_id}.img"), inventory)) == 0
    assert capsys.readouterr().out.count("done before") == 3
    assert not (tmp_path / "out" / "gw-b.img").exists()
    assert len(json.loads((inventory / "inventory.json").read_text())) == 3


def test_batch_on_one_reader_prompts_to_swap_and_summarises_failures(kit: Kit, tmp_path: Path) -> None:
    write_config(tmp_path / "gw-x.toml", "gw-x")
    write_config(tmp_path / "gw-y.toml", "gw-y")
    bad = tmp_path / "gw-z.toml"
    write_config(bad, "gw-z")
    bad.write_text(bad.read_text().replace('site = "district-07"', 'site = "Bad Site"'))
    csv = tmp_path / "gateways.csv"
    csv.write_text("config\ngw-x.toml\ngw-y.toml\n")
    prompts: list[str] = []
    answers = iter(["", "s"])

    def ask(question: str) -> str:
        prompts.append(question)
        return next(answers)

    args = parser().parse_args(batch_args(kit, csv, str(tmp_path / "reader.img"), tmp_path / "inv"))
    out = open(tmp_path / "log.txt", "w")
    ctx = Context(args, out=out, progress=SilentProgress())
    assert batch.run_batch(ctx, str(csv), args.target, ask=ask) == 2  # one skipped
    out.close()
    log = (tmp_path / "log.txt").read_text()
    assert len(prompts) == 2 and "Insert the card for gw-x" in prompts[0] and "gw-y" in prompts[1]
    assert "gw-x" in log and "verified" in log and "skipped" in log and "1 of 2 done" in log

    csv.write_text("config\ngw-z.toml\n")
    with pytest.raises(FlashError, match="gateway config is invalid"):
        batch.read_jobs(str(csv), "x.img")  # a bad row stops the batch before any card is written


def test_batch_csv_errors(tmp_path: Path) -> None:
    csv = tmp_path / "g.csv"
    csv.write_text("name\nx\n")
    with pytest.raises(FlashError, match="no 'config' column"):
        batch.read_jobs(str(csv), "t.img")
    write_config(tmp_path / "gw-a.toml", "gw-a")
    csv.write_text("config,gateway_id\ngw-a.toml,gw-b\n")
    with pytest.raises(FlashError, match="gateway_id 'gw-b' but"):
        batch.read_jobs(str(csv), "t.img")
    csv.write_text("config\ngw-a.toml\ngw-a.toml\n")
    with pytest.raises(FlashError, match="appears twice"):
        batch.read_jobs(str(csv), "t.img")


def test_interrupted_write_leaves_no_partition_table(tmp_path: Path) -> None:
    target_path = tmp_path / "card.img"
    target_path.write_bytes(b"\xaa" * (1 << 20))

    def chunks():
        yield b"\x55" * 4096  # the first block carries the partition table
        yield os.urandom(4096)
        raise KeyboardInterrupt

    with pytest.raises(FlashError, match="NOT verified") as info:
        write_image(chunks(), 3 * 4096, Target(str(target_path), "file", None, "", "", False), SilentProgress())
    assert "interrupted by the user" in info.value.message
    assert target_path.read_bytes()[:4096] == bytes(4096)


def test_verification_catches_a_card_that_does_not_hold_the_image(tmp_path: Path) -> None:
    from tools.flashing.writer import verify_image

    image = [os.urandom(8192) for _ in range(4)]
    target_path = tmp_path / "card.img"
    sha, _ = write_image(iter(image), 4 * 8192, Target(str(target_path), "file", None, "", "", False), SilentProgress())
    target = Target(str(target_path), "file", None, "", "", False)
    assert verify_image(target, 4 * 8192, sha, 8192, SilentProgress(), iter(image))[0] == sha
    with open(target_path, "r+b") as f:  # a card that silently dropped a write
        f.seek(3 * 8192 + 100)
        f.write(b"\0")
    with pytest.raises(FlashError, match="differs from the image in the block at byte 24576"):
        verify_image(target, 4 * 8192, "", 4096 * 2, SilentProgress(), iter(image))
    with pytest.raises(FlashError, match="verification FAILED.*NOT verified"):
        verify_image(target, 4 * 8192, sha, 4096, SilentProgress())
