"""[[cameras]] entries and the [vision] section.

Geometry (lines, zones, bin regions) is given in normalised image coordinates,
0..1 from the left/top edge, so a camera that changes resolution (a sub-stream,
a firmware update) does not invalidate the configuration.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.config import NAME_PATTERN, StrictModel

Point = tuple[float, float]


def _check_point(p: Point) -> Point:
    x, y = p
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point {list(p)} is outside the image: coordinates are fractions of width and height, 0..1")
    return p


class LineConfig(StrictModel):
    """A counting line. It is directed from `start` to `end`; an object that
    crosses it from the left-hand side to the right-hand side (looking from
    start towards end, in the image) counts as "in", the other way as "out".
    Swap `start` and `end` (or set `invert`) to swap the directions."""

    name: str = Field(pattern=NAME_PATTERN, description="Line name; readings carry it as detail `line=<name>`.")
    start: Point = Field(description="[x, y] of the first end, fractions of width and height.")
    end: Point = Field(description="[x, y] of the second end.")
    invert: bool = Field(False, description="Swap what counts as in and out.")
    classes: list[str] = Field(default_factory=list, description="Labels counted on this line; empty means the camera's classes.")
    hysteresis: float = Field(
        0.02,
        ge=0,
        le=0.2,
        description="Half-width of the dead band around the line, as a fraction of the image diagonal: "
        "an object must get this far past the line to count, so one flickering on it counts once.",
    )
    anchor: Literal["center", "bottom"] = Field(
        "center", description="Point of the box that must cross: its centre, or the middle of its bottom edge (where it touches the road)."
    )

    _v_start = field_validator("start", "end")(_check_point)

    @model_validator(mode="after")
    def _not_degenerate(self) -> LineConfig:
        if abs(self.start[0] - self.end[0]) + abs(self.start[1] - self.end[1]) < 1e-3:
            raise ValueError(f"line {self.name!r}: start and end are the same point; give two distinct ends")
        return self


class ZoneConfig(StrictModel):
    """A polygon. `kind = "bay"` makes it a parking bay: occupied or free, and
    counted into the free spaces of its `area`."""

    name: str = Field(pattern=NAME_PATTERN, description="Zone or bay name; readings carry it as detail.")
    polygon: list[Point] = Field(min_length=3, description="Corners [[x, y], ...] in order, fractions of width and height.")
    kind: Literal["zone", "bay"] = Field("zone", description="`zone` reports how many objects are in it; `bay` reports occupied 0/1.")
    area: str = Field("parking", pattern=NAME_PATTERN, description="Bays with the same area are summed into one `free_spaces` reading.")
    classes: list[str] = Field(default_factory=list, description="Labels that occupy the zone; empty means the camera's classes.")
    debounce: float = Field(2.0, ge=0, description="Seconds a changed state must persist before it is reported (a passing car does not occupy a bay).")
    occupancy: Literal["tracks", "reference"] = Field(
        "tracks",
        description="Bays: `tracks` = a tracked object's centre is in the bay (detector mode); `reference` = the bay looks different "
        "from its empty reference image (no model needed; record it with `diag camera reference <camera> <bay> empty`).",
    )
    change_share: float = Field(0.3, gt=0, lt=1, description="`reference` bays: share of the bay that must differ from the empty reference to be occupied.")
    empty_reference: str = Field("", description="`reference` bays: PNG of the empty bay; default <data_dir>/vision/<camera>/<bay>_empty.png.")

    @field_validator("polygon")
    @classmethod
    def _points(cls, v: list[Point]) -> list[Point]:
        return [_check_point(p) for p in v]

    @model_validator(mode="after")
    def _reference_only_for_bays(self) -> ZoneConfig:
        if self.occupancy == "reference" and self.kind != "bay":
            raise ValueError(f'zone {self.name!r}: occupancy = "reference" is for parking bays (kind = "bay"); zones count tracked objects')
        return self


class BinConfig(StrictModel):
    """A waste container region, compared against reference images of it
    empty and full recorded at install time (`edge-agent diag camera reference`)."""

    name: str = Field(pattern=NAME_PATTERN, description="Container name; readings carry it as detail `bin=<name>`.")
    region: tuple[float, float, float, float] = Field(description="[x1, y1, x2, y2] of the container's opening or visible fill area, fractions.")
    estimator: Literal["reference"] = Field("reference", description="How the level is estimated (reference images).")
    floor_scale: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Camera above the container: apparent size of its floor relative to its opening (1 = seen from the side, no perspective). "
        "Equals (camera height - container height) / (camera height - container height + container depth).",
    )
    overflow_level: float = Field(95.0, gt=0, le=100, description="Fill % at or above which `overflow` is reported true.")
    smoothing: int = Field(5, ge=1, le=100, description="Estimates (one per processed frame) whose median is reported; hides people walking past.")
    empty_reference: str = Field("", description="PNG of the region empty; default <data_dir>/vision/<camera>/<bin>_empty.png.")
    full_reference: str = Field("", description="PNG of the region full; default <data_dir>/vision/<camera>/<bin>_full.png.")

    @model_validator(mode="after")
    def _region(self) -> BinConfig:
        x1, y1, x2, y2 = self.region
        for v in self.region:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"bin {self.name!r}: region values are fractions of width and height, 0..1")
        if x2 - x1 < 0.01 or y2 - y1 < 0.01:
            raise ValueError(f"bin {self.name!r}: region must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        return self


class TrackerConfig(StrictModel):
    high_score: float = Field(0.5, gt=0, le=1, description="Detections at or above this score start and update tracks.")
    low_score: float = Field(0.15, ge=0, le=1, description="Weaker detections only keep existing tracks alive (second association stage).")
    min_hits: int = Field(3, ge=1, le=30, description="Frames a track must be seen in before it is confirmed and can count.")
    max_lost: float = Field(1.5, gt=0, description="Seconds a track is kept through an occlusion before it is dropped.")
    match_iou: float = Field(0.2, gt=0, lt=1, description="Least (buffered) IoU for a detection to continue a track.")
    buffer: float = Field(0.3, ge=0, le=2, description="Boxes are enlarged by this share for matching, so fast objects at low fps still match.")


class CameraConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="Camera name, unique on the gateway; readings use it as the device.")
    source: str = Field(description="V4L2 device (/dev/video0), stream URL (rtsp://, http://, tcp://) or video file path.")
    enabled: bool = Field(True, description="A disabled camera is validated but not opened.")
    mode: Literal["detector", "motion"] = Field("detector", description="`detector` runs the ONNX model; `motion` counts moving blobs (no model).")
    model: str = Field("vehicle_tiny", description="Model directory name under the models directory (detector mode).")
    classes: list[str] = Field(default_factory=list, description="Labels to keep; empty keeps every label the model has.")
    motion_label: str = Field("vehicle", description="Label given to moving blobs in motion mode.")
    motion_min_area: float = Field(0.001, gt=0, lt=1, description="Smallest blob counted in motion mode, as a fraction of the image area.")
    detect_fps: float = Field(5.0, gt=0, le=60, description="Frames analysed per second, independent of the camera's rate.")
    loop: bool = Field(False, description="Video files only: start again at the end (demo).")
    realtime: bool = Field(
        True,
        description="Video files only: play at the file's frame rate like a camera. False analyses the file's frames "
        "at detect_fps of media time as fast as the CPU allows (tests, batch counting).",
    )
    report_interval: float = Field(60.0, gt=0, description="Seconds over which counts are summed into one reading.")
    stall_timeout: float = Field(10.0, gt=0, description="Seconds without a new frame before the stream is re-opened.")
    reconnect_max: float = Field(30.0, gt=0, description="Cap of the re-open backoff, in seconds.")
    lines: list[LineConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    bins: list[BinConfig] = Field(default_factory=list)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _unique_names(self) -> CameraConfig:
        if self.name == "worker":
            raise ValueError("camera name 'worker' is reserved (the status reports the vision worker under it); choose another name")
        for kind, items in (("line", self.lines), ("zone", self.zones), ("bin", self.bins)):
            names = [i.name for i in items]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"camera {self.name!r}: {kind} name {sorted(dup)[0]!r} is used twice; give each {kind} its own name")
        return self


class VisionConfig(StrictModel):
    enabled: bool = True
    models_dir: str = Field("edge_models", description="Directory holding one sub-directory per model (model.onnx + manifest).")
    onnx_threads: int = Field(1, ge=1, le=16, description="onnxruntime intra-op threads; 1 leaves a core to the rest of the agent on a 2-core gateway.")
    onnx_spinning: bool = Field(False, description="Let onnxruntime threads spin-wait; faster by a little, burns CPU when idle.")
    max_restarts: int = Field(5, ge=1, description="Worker restarts allowed within `restart_window` before waiting for the window to pass.")
    restart_window: float = Field(300.0, gt=0, description="Seconds of the restart rate limit window.")
    restart_delay: float = Field(1.0, ge=0, description="Seconds to wait before restarting a worker that died.")
    heartbeat_timeout: float = Field(15.0, gt=0, description="Seconds without a heartbeat after which the worker is considered hung and killed.")
    start_timeout: float = Field(60.0, gt=0, description="Seconds a starting worker may take to load its models before it is considered hung.")
    result_queue_size: int = Field(1024, ge=16, description="Messages the worker may have in flight to the agent; beyond that it drops and counts.")
    command_queue_size: int = Field(16, ge=1, description="Requests (snapshots, references) in flight to the worker.")
