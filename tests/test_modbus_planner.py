"""Block planner: coalescing, gaps, forbidden ranges, protocol limits and adaptive splits."""

from __future__ import annotations

from drivers.modbus.planner import Planner
from drivers.modbus.points import PointConfig, load_profile


def pt(name: str, address: int, type_: str = "uint16", table: str = "holding", **kw: object) -> PointConfig:
    return PointConfig(name=name, table=table, address=address, type=type_, **kw)  # type: ignore[arg-type]


def shape(blocks: list) -> list[tuple[str, int, int]]:
    return [(b.table, b.start, b.count) for b in blocks]


def test_contiguous_points_become_one_read() -> None:
    pts = [pt(f"p{i}", 2 * i, "float32") for i in range(10)]
    assert shape(Planner(max_gap=0).plan(pts)) == [("holding", 0, 20)]


def test_gap_bridged_up_to_max_gap_only() -> None:
    pts = [pt("a", 0), pt("b", 5), pt("c", 20)]  # gaps of 4 and 14 registers
    assert shape(Planner(max_gap=4).plan(pts)) == [("holding", 0, 6), ("holding", 20, 1)]
    assert shape(Planner(max_gap=3).plan(pts)) == [("holding", 0, 1), ("holding", 5, 1), ("holding", 20, 1)]
    assert shape(Planner(max_gap=14).plan(pts)) == [("holding", 0, 21)]


def test_tables_never_mixed() -> None:
    pts = [pt("a", 0), pt("b", 1, table="input"), pt("c", 0, "bool", table="coil"), pt("d", 1, "bool", table="discrete")]
    assert sorted(shape(Planner().plan(pts))) == [("coil", 0, 1), ("discrete", 1, 1), ("holding", 0, 1), ("input", 1, 1)]


def test_forbidden_range_never_spanned() -> None:
    pts = [pt("a", 0), pt("b", 4)]
    planner = Planner(max_gap=10, forbidden=[("holding", 2, 2)])
    assert shape(planner.plan(pts)) == [("holding", 0, 1), ("holding", 4, 1)]
    # a forbidden range in another table does not matter
    assert shape(Planner(max_gap=10, forbidden=[("input", 2, 2)]).plan(pts)) == [("holding", 0, 5)]


def test_125_register_limit() -> None:
    pts = [pt(f"p{i}", i) for i in range(300)]
    blocks = Planner(max_gap=0).plan(pts)
    assert [b.count for b in blocks] == [125, 125, 50]
    assert all(b.count <= 125 for b in blocks)
    # a multi-register value is never cut in two
    pts = [pt(f"f{i}", 4 * i, "float64") for i in range(40)]  # 160 registers
    blocks = Planner(max_gap=0).plan(pts)
    assert [b.count for b in blocks] == [124, 36]
    assert all((p.address - b.start) + p.count <= b.count for b in blocks for p in b.points)


def test_device_register_limit() -> None:
    pts = [pt(f"p{i}", 2 * i, "float32", table="input") for i in range(50)]
    assert [b.count for b in Planner(max_gap=0, max_registers=80).plan(pts)] == [80, 20]


def test_2000_bit_limit_and_bit_gaps() -> None:
    pts = [pt(f"c{i}", i, "bool", table="coil") for i in range(4500)]
    assert [b.count for b in Planner().plan(pts)] == [2000, 2000, 500]
    # bit gaps are cheap: 8 registers' worth of bits is 128 bits
    assert shape(Planner(max_gap=8).plan([pt("x", 0, "bool", table="coil"), pt("y", 100, "bool", table="coil")])) == [("coil", 0, 101)]


def test_bit_fields_of_one_register_share_a_read() -> None:
    pts = [pt("alarm", 10, "bool", bit=0), pt("door", 10, "bool", bit=3), pt("mode", 10, "bits", bit=4, width=4)]
    assert shape(Planner().plan(pts)) == [("holding", 10, 1)]


def test_illegal_address_learns_gaps_then_cuts() -> None:
    pts = [pt("a", 0, "float32"), pt("b", 2, "float32"), pt("c", 6, "float32")]
    planner = Planner(max_gap=10)
    first = planner.plan(pts)
    assert shape(first) == [("holding", 0, 8)]
    assert planner.learn_illegal(first[0])  # the gap 4..5 is not bridged any more
    second = planner.plan(pts)
    assert shape(second) == [("holding", 0, 4), ("holding", 6, 2)]
    assert planner.learn_illegal(second[0])  # contiguous but rejected: cut at the point boundary
    assert shape(planner.plan(pts)) == [("holding", 0, 2), ("holding", 2, 2), ("holding", 6, 2)]
    single = planner.plan(pts)[0]
    assert not planner.learn_illegal(single)  # one point: nothing left to split


def test_learned_split_applies_to_later_polls_with_other_points() -> None:
    planner = Planner(max_gap=10)
    blocks = planner.plan([pt("a", 0), pt("b", 5)])
    planner.learn_illegal(blocks[0])
    # a later poll with an extra point still does not bridge 1..4
    assert shape(planner.plan([pt("a", 0), pt("b", 5), pt("c", 6)])) == [("holding", 0, 1), ("holding", 5, 2)]


def test_shipped_meter_profiles_need_few_reads() -> None:
    for name, naive, most in (("eastron_sdm120", 14, 3), ("eastron_sdm630", 39, 5)):
        prof = load_profile(name)
        blocks = Planner(max_gap=prof.max_gap or 8, max_registers=prof.max_registers or 125).plan(prof.points)
        assert len(prof.points) == naive
        assert len(blocks) <= most
        assert all(b.count <= 80 for b in blocks)  # Eastron's 40-parameter limit
