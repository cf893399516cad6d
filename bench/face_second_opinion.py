"""Can a second opinion on CenterFace's weak boxes cut collateral without losing a face?

Most of the default's collateral on faces-wider is false positives: hands, arms, skin, sky and
clothes that CenterFace scores 0.12-0.3 at 2x and 3x. This bench takes the default's own detections
(from ``face_frontier.py``'s cache of raw passes), asks one or two second opinions about every box,
drops the boxes a rule rejects, and scores what is left with the product's padding, mask and
metrics. A rule is only worth shipping if it loses no face: read the "lost >= 64 px" and "hidden"
columns before the collateral one.

Second opinions:

- ``native``: CenterFace's best score for the box at scale 1 (either mirror). No extra model: a
  large face should already be found on the image as it is.
- ``onet``: the face probability of MTCNN's output network on the box's square crop (48x48), the
  classic verifier for a cascade's proposals. Its weights ship in the ``facenet-pytorch`` wheel
  (MIT); they are read from its ``data/onet.pt`` when installed (``.venv/bin/pip install --no-deps
  facenet-pytorch==2.6.0``: its pinned torch is not ours, and only the file is used). Never
  downloaded: without the wheel this opinion is left out.

    .venv/bin/python bench/face_frontier.py faces-wider --thresholds 0.12 --margins 0.3   # builds the cache
    .venv/bin/python bench/face_second_opinion.py faces-wider
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from face_frontier import DEFAULT_EVAL_DIR, load_passes, merged, on_labels, score_all  # noqa: E402

from anonymizer.config import load_profile  # noqa: E402
from anonymizer.detect.multiscale import ClassDetector  # noqa: E402
from anonymizer.detections import FACE, Detections, box_iou  # noqa: E402
from anonymizer.evaluate import metrics  # noqa: E402
from anonymizer.evaluate.labels import read_label_set  # noqa: E402
from anonymizer.evaluate.runner import load_rgb  # noqa: E402
from anonymizer.mask.maskers import Masker  # noqa: E402


def native_support(dets: Detections, passes: dict) -> np.ndarray:
    """CenterFace's best score at scale 1 for each box (IoU >= 0.3 with a raw box of that pass)."""
    best = np.zeros(len(dets), np.float32)
    for (scale, _mirrored), (boxes, conf) in passes.items():
        if scale == 1.0 and len(boxes) and len(dets):
            best = np.maximum(best, np.where(box_iou(dets.xyxy, boxes) >= 0.3, conf[None, :], 0).max(axis=1))
    return best


def onet_scorer() -> Callable[[np.ndarray, Detections], np.ndarray] | None:
    """MTCNN's ONet from the facenet-pytorch wheel's weights, or None when the wheel is absent."""
    spec = importlib.util.find_spec("facenet_pytorch")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    weights = Path(spec.submodule_search_locations[0]) / "data" / "onet.pt"
    if not weights.is_file():
        return None
    import torch
    from torch import nn

    # The layer names and order of facenet-pytorch's ONet, so its state dict loads as saved.
    net = nn.Module()
    for name, module in [
        ("conv1", nn.Conv2d(3, 32, 3)), ("prelu1", nn.PReLU(32)), ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
        ("conv2", nn.Conv2d(32, 64, 3)), ("prelu2", nn.PReLU(64)), ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
        ("conv3", nn.Conv2d(64, 64, 3)), ("prelu3", nn.PReLU(64)), ("pool3", nn.MaxPool2d(2, 2, ceil_mode=True)),
        ("conv4", nn.Conv2d(64, 128, 2)), ("prelu4", nn.PReLU(128)),
        ("dense5", nn.Linear(1152, 256)), ("prelu5", nn.PReLU(256)),
        ("dense6_1", nn.Linear(256, 2)), ("dense6_2", nn.Linear(256, 4)), ("dense6_3", nn.Linear(256, 10)),
    ]:
        net.add_module(name, module)
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    m = dict(net.named_children())

    def face_probability(rgb: np.ndarray, dets: Detections) -> np.ndarray:
        if not len(dets):
            return np.zeros(0, np.float32)
        crops = []
        for x1, y1, x2, y2 in dets.xyxy:
            # MTCNN squares its proposals around their centre before the crop; outside the image is black.
            side = max(x2 - x1, y2 - y1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            a, b = int(cx - side / 2), int(cy - side / 2)
            c, d = int(np.ceil(cx + side / 2)), int(np.ceil(cy + side / 2))
            crop = np.zeros((d - b, c - a, 3), np.uint8)
            sx, sy = max(a, 0), max(b, 0)
            ex, ey = min(c, rgb.shape[1]), min(d, rgb.shape[0])
            crop[sy - b : ey - b, sx - a : ex - a] = rgb[sy:ey, sx:ex]
            crops.append(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA if side > 48 else cv2.INTER_LINEAR))
        x = (torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() - 127.5) * 0.0078125
        with torch.no_grad():
            for name in ("1", "2", "3"):
                x = m[f"pool{name}"](m[f"prelu{name}"](m[f"conv{name}"](x)))
            x = m["prelu4"](m["conv4"](x))
            x = x.permute(0, 3, 2, 1).reshape(len(crops), -1)  # the weights were converted from Caffe's layout
            x = m["prelu5"](m["dense5"](x))
            return torch.softmax(m["dense6_1"](x), dim=1)[:, 1].numpy()

    return face_probability


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", help="set name under the evaluation folder, e.g. faces-wider")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/anonymizer-face-frontier"))
    args = parser.parse_args(argv)

    profile = load_profile(None)
    faces = profile.detect.faces
    set_dir = args.eval_dir / args.set
    if not (set_dir / "labels.jsonl").is_file():
        print(f"{set_dir}: not found", file=sys.stderr)
        return 2
    labels = read_label_set(set_dir, default_class="face")
    passes = load_passes(args.set, set_dir, labels, list(faces.scales), args.cache, profile)
    images = [(label, load_rgb(set_dir / label.image, label, profile.limits)) for label in labels]
    detector = ClassDetector(None, faces, FACE)  # type: ignore[arg-type]  # only its merge runs
    found = [merged(detector, passes[label.image], faces.scales, faces.flip, faces.threshold) for label, _ in images]

    opinions: dict[str, list[np.ndarray]] = {
        "native": [native_support(d, passes[label.image]) for d, (label, _) in zip(found, images)]
    }
    onet = onet_scorer()
    if onet is None:
        print("facenet-pytorch is not installed: the onet opinion is left out", file=sys.stderr)
    else:
        opinions["onet"] = [onet(rgb, d) for d, (_, rgb) in zip(found, images)]

    # (name, min size px, score below, onet below, native below): a box is dropped when it is at
    # least that large, scores below that, and every opinion named is below its bound.
    rules: list[tuple[str, float, float, float | None, float | None]] = []
    for min_size, weak in itertools.product((32, 64), (0.2, 0.3)):
        base = f">= {min_size} px, score < {weak}"
        rules.append((f"{base}, native < 0.12", min_size, weak, None, 0.12))
        if "onet" in opinions:
            for v in (0.01, 0.05):
                rules.append((f"{base}, onet < {v}", min_size, weak, v, None))
                rules.append((f"{base}, onet < {v} and native < 0.12", min_size, weak, v, 0.12))

    def dropped_by(rule: tuple, d: Detections, seen: dict[str, np.ndarray]) -> np.ndarray:
        _, min_size, weak, onet_below, native_below = rule
        wh = d.xyxy[:, 2:] - d.xyxy[:, :2]
        drop = (np.sqrt(wh[:, 0] * wh[:, 1]) >= min_size) & (d.confidence < weak)
        if onet_below is not None:
            drop &= seen["onet"] < onet_below
        if native_below is not None:
            drop &= seen["native"] < native_below
        return drop

    # What `anonymizer evaluate` lists as possibly unlabelled: mostly faces the labellers left out
    # (look at them). Their masks count as collateral, so a set with many cannot be judged by it alone.
    off = [
        metrics.possibly_unlabelled(d.xyxy, d.confidence, np.concatenate([label.boxes, label.ignore]))
        for d, (label, _) in zip(found, images)
    ]
    print(
        f"{args.set}: {sum(int(o.sum()) for o in off)} boxes possibly unlabelled (score >= {metrics.UNLABELLED_SCORE:g}, "
        f"touching no label), in {sum(bool(o.any()) for o in off)} of {len(images)} images"
    )
    masker, spec = Masker(profile.mask), {FACE: faces}
    print(f"| {args.set}: boxes dropped | dropped | hidden | hidden < 16 px | hidden >= 64 px (not hidden) | "
          "collateral |")
    print("|---|---|---|---|---|---|")
    runs = [
        ("none (the default)", found),
        ("every box off the labels (a perfect filter)", [d[on_labels(d, lb)] for d, (lb, _) in zip(found, images)]),
    ]
    for rule in rules:
        kept = [d[~dropped_by(rule, d, {k: v[i] for k, v in opinions.items()})] for i, d in enumerate(found)]
        runs.append((rule[0], kept))
    for name, kept in runs:
        r = score_all(images, kept, masker, spec)
        dropped = sum(len(d) for d in found) - r.detections
        print(f"| {name} | {dropped} | {r.cells()} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
