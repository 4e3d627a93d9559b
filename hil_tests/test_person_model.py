"""The shipped person model on real photographs, through the agent's loader."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from agent.vision.models import load_detector

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "hil_tests" / "media"


@pytest.fixture(scope="module")
def person_model():
    return load_detector("person_ssdlite", models_dir=ROOT / "edge_models")


def test_finds_the_one_person_in_person_jpg(person_model):
    img = cv2.imread(str(MEDIA / "person.jpg"))
    found = person_model.detect(img)
    assert [d.label for d in found] == ["person"]
    (d,) = found
    assert d.score > 0.5
    # The person stands left of centre, between the dog and the horse, full height.
    x1, y1, x2, y2 = d.box
    h, w = img.shape[:2]
    assert 0.2 * w < (x1 + x2) / 2 < 0.5 * w
    assert y2 - y1 > 0.5 * h


def test_finds_no_person_in_dog_jpg(person_model):
    img = cv2.imread(str(MEDIA / "dog.jpg"))
    assert person_model.detect(img) == []


def test_people_walking_in_vtest_avi_are_found(person_model):
    cap = cv2.VideoCapture(str(MEDIA / "vtest.avi"))
    try:
        frames = 0
        with_people = 0
        while frames < 40:
            ok, frame = cap.read()
            if not ok:
                break
            frames += 1
            if frames % 10 == 0 and person_model.detect(frame):
                with_people += 1
    finally:
        cap.release()
    assert frames == 40
    # The street is never empty in the first seconds: someone must be found in at least 3 of the 4 sampled frames.
    assert with_people >= 3
