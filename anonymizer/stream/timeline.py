"""Per-frame provenance of a job's masks, for the QA report: compact, and without coordinates.

Per class and frame, what put a mask there: a detection, a track interpolating between two
sightings, a track's lead/trail guess, or nothing because an exclusion removed the detection;
and whether a manual region was masked. Frames where a leak is most likely (a track starting or
ending, only guesses, only weak detections) are picked from the same data.

``Overlay`` is what the engine calls per frame: it applies the sidecar's exclusions and manual
regions (anonymizer.mask.regions) and records what happened here.

What is kept per frame is a few bytes (a bit field and a box count per class); what the job summary
gets at the end is bounded whatever the clip's length: at most ``MAX_BINS`` steps per row (issue 25,
item 11). A detector that runs every 2nd frame leaves a "detected" run and an "interpolated" run
per two frames, so the exact runs of a six-hour export at 25 fps were a million small lists, built
in one go at its last frame, copied into the summary and drawn as one SVG element each.
"""

from __future__ import annotations

import threading
from array import array
from collections import defaultdict
from typing import Any

import numpy as np

from anonymizer.config import MaskSpec
from anonymizer.detections import CLASS_NAMES, DETECTED, Detections
from anonymizer.mask.regions import ManualMasks, paint_shapes

# Bits of one class on one frame.
DETECTED_BIT, INTERPOLATED_BIT, PREDICTED_BIT, EXCLUDED_BIT, WEAK_BIT = 1, 2, 4, 8, 16
KINDS = {"detected": DETECTED_BIT, "interpolated": INTERPOLATED_BIT, "predicted": PREDICTED_BIT, "excluded": EXCLUDED_BIT}
# At most this many steps per row in the summary: a row whose exact runs would not fit (more than
# half as many runs of one kind) is summarised in steps of ceil(frames / MAX_BINS) frames, each
# step with every kind any of its frames had (what a reviewer must look at is never hidden; the
# report's timeline is under 1,000 px wide anyway). 2,048 steps: exact for the bench's 10-minute
# 2 fps clip (1,200 frames), and a few hundred kB of JSON at most.
MAX_BINS = 2048


class Timeline:
    """Collects per-frame provenance; ``as_dict()`` is JSON-able (runs of frames, no boxes)."""

    def __init__(self, classes: dict[str, float], *, max_gap_frames: int = 15) -> None:
        """Args: classes: class name -> its confidence threshold (a weaker detection is 'weak')."""
        self.thresholds = {CLASS_IDS_BY_NAME[n]: t for n, t in classes.items()}
        self.max_gap = max(1, max_gap_frames)
        self.bits = {cid: bytearray() for cid in self.thresholds}
        self.manual = bytearray()
        self.counts = {cid: array("H") for cid in self.thresholds}
        # A track's guess is told interpolated from lead/trail as frames arrive (they arrive in
        # order), so that nothing per box piles up over a six-hour clip: per live track, the frame
        # it was last detected on, and its guesses still waiting to learn whether a sighting
        # follows within the gap (frame, whether one preceded within the gap).
        self._last_seen: dict[tuple[int, int], int] = {}
        self._pending: dict[tuple[int, int], list[tuple[int, bool]]] = defaultdict(list)
        self._swept = 0
        self._lock = threading.Lock()  # the track and mask stages record from their own threads

    def _grow(self, row: bytearray, index: int) -> None:
        if len(row) <= index:
            row.extend(bytes(index + 1 - len(row)))

    def record(self, index: int, kept: Detections, excluded: Detections) -> None:
        """One frame's tracked boxes: those to be masked and those an exclusion removed."""
        with self._lock:
            for cid, row in self.bits.items():
                self._grow(row, index)
                counts = self.counts[cid]
                if len(counts) <= index:
                    counts.extend([0] * (index + 1 - len(counts)))
                sel = kept.class_id == cid
                counts[index] = min(65535, int(np.count_nonzero(sel)))
                det = sel & (kept.source == DETECTED)
                if det.any():
                    row[index] |= DETECTED_BIT
                    if float(kept.confidence[det].max()) < self.thresholds[cid]:
                        row[index] |= WEAK_BIT
                reach = self.max_gap + 1
                for tid in kept.tracker_id[sel & (kept.source != DETECTED)]:
                    last = self._last_seen.get((cid, int(tid)))
                    self._pending[(cid, int(tid))].append((index, last is not None and last >= index - reach))
                for tid in kept.tracker_id[det]:
                    key = (cid, int(tid))
                    for guess, before in self._pending.pop(key, ()):
                        if guess < index:
                            row[guess] |= INTERPOLATED_BIT if before and index <= guess + reach else PREDICTED_BIT
                        else:  # a guess on this very frame waits for a later sighting
                            self._pending[key].append((guess, before))
                    self._last_seen[key] = index
                if np.any(excluded.class_id == cid):
                    row[index] |= EXCLUDED_BIT
            if index - self._swept > self.max_gap:
                self._sweep(index)

    def _sweep(self, index: int) -> None:
        """Settle the guesses no sighting can follow any more, and forget tracks long unseen."""
        reach = self.max_gap + 1
        for key in list(self._pending):
            waiting = []
            for guess, before in self._pending[key]:
                if guess + reach < index:
                    self.bits[key[0]][guess] |= PREDICTED_BIT
                else:
                    waiting.append((guess, before))
            if waiting:
                self._pending[key] = waiting
            else:
                del self._pending[key]
        for key in [k for k, last in self._last_seen.items() if last + reach < index]:
            del self._last_seen[key]
        self._swept = index

    def record_manual(self, index: int, n_regions: int) -> None:
        with self._lock:
            self._grow(self.manual, index)
            if n_regions:
                self.manual[index] = 1

    def finish(self, frames: int) -> None:
        """Classify the tracks' guesses: between two sightings of the same track (within the
        tracker's gap) is interpolated, anything else a lead/trail prediction."""
        for row in (*self.bits.values(), self.manual):
            self._grow(row, frames - 1)
            del row[frames:]
        for (cid, _), guesses in self._pending.items():
            for guess, _before in guesses:  # no sighting after them: lead/trail guesses
                if guess < frames:
                    self.bits[cid][guess] |= PREDICTED_BIT
        self._pending.clear()
        self._last_seen.clear()

    def leak_frames(self, limit: int = 16) -> list[dict[str, Any]]:
        """Frames a reviewer should look at first, with why: where a class's mask count changes
        (an object appears or leaves: the frame before a track starts is where it leaks), where
        only track guesses or only weak detections cover it, and where an exclusion applied."""
        picks: dict[int, set[str]] = defaultdict(set)
        for cid, row in self.bits.items():
            name = CLASS_NAMES[cid]
            counts = np.frombuffer(self.counts[cid], np.uint16)[: len(row)] if len(self.counts[cid]) else np.zeros(0)
            bits = np.frombuffer(bytes(row), np.uint8)
            if len(counts) > 1:
                for f in np.flatnonzero(np.diff(counts.astype(np.int32)) != 0)[:limit]:
                    picks[int(f) + 1 if counts[f + 1] > counts[f] else int(f)].add(f"{name} track starts or ends")
            for reason, sel in (
                (f"{name}: track guesses only", ((bits & (PREDICTED_BIT | INTERPOLATED_BIT)) != 0) & ((bits & DETECTED_BIT) == 0)),
                (f"{name}: weak detections only", (bits & WEAK_BIT) != 0),
                (f"{name}: detection excluded", (bits & EXCLUDED_BIT) != 0),
            ):
                for start, _length in _runs_of(sel, limit):
                    picks[start].add(reason)
        ordered = sorted(picks.items())
        if len(ordered) > limit:  # spread the picks over the clip rather than keep its start
            keep = np.linspace(0, len(ordered) - 1, limit).round().astype(int)
            ordered = [ordered[i] for i in sorted(set(keep.tolist()))]
        return [{"frame": f, "why": sorted(why)} for f, why in ordered]

    def provenance(self) -> dict[str, Any]:
        """What the job summary carries for the QA report: the timeline and the leak frames."""
        return {"timeline": self.as_dict(), "leak_frames": self.leak_frames()}

    def as_dict(self) -> dict[str, Any]:
        """Per row (class name, '<class> excluded' where an exclusion applied, 'manual'): runs
        [first frame, length, kind]; ``frames_per_bin``: 1 when the runs are exact, else the step
        they were summarised in (see ``MAX_BINS``).

        Exclusions have a row of their own: on the class's row, a frame where one object was
        excluded (a poster) and another detected and masked (a driver) was painted "excluded"
        over the detection, so a driver masked on every frame looked unmasked (issue 25).
        """
        frames = len(self.manual)
        rows_bits = {cid: np.frombuffer(bytes(row), np.uint8) for cid, row in self.bits.items()}
        manual = np.frombuffer(bytes(self.manual), np.uint8)
        runs_most = max(
            [_count_runs((b & bit) != 0) for b in rows_bits.values() for bit in KINDS.values()] + [_count_runs(manual != 0)]
        )
        step = 1 if runs_most <= MAX_BINS // 2 else -(-frames // MAX_BINS)
        rows: dict[str, list[list[Any]]] = {}
        for cid, bits in rows_bits.items():
            runs = []
            binned = _binned(bits, step)
            for kind, bit in KINDS.items():
                for start, length in _runs_of((binned & bit) != 0, step=step, frames=frames):
                    runs.append([start, length, kind])
            name = CLASS_NAMES[cid]
            rows[name] = sorted(r for r in runs if r[2] != "excluded")
            if any(r[2] == "excluded" for r in runs):
                rows[f"{name} excluded"] = sorted(r for r in runs if r[2] == "excluded")
        rows["manual"] = [[s, n, "manual"] for s, n in _runs_of(_binned(manual, step) != 0, step=step, frames=frames)]
        return {"frames": frames, "frames_per_bin": step, "rows": rows}


CLASS_IDS_BY_NAME = {name: cid for cid, name in CLASS_NAMES.items()}


def _count_runs(mask: np.ndarray) -> int:
    """How many runs of True a 1-D bool array has (without listing them)."""
    if not len(mask):
        return 0
    return int(mask[0]) + int(np.count_nonzero(mask[1:] & ~mask[:-1]))


def _binned(bits: np.ndarray, step: int) -> np.ndarray:
    """Each ``step`` frames' bit fields OR-ed into one (every kind any of them had)."""
    if step <= 1 or not len(bits):
        return bits
    return np.bitwise_or.reduceat(bits, np.arange(0, len(bits), step))


def _runs_of(mask: np.ndarray, limit: int | None = None, *, step: int = 1, frames: int | None = None) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D bool array, the first ``limit`` only when
    given (listed without making the others); with ``step``, ``mask`` holds bins of that many
    frames and the runs are given in frames, the last one ending at ``frames``."""
    if not len(mask):
        return []
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[::2][:limit], edges[1::2][:limit]
    if step > 1:
        starts, ends = starts * step, np.minimum(ends * step, frames if frames is not None else ends * step)
    return [(int(a), int(b - a)) for a, b in zip(starts, ends)]


class Overlay:
    """The engine's per-frame hook: exclusions before padding, manual regions after masking.

    Counts what it did for the job summary and the audit record: how many boxes the exclusions
    removed, on how many frames, and how many frames got manual regions.
    """

    def __init__(self, masks: ManualMasks | None, timeline: Timeline, spec: MaskSpec) -> None:
        self.masks = masks if masks else None
        self.timeline = timeline
        self.spec = spec
        self.excluded = 0
        self.excluded_frames = 0
        self.manual_regions = 0
        self.manual_frames = 0

    def select(self, index: int, time_s: float | None, dets: Detections) -> Detections:
        """Return the detections still to be masked on this frame (all, without exclusions)."""
        if self.masks is None or not self.masks.exclusions:
            self.timeline.record(index, dets, Detections.empty())
            return dets
        kept, excluded = self.masks.exclude(dets, index, time_s)
        if excluded.any():
            self.excluded += int(excluded.sum())
            self.excluded_frames += 1
        self.timeline.record(index, kept, dets[excluded])
        return kept

    def shapes_at(self, index: int, time_s: float | None) -> list[tuple[np.ndarray, str]]:
        shapes = self.masks.shapes_at(index, time_s) if self.masks is not None else []
        self.timeline.record_manual(index, len(shapes))
        if shapes:
            self.manual_regions += len(shapes)
            self.manual_frames += 1
        return shapes

    def paint(self, image: np.ndarray, shapes: list[tuple[np.ndarray, str]]) -> np.ndarray:
        return paint_shapes(image, shapes, self.spec) if shapes else image

    def summary(self) -> dict[str, Any]:
        """What the job summary and the audit record say about the sidecar: counts, hashes."""
        if self.masks is None:
            return {}
        return {
            "manual": {
                "regions": len(self.masks.regions),
                "masked": self.manual_regions,
                "frames": self.manual_frames,
            },
            "exclusions": {
                "rules": len(self.masks.exclusions),
                "removed": self.excluded,
                "frames": self.excluded_frames,
                "sidecar_sha256": list(self.masks.sha256),
            },
        }
