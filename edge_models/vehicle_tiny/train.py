"""Train the vehicle_tiny detector on rendered street scenes and export it to ONNX.

    .venv/bin/pip install torch==2.13.0      # CPU build; training only, never on the gateway
    PYTHONPATH=. .venv/bin/python edge_models/vehicle_tiny/train.py --out edge_models/vehicle_tiny

Reproducible: the data are rendered from fixed seeds (hil_tests.emulators.scenes),
torch and numpy are seeded, and torch runs deterministic single-process code.
The rendered frames are cached in --cache (delete it to re-render). Evaluate the exported model with
evaluate.py in this folder (it goes through agent.vision.models, as the agent does).

Model: a plain CNN (stride-8 head fed by a small top-down feature pyramid from
strides 16 and 32), anchor-free like FCOS/YOLOv8: each stride-8 cell near an
object's centre predicts its class and the distances to the box's four sides.
The export decodes boxes inside the graph and emits YOLOv8 layout
[1, 4 + C, N] (cx, cy, w, h in input pixels, then per-class sigmoid scores).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hil_tests.emulators.scenes import CLASSES, StreetScene

IN_W, IN_H = 320, 192
STRIDE = 8
NC = len(CLASSES)
MIN_VISIBLE = 0.35  # less visible objects are neither positives nor negatives


def conv(cin: int, cout: int, s: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyDet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.s8 = nn.Sequential(conv(3, 12, 2), conv(12, 24, 2), conv(24, 32, 2), conv(32, 32))
        self.s16 = nn.Sequential(conv(32, 64, 2), conv(64, 64))
        self.s32 = nn.Sequential(conv(64, 96, 2), conv(96, 96))
        self.lat16 = conv(160, 64, 1, 1)
        self.mix16 = conv(64, 64)
        self.lat8 = conv(96, 48, 1, 1)
        self.mix8 = conv(48, 48)
        self.cls = nn.Conv2d(48, NC, 1)
        self.reg = nn.Conv2d(48, 4, 1)
        nn.init.constant_(self.cls.bias, -4.6)  # prior 1 % so focal loss starts calm

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8 = self.s8(x)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        p16 = self.mix16(self.lat16(torch.cat([f16, F.interpolate(f32, scale_factor=2.0, mode="nearest")], 1)))
        p8 = self.mix8(self.lat8(torch.cat([f8, F.interpolate(p16, scale_factor=2.0, mode="nearest")], 1)))
        return self.cls(p8), F.softplus(self.reg(p8)) * STRIDE  # logits, ltrb in input pixels


class Exported(nn.Module):
    """Raw uint8-free float input [1,3,H,W] RGB/255 -> [1, 4+C, N] YOLOv8 layout."""

    def __init__(self, net: TinyDet) -> None:
        super().__init__()
        self.net = net
        gy, gx = np.mgrid[0 : IN_H // STRIDE, 0 : IN_W // STRIDE].astype(np.float32)
        centres = np.stack([(gx.ravel() + 0.5) * STRIDE, (gy.ravel() + 0.5) * STRIDE])
        self.register_buffer("centres", torch.from_numpy(centres)[None])  # [1, 2, N]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, ltrb = self.net(x)
        ltrb = ltrb.flatten(2)
        x1 = self.centres[:, 0:1] - ltrb[:, 0:1]
        y1 = self.centres[:, 1:2] - ltrb[:, 1:2]
        x2 = self.centres[:, 0:1] + ltrb[:, 2:3]
        y2 = self.centres[:, 1:2] + ltrb[:, 3:4]
        box = torch.cat([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
        return torch.cat([box, torch.sigmoid(logits.flatten(2))], 1)


def render_set(seeds: range, every: int, clip_s: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frames resized to the model input, and boxes [x1,y1,x2,y2,cls,visible] in input pixels."""
    images, labels = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        scene = StreetScene.random(
            seed,
            duration_s=clip_s,
            fps=10,
            per_lane_per_min=float(rng.uniform(8, 20)),
            mix=(0.45, 0.2, 0.15, 0.2),
            pole_x=None if rng.random() < 0.3 else float(rng.uniform(-6, 6)),
        )
        sx, sy = IN_W / scene.size[0], IN_H / scene.size[1]
        for i in range(int(rng.integers(every)), scene.n_frames, every):
            img, truth = scene.render(i)
            images.append(cv2.resize(img, (IN_W, IN_H), interpolation=cv2.INTER_AREA))
            labels.append(
                np.array([[o.box[0] * sx, o.box[1] * sy, o.box[2] * sx, o.box[3] * sy, o.cls, o.visible] for o in truth.objects], np.float32).reshape(-1, 6)
            )
    return np.stack(images), labels


def augment(img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    boxes = boxes.copy()
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes[:, [0, 2]] = IN_W - boxes[:, [2, 0]]
    if rng.random() < 0.5:  # zoom in on a random part: other cameras see vehicles bigger
        z = float(rng.uniform(1.0, 1.6))
        cw, ch = IN_W / z, IN_H / z
        x0, y0 = float(rng.uniform(0, IN_W - cw)), float(rng.uniform(0, IN_H - ch))
        m = np.float32([[z, 0, -x0 * z], [0, z, -y0 * z]])
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (IN_W, IN_H), flags=cv2.INTER_LINEAR)
        area0 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - x0) * z, 0, IN_W)
        boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - y0) * z, 0, IN_H)
        area1 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (z * z)
        boxes[:, 5] *= np.where(area0 > 0, area1 / np.maximum(area0, 1e-6), 0)
        boxes = boxes[(boxes[:, 2] - boxes[:, 0] > 2) & (boxes[:, 3] - boxes[:, 1] > 2)]
    img = img.astype(np.float32) * float(rng.uniform(0.6, 1.4)) + float(rng.uniform(-25, 25))
    img += rng.normal(0, float(rng.uniform(0, 6)), img.shape).astype(np.float32)
    return np.clip(img, 0, 255), boxes


def targets(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell class target (-1 ignore), positive mask and box target for one image."""
    gh, gw = IN_H // STRIDE, IN_W // STRIDE
    cls_t = np.zeros((NC, gh, gw), np.float32)
    ignore = np.zeros((gh, gw), bool)
    box_t = np.zeros((4, gh, gw), np.float32)
    best = np.full((gh, gw), np.inf, np.float32)
    cy, cx = (np.mgrid[0:gh, 0:gw] + 0.5) * STRIDE
    for x1, y1, x2, y2, c, vis in boxes:
        inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
        if vis < MIN_VISIBLE:
            ignore |= inside
            continue
        bx, by = (x1 + x2) / 2, (y1 + y2) / 2
        rx, ry = max(1.5 * STRIDE, 0.3 * (x2 - x1)), max(1.5 * STRIDE, 0.3 * (y2 - y1))
        near = inside & (np.abs(cx - bx) <= rx) & (np.abs(cy - by) <= ry)
        if not near.any():  # tiny box: take the cell holding its centre
            near = np.zeros_like(near)
            near[min(int(by // STRIDE), gh - 1), min(int(bx // STRIDE), gw - 1)] = True
        area = (x2 - x1) * (y2 - y1)
        take = near & (area < best)
        best[take] = area
        cls_t[:, take] = 0
        cls_t[int(c), take] = 1
        box_t[:, take] = np.array([x1, y1, x2, y2], np.float32)[:, None]
    pos = np.isfinite(best)
    ignore &= ~pos
    return np.where(ignore[None], -1.0, cls_t), pos, box_t


def giou_loss(pred: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    ix1, iy1 = torch.max(pred[:, 0], tgt[:, 0]), torch.max(pred[:, 1], tgt[:, 1])
    ix2, iy2 = torch.min(pred[:, 2], tgt[:, 2]), torch.min(pred[:, 3], tgt[:, 3])
    inter = (ix2 - ix1).clamp(0) * (iy2 - iy1).clamp(0)
    ap = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    at = (tgt[:, 2] - tgt[:, 0]) * (tgt[:, 3] - tgt[:, 1])
    union = ap + at - inter + 1e-6
    cx1, cy1 = torch.min(pred[:, 0], tgt[:, 0]), torch.min(pred[:, 1], tgt[:, 1])
    cx2, cy2 = torch.max(pred[:, 2], tgt[:, 2]), torch.max(pred[:, 3], tgt[:, 3])
    hull = (cx2 - cx1) * (cy2 - cy1) + 1e-6
    return (1 - inter / union + (hull - union) / hull).mean()


def loss_fn(net_out, cls_t, pos, box_t) -> torch.Tensor:
    logits, ltrb = net_out
    gh, gw = logits.shape[2:]
    cy, cx = torch.meshgrid((torch.arange(gh) + 0.5) * STRIDE, (torch.arange(gw) + 0.5) * STRIDE, indexing="ij")
    valid = cls_t >= 0
    p = torch.sigmoid(logits)
    t = cls_t.clamp(0)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    pt = p * t + (1 - p) * (1 - t)
    focal = ce * (1 - pt) ** 2 * (0.25 * t + 0.75 * (1 - t))
    npos = max(int(pos.sum()), 1)
    l_cls = (focal * valid).sum() / npos
    if pos.any():
        b = torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], 1)
        pb = b.permute(0, 2, 3, 1)[pos]
        tb = box_t.permute(0, 2, 3, 1)[pos]
        l_box = giou_loss(pb, tb)
    else:
        l_box = logits.sum() * 0
    return l_cls + 2.0 * l_box


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="edge_models/vehicle_tiny")
    ap.add_argument("--clips", type=int, default=80, help="training clips (seeds 0..clips-1)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--cache", default="/tmp/vehicle_tiny_data.npz")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(0)
    t0 = time.time()
    cache = Path(args.cache)
    if cache.exists():
        z = np.load(cache, allow_pickle=True)
        images, labels = z["images"], list(z["labels"])
    else:
        images, labels = render_set(range(args.clips), every=5, clip_s=30.0)
        np.savez(cache, images=images, labels=np.array(labels, dtype=object))
    print(f"data: {len(images)} frames, {sum(len(b) for b in labels)} boxes, {time.time() - t0:.0f} s", flush=True)
    net = TinyDet()
    steps = args.epochs * (len(images) // args.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    step = 0
    for epoch in range(args.epochs):
        order = rng.permutation(len(images))
        net.train()
        total = 0.0
        for k in range(len(images) // args.batch):
            idx = order[k * args.batch : (k + 1) * args.batch]
            xs, cts, ps, bts = [], [], [], []
            for i in idx:
                img, boxes = augment(images[i][:, :, ::-1], labels[i], rng)  # BGR -> RGB
                ct, p, bt = targets(boxes)
                xs.append(img.transpose(2, 0, 1) / 255.0)
                cts.append(ct), ps.append(p), bts.append(bt)
            loss = loss_fn(
                net(torch.from_numpy(np.stack(xs)).float()), torch.from_numpy(np.stack(cts)), torch.from_numpy(np.stack(ps)), torch.from_numpy(np.stack(bts))
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += loss.item()
            if step % 25 == 0:
                print(f"  step {step}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f} s", flush=True)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / (k + 1):.4f} {time.time() - t0:.0f} s", flush=True)
    net.eval()
    out = Path(args.out)
    torch.save(net.state_dict(), "/tmp/vehicle_tiny.pt")
    onnx_path = out / "model.onnx"
    torch.onnx.export(
        Exported(net), torch.zeros(1, 3, IN_H, IN_W), str(onnx_path), input_names=["images"], output_names=["output0"], opset_version=17, dynamo=False
    )
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    print(f"exported {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {digest}) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
