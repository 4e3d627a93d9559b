"""Motion mode keeps vehicles apart when their blobs touch: synthetic road
frames (flat vehicles on grey asphalt) through the real MotionDetector,
tracker and counting line, counted per direction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from agent.vision.config import LineConfig, TrackerConfig
from agent.vision.lines import CountingLine
from agent.vision.motion import MotionDetector, split_by_ground
from agent.vision.tracker import Tracker

W, H, FPS = 320, 180, 10.0
FAR, NEAR = 95, 125  # where the two lanes touch the road in the image (y): a near vehicle hides the lower part of a far one


@dataclass
class Box:
    """A vehicle seen from the side: a coloured box on its lane's ground line."""

    enter: int  # frame at which its front reaches the edge of the image
    speed: float  # px per frame, + to the right
    ground: int
    length: int
    height: int
    colour: tuple[int, int, int]
    cab_gap: int = 0  # >0: a cab this wide at the front whose lower half is missing

    def draw(self, img: np.ndarray, i: int) -> None:
        start = -self.length if self.speed > 0 else W
        x1 = int(round(start + self.speed * (i - self.enter)))
        x2, y1, y2 = x1 + self.length, self.ground - self.height, self.ground
        img[max(y1, 0) : y2, max(x1, 0) : max(min(x2, W), 0)] = self.colour
        if self.cab_gap:
            # the cab's lower half has the colour of the road: it stands higher
            front = x2 - self.cab_gap if self.speed > 0 else x1
            img[y2 - self.height // 2 : y2, max(front, 0) : max(min(front + self.cab_gap, W), 0)] = ROAD


ROAD = (100, 100, 100)


def frames(vehicles: list[Box], n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = np.full((H, W, 3), ROAD, np.uint8)
    base[: FAR - 45] = (150, 170, 190)  # façades
    for i in range(n):
        img = base.copy()
        for v in sorted(vehicles, key=lambda v: v.ground):  # far ones first: near ones hide them
            v.draw(img, i)
        noise = rng.normal(0, 2.0, img.shape)
        yield np.clip(img + noise, 0, 255).astype(np.uint8)


def count(vehicles: list[Box], n: int) -> Counter:
    """Crossings of the centre line per direction, as the camera pipeline counts them."""
    det = MotionDetector("vehicle", 0.001)
    tracker = Tracker(TrackerConfig())
    line = CountingLine(LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0)), W, H)
    got: Counter = Counter()
    for i, img in enumerate(frames(vehicles, n)):
        boxes, scores, labels = det.detect(img)
        tracks = tracker.update(boxes, scores, labels, i / FPS)
        for c in line.update(tracks, i / FPS):
            got[c.direction] += 1
        line.forget(tracker.removed)
    return got


def test_two_vehicles_passing_each_other_in_two_lanes_count_once_each() -> None:
    # the near car hides the lower part of the far one while they pass at the line
    cars = [
        Box(12, 8.0, NEAR, 100, 45, (40, 40, 190)),
        Box(14, -7.0, FAR, 80, 35, (200, 200, 60)),
    ]
    assert count(cars, 80) == Counter({"in": 1, "out": 1})


def test_a_car_overtaking_a_van_in_the_next_lane_counts_twice() -> None:
    # the van is seen whole, then the car passes in front of it: one blob for three seconds
    vehicles = [
        Box(45, 8.0, NEAR, 90, 45, (40, 160, 40)),
        Box(12, 4.0, FAR, 110, 40, (230, 230, 230)),
    ]
    assert count(vehicles, 120) == Counter({"in": 2})


def test_a_car_overtaking_behind_a_slower_van_counts_twice() -> None:
    # the far car is faster: it shows above the van, then ahead of it
    vehicles = [
        Box(12, 5.0, NEAR, 120, 50, (40, 160, 40)),
        Box(36, 9.0, FAR, 90, 35, (230, 230, 230)),
    ]
    assert count(vehicles, 110) == Counter({"in": 2})


def test_a_van_coming_in_right_behind_a_car_and_overtaking_it_counts_both() -> None:
    # the far car is followed on its own; the near van comes into view just
    # behind it, a little faster: one blob as long as it takes to overtake,
    # the car hidden behind the van while it crosses the line
    vehicles = [
        Box(12, 5.0, FAR, 80, 35, (230, 230, 230)),
        Box(30, 6.5, NEAR, 120, 50, (40, 160, 40)),
    ]
    assert count(vehicles, 110) == Counter({"in": 2})


def test_a_car_catching_up_with_one_in_the_far_lane_counts_twice() -> None:
    # the near car comes up behind the far one at nearly its speed: they touch
    # end to end for a long while, moving alike, yet stand on two ground lines
    vehicles = [
        Box(12, 8.0, FAR, 90, 35, (230, 230, 230)),
        Box(26, 9.2, NEAR, 100, 45, (40, 160, 40)),
    ]
    assert count(vehicles, 120) == Counter({"in": 2})


def test_a_car_hidden_behind_a_bus_while_it_crosses_the_line_is_counted() -> None:
    # the far car crosses the line entirely behind the near bus, going the other way
    vehicles = [
        Box(12, 6.0, NEAR, 220, 90, (30, 120, 220)),
        Box(35, -8.0, FAR, 70, 30, (60, 60, 200)),
    ]
    assert count(vehicles, 80) == Counter({"in": 1, "out": 1})


def test_a_truck_whose_cab_stands_higher_than_its_box_counts_once() -> None:
    truck = [Box(12, 7.0, NEAR, 150, 60, (40, 40, 160), cab_gap=40)]
    assert count(truck, 80) == Counter({"in": 1})


def test_single_vehicles_one_after_another_count_exactly() -> None:
    convoy = [Box(12 + 20 * k, 8.0, NEAR if k % 2 else FAR, 90, 40, (50 + 40 * k, 60, 200)) for k in range(4)]
    assert count(convoy, 130) == Counter({"in": 4})


def test_ground_line_split_cuts_two_vehicles_but_not_one_with_a_wheel_gap() -> None:
    two = np.zeros((60, 100), bool)
    two[0:40, 0:60] = True  # far vehicle, ground at y=40
    two[20:60, 50:100] = True  # near vehicle in front of it, ground at y=60
    boxes = split_by_ground(two, min_px=50)
    # cut where the ground line jumps; the near piece's box also holds what
    # shows of the far vehicle above it in its columns
    assert [b.tolist() for b in boxes] == [[0, 0, 50, 40], [50, 0, 100, 60]]
    one = np.zeros((60, 100), bool)
    one[0:55, :] = True
    one[55:60, 10:25] = one[55:60, 75:90] = True  # wheels below the body
    assert len(split_by_ground(one, min_px=50)) == 1
