"""Zones and parking bays on synthetic tracks: debounce, bays, free spaces."""

from __future__ import annotations

from agent.vision.config import TrackerConfig, ZoneConfig
from agent.vision.tally import free_spaces
from agent.vision.tracker import Tracker
from agent.vision.zones import Debounced, Zone

W, H = 640, 360
BAY_A = ZoneConfig(name="a", kind="bay", polygon=[(0.0, 0.5), (0.25, 0.5), (0.25, 1.0), (0.0, 1.0)], debounce=2.0)
BAY_B = ZoneConfig(name="b", kind="bay", polygon=[(0.25, 0.5), (0.5, 0.5), (0.5, 1.0), (0.25, 1.0)], debounce=2.0)


def car(cx: float, cy: float) -> list[float]:
    return [cx - 40, cy - 25, cx + 40, cy + 25]


def run(zones: list[Zone], frames: list[list[list[float]]], fps: float = 5.0) -> list[dict[str, int | None]]:
    tracker = Tracker(TrackerConfig(max_lost=2.0))
    states = []
    for i, boxes in enumerate(frames):
        tracks = tracker.update(boxes, [0.9] * len(boxes), ["car"] * len(boxes), i / fps)
        for z in zones:
            z.update(tracks, i / fps)
        states.append({z.name: z.state.value for z in zones})
    return states


def test_debounced_value_changes_only_after_holding() -> None:
    d = Debounced(1.0)
    assert not d.update(1, 0.0) and d.value is None
    assert d.update(1, 1.0) and d.value == 1
    assert not d.update(0, 1.2) and not d.update(1, 1.4)  # a 0.2 s blip is ignored
    assert not d.update(0, 2.0) and d.update(0, 3.0) and d.value == 0


def test_parked_car_occupies_its_bay_and_a_passing_car_does_not_occupy_the_other() -> None:
    a, b = Zone(BAY_A, W, H), Zone(BAY_B, W, H)
    frames = []
    for i in range(40):
        boxes = [car(80, 270)]  # parked in bay a the whole time
        if 10 <= i < 30:
            boxes.append(car(100 + 20 * (i - 10), 270))  # drives through bay b's area in ~1.4 s... keeps moving
        frames.append(boxes)
    states = run([a, b], frames)
    assert states[-1] == {"a": 1, "b": 0}
    assert all(s["b"] != 1 for s in states)  # passing never flipped bay b
    assert free_spaces({"a": a.state.value, "b": b.state.value}) == 1


def test_car_parking_then_leaving_flips_the_bay_after_debounce() -> None:
    b = Zone(BAY_B, W, H)
    frames = [[] for _ in range(15)] + [[car(240, 270)] for _ in range(30)] + [[] for _ in range(30)]
    states = run([b], frames)
    assert states[14]["b"] == 0
    assert states[44]["b"] == 1
    assert states[-1]["b"] == 0


def test_brief_occlusion_of_a_parked_car_keeps_the_bay_occupied() -> None:
    a = Zone(BAY_A, W, H)
    frames = [[car(80, 270)] for _ in range(20)] + [[] for _ in range(4)] + [[car(80, 270)] for _ in range(10)]
    states = run([a], frames)
    assert [s["a"] for s in states[15:]] == [1] * len(states[15:])


def test_zone_counts_objects_and_holds_them_through_max_lost() -> None:
    z = Zone(ZoneConfig(name="crossing", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], debounce=0.0), W, H)
    frames = [[car(100, 100), car(400, 250)] for _ in range(10)] + [[] for _ in range(20)]
    states = run([z], frames)
    assert states[5]["crossing"] == 2
    # gone after frame 9, but possibly only occluded until max_lost (2 s = 10 frames) has passed
    assert states[15]["crossing"] == 2
    assert states[-1]["crossing"] == 0


def test_unknown_bay_gives_no_free_spaces() -> None:
    assert free_spaces({"a": None, "b": 0}) is None
    assert free_spaces({"a": 1, "b": 0, "c": 0}) == 2
