"""Tracker behaviour on synthetic detections: ids, confirmation, occlusion."""

from __future__ import annotations

import numpy as np

from agent.vision.config import TrackerConfig
from agent.vision.tracker import CONFIRMED, LOST, Tracker, greedy_match, iou_matrix


def box_at(cx: float, cy: float, w: float = 40, h: float = 30) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


class Seen:
    """What the tracker said about one track in one frame (tracks mutate later)."""

    def __init__(self, t) -> None:
        self.id, self.state, self.box, self.updated = t.id, t.state, t.box.copy(), t.updated
        self.confirmed = t.confirmed


def run(tracker: Tracker, frames: list[list[tuple[list[float], float]]], fps: float = 5.0) -> list[list[Seen]]:
    out = []
    for i, dets in enumerate(frames):
        boxes = [b for b, _ in dets]
        scores = [s for _, s in dets]
        out.append([Seen(t) for t in tracker.update(boxes, scores, ["car"] * len(dets), i / fps)])
    return out


def test_iou_matrix_and_buffer() -> None:
    a = np.array([box_at(0, 0)])
    b = np.array([box_at(40, 0), box_at(20, 0)])
    plain = iou_matrix(a, b)
    assert plain[0, 0] == 0.0
    assert abs(plain[0, 1] - (20 * 30) / (2 * 40 * 30 - 20 * 30)) < 1e-9
    assert iou_matrix(a, b, buffer=0.5)[0, 0] > 0  # touching boxes overlap once buffered


def test_greedy_match_takes_best_pairs_once() -> None:
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(sim, 0.2)) == [(0, 0)]  # row 1's only good column is taken
    sim = np.array([[0.9, 0.3], [0.85, 0.25]])
    assert sorted(greedy_match(sim, 0.2)) == [(0, 0), (1, 1)]


def test_one_moving_object_keeps_one_id_and_is_confirmed_after_min_hits() -> None:
    tr = Tracker(TrackerConfig(min_hits=3))
    frames = [[(box_at(50 + 25 * i, 100), 0.9)] for i in range(10)]
    out = run(tr, frames)
    assert not out[0][0].confirmed and not out[1][0].confirmed
    assert out[2][0].confirmed
    assert {t.id for f in out for t in f} == {1}


def test_fast_object_moving_more_than_its_width_per_frame_is_followed() -> None:
    tr = Tracker(TrackerConfig())
    # 40 px wide box moving 36 px per frame: IoU of consecutive boxes ~0.05
    frames = [[(box_at(50 + 36 * i, 100), 0.9)] for i in range(12)]
    out = run(tr, frames)
    assert {t.id for f in out for t in f} == {1}
    assert out[-1][0].state == CONFIRMED


def test_occlusion_keeps_id() -> None:
    tr = Tracker(TrackerConfig(max_lost=1.5))
    frames = []
    for i in range(16):
        hidden = 6 <= i < 10  # 4 frames = 0.8 s behind a bus
        frames.append([] if hidden else [(box_at(50 + 20 * i, 100), 0.9)])
    out = run(tr, frames)
    assert out[7][0].state == LOST
    assert {t.id for f in out for t in f} == {1}
    assert out[-1][0].state == CONFIRMED


def test_long_occlusion_drops_track() -> None:
    tr = Tracker(TrackerConfig(max_lost=0.5))
    frames = [[(box_at(50 + 20 * i, 100), 0.9)] if i < 5 or i > 12 else [] for i in range(16)]
    out = run(tr, frames)
    assert 1 in tr.removed or {t.id for t in out[-1]} != {1}
    assert {t.id for t in out[-1]} == {2}


def test_low_score_detections_keep_a_track_but_never_start_one() -> None:
    tr = Tracker(TrackerConfig(high_score=0.5, low_score=0.1, max_lost=0.3))
    frames = [[(box_at(50 + 20 * i, 100), 0.9 if i < 5 else 0.2)] for i in range(15)]
    frames[0].append((box_at(400, 300), 0.3))  # a weak blob elsewhere: no track
    out = run(tr, frames)
    assert [t.id for t in out[-1]] == [1]
    assert out[-1][0].updated and out[-1][0].state == CONFIRMED


def test_single_frame_false_positive_never_confirmed() -> None:
    tr = Tracker(TrackerConfig(min_hits=3))
    out = run(tr, [[(box_at(100, 100), 0.95)], [], [], []])
    assert out[0][0].state != CONFIRMED
    assert out[-1] == []


def test_two_objects_passing_each_other_keep_their_ids() -> None:
    tr = Tracker(TrackerConfig())
    frames = [[(box_at(50 + 20 * i, 100), 0.9), (box_at(450 - 20 * i, 140), 0.9)] for i in range(20)]
    out = run(tr, frames)
    first = {t.id: t.box[0] < 250 for t in out[0]}
    last = {t.id: t.box[0] > 250 for t in out[-1]}
    assert set(first) == set(last) == {1, 2}
    assert first == last  # the one that started left ended right


def test_majority_label_wins() -> None:
    tr = Tracker(TrackerConfig())
    labels = ["van", "car", "van", "van", "car", "van"]
    for i, lab in enumerate(labels):
        out = tr.update([box_at(50 + 10 * i, 100)], [0.9], [lab], i / 5)
    assert out[0].label == "van"


def test_label_follows_the_vehicle_a_track_was_handed_over_to() -> None:
    """A car leaving the image where a truck enters it can hand its track
    over; the class then becomes the truck's within about a second, while one
    odd label does not change it."""
    tr = Tracker(TrackerConfig())
    labels = ["car"] * 15 + ["truck"] * 6
    seen = []
    for i, lab in enumerate(labels):
        out = tr.update([box_at(50 + 20 * i, 100)], [0.9], [lab], i / 5)
        seen.append(out[0].label)
    assert {t.id for t in out} == {1}
    assert seen[14] == seen[15] == "car"  # the first truck frame: still a car
    assert seen[-1] == "truck"  # 1.2 s of truck detections: a truck


def test_confirmed_track_prefers_detections_of_its_own_class() -> None:
    """A truck in the next lane that the car's prediction only brushes starts
    its own track instead of continuing the car's; a car detection there would
    continue it, and so does a truck detection right on the prediction (the
    model calling the car a truck for a frame)."""

    def after(label: str, dy: float) -> list:
        tr = Tracker(TrackerConfig())
        for i in range(6):
            tr.update([box_at(100 + 20 * i, 100)], [0.9], ["car"], i / 5)
        return [(t.id, t.updated) for t in tr.update([box_at(220, 100 + dy, 40, 50)], [0.9], [label], 6 / 5)]

    assert after("truck", dy=36) == [(1, False), (2, True)]
    assert after("car", dy=36) == [(1, True)]
    assert after("truck", dy=10) == [(1, True)]


def test_motion_pieces_of_one_vehicle_are_joined_but_following_vehicles_are_not() -> None:
    from agent.vision.motion import merge_pieces

    bus_halves = np.array([[100, 50, 180, 110], [188, 52, 260, 110]])  # split by a lamp post, 8 px gap
    assert merge_pieces(bus_halves).tolist() == [[100, 50, 260, 110]]
    convoy = np.array([[100, 50, 180, 110], [230, 50, 310, 110]])  # 50 px apart: two cars
    assert len(merge_pieces(convoy)) == 2
    stacked = np.array([[100, 50, 180, 110], [100, 120, 180, 180]])  # two lanes, one above the other
    assert len(merge_pieces(stacked)) == 2
