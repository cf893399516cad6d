"""Offline track linking with look-ahead: the whole clip's detections are known before masking.

Because anonymization is batch work, a gap between two sightings of the same face is filled from
both sides (interpolation), and every track's mask starts ``lead_frames`` before its first
detection and ends ``trail_frames`` after its last. The tracker only ever adds boxes: every raw
detection is masked whether or not it joined a track.

Hysteresis (as in ByteTrack): in video the detector also reports weak candidates below the
class's threshold. A face in a blurred, dim or half-turned frame scores low but is the same face,
so a weak candidate that links into a track holding a confident detection is masked too, and so
is a track of weak candidates that persists (``confirm_sightings``), or stands in one place on
nearly every detector frame whatever its size (``confirm_still_*``), or, in a still scene, moves
on one straight line at one fast speed (``confirm_crosser_sightings``, ``_crossers``: found apart
from the linker, whose nearest-first matching splits such a crosser among the texture); weak
candidates that flicker and never meet a confident one are texture, and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anonymizer.config import TrackSpec
from anonymizer.detections import DETECTED, PREDICTED, Detections, box_iou, paired_iou

# Predicted boxes grow with the distance to the nearest real sighting: a person moving between two
# detections is not exactly where a straight line puts them.
GROWTH_PER_FRAME = 0.03
MAX_GROWTH = 0.5
# A sighting overlapping where the track's motion puts it less than this is a jump (fill_tracks).
JUMP_IOU = 0.3
# Fast movers (a face crossing a 1080p frame in 0.7 s moves 80-115 px, 3-10 of its sizes, a
# frame): a track seen once has no velocity yet, so nothing near its last box links to it. Such a
# track also takes, as its second sighting, a box of its size (within SIZE_RATIO) up to FAST_REACH
# of its sizes away per frame since it was seen (for at most FAST_MAX_GAP frames): the first
# step gives it a velocity, and from then on the motion must agree (the usual reach around the
# predicted box). Only boxes and tracks the ordinary matching left alone are linked this way.
FAST_REACH = 10.0
FAST_MAX_GAP = 4
# A sighting later than FAST_MAX_GAP, up to the class's full-plan period (``link``'s
# ``detect_every``: a 14-30 px plate that only the full plan finds is seen every 6th frame at the
# default cadence), is linked as an alternative (ALTERNATIVE_SIGHTINGS). Tune half, ``bench/
# eval_video.py --diagnose``: a 14 px plate crossing at 55 px a frame, seen on frames 36 and 42
# only, stayed two tracks of one sighting each, whose held boxes lagged 55 px a frame behind it.
SIZE_RATIO = 1.6
# For a class whose detector looks through windows (``link``'s ``share_taken``: the plates' closer
# look), up to LATE_PERIODS full-plan periods later: a 30x7 px plate crossing at 42 px a frame that
# only the closer look finds, and not on every pass, was seen on frames 6, 16 and 22 (tune half,
# seed 11, openalpr clip 2); 6 -> 16 lay past one period (6 frames), so its three sightings stayed
# three tracks with held leads and trails, 14 object-frames bare (issue 26, branch h-cross). On
# faces, two periods added 11-14 % to the masked area of busy tune clips and hid nothing more.
LATE_PERIODS = 2
# A fast mover's lead and trail follow its motion further: a plate crossing a still scene at 40-115
# px a frame is found in few of its frames (tune half: a 42 px plate first found 8 frames after it
# entered, and lost for 13 frames mid-way), and the held box is far behind it after a frame or
# two. A track moving at least FAST_SPEED of its size per frame also gets its moved guess, and only
# that one, up to ``max_gap_frames`` before its first and after its last sighting (the reach over
# which the tracker already trusts a straight line between two sightings). The guess is widened
# along the motion by FAST_SLACK of the distance travelled per side: two jittery boxes a couple
# of frames apart give a velocity a few px a frame off, which adds up over a long lead.
FAST_SPEED = 0.3
FAST_SLACK = 0.1
# For a class that asks for it (``track_and_fill``'s ``keep``: the plates), a lead or trail also
# follows the velocity fitted (least squares) through the first or last FIT_SIGHTINGS sightings,
# where it differs from the two nearest sightings' velocity. One wrong link at a track's end can
# otherwise send both of its moved guesses the wrong way. Hand-made, ``bench/diagonal_plates.py``:
# a 56 px plate crossing 1080p diagonally at 78 px a frame was weak on frames 6 and 8, and on
# frame 8 the track took a false box 80 px to the side. The lead then ran straight up from frame
# 6 while the plate came in from the top-right corner, and frames 0-4 were bare; its sightings on
# frames 6, 12 and 14 lie on its path. On faces, the tune half's standard runs lost two
# object-frames (docs/recall.md, ninth session): their jittery boxes in a pan differ from the fit.
FIT_SIGHTINGS = 4
# ... and only where the two-sighting guess covers less than this share of the fitted one: on a
# smooth path both agree, and a second box a pixel or two apart would only add masks to every
# track of a pan.
FIT_COVER = 0.8
# A fast mover the detector loses for longer than ``max_gap_frames`` (tune half: a 42 px plate
# unseen for 21 frames mid-way) stays live for up to FAST_GAP_FACTOR times as long, and a sighting
# then joins it only where it overlaps the box its motion predicts (IoU, never centre distance):
# the straight line between the two ends is then interpolated like any gap.
FAST_GAP_FACTOR = 2
# Both rules need this many sightings (from three on, the whole track's motion must agree too).
# Recall first: on six tune-half crossers clips of the plate sets, two sightings hid 31 more plate
# object-frames than three (149 leaked against 180; main before these rules: 184), at the cost of
# collateral 0.031 against 0.016 (one busy clip 0.11: two sightings can be two objects linked by
# FAST_REACH, and the velocity between them moves masks across the scene: likely, not traced). docs/evaluate.md.
FAST_SIGHTINGS = 2
# A track seen once whose second sighting is ambiguous or late (see FAST_MAX_GAP) must not be
# linked by guesswork: nearest-first is wrong whenever two crossers pass each other between
# sightings (two plates 600 px apart closing at 60 px a frame each, seen 6 frames later 120 px
# past each other: each would take the other's sighting, both masks would run at two thirds of the
# true speed, and their third sightings, on the true lines, would join neither), and a wrong link
# costs the object it steals from its own lead and track. So the tracks proper are linked as
# always, and every other fast link within reach (a box of its size, FAST_REACH of its sizes a
# frame, up to the class's full-plan period after the sighting) becomes an *alternative* track:
# it owns no box (every sighting it holds is also another track's), reads each frame's boxes
# after the tracks proper (any box, shared), and is masked along the line between its sightings;
# leads and trails, the moved ones included, only once ALTERNATIVE_SIGHTINGS of them agree (a
# third sighting where its motion put it).
ALTERNATIVE_SIGHTINGS = 3
# A track seen once gets alternatives only among the links at most ALTERNATIVE_SPREAD times as far
# as its nearest, the ALTERNATIVE_MAX nearest of them: in a crowd, every face seen once lies within
# reach of dozens of others (see _match_fast).
ALTERNATIVE_SPREAD = 2.0
ALTERNATIVE_MAX = 3
# A confident track seen once with no free box of its size within reach may also take, as
# alternatives only (within the same limits), boxes that other tracks took: an alternative owns
# no box, so it takes nothing away. The tracker adds recall, never removes it (issue 26): the
# closer look on every gated frame (``video_zoom_every_frame``) found a crossing plate once at
# 0.13 (tune half, uc3m clip 2, frame 14, 29x31 px a frame) and another crosser 100 px away on
# the frames around it that the default had not found; the other crosser's track then held all
# the boxes near it and the plate's sighting stayed alone, with held boxes only (0.29 and 0.49
# covered the frames either side), where the default's tracker, lacking those boxes, had linked
# it into the other crosser's track and masked its frames by that track's line. Weak
# candidates do not (``link``'s ``share_taken``): a weak box linked to a confident one is masked,
# and texture flickering near a crowd would then draw lines across it.
# Objects entering or leaving at a frame edge: the detectors clip their boxes to the frame, so a
# plate half out of the frame is a box half its size, whose far side stays on the border while the
# object moves. Its centre then moves at half the object's speed, and interpolation, leads and
# trails lag behind it (tune half: a 22 px plate entering at the left edge at 32 px a frame, first
# seen two frames later, kept 0.41 of it covered by its held lead). A side within EDGE_PX of the
# border was cut by it: once a track is linked, such a side is put back where the object's whole
# size along that axis (its nearest sighting in time that touches neither border of the axis) puts
# it, from the side that was not cut. Its motion then follows the uncut side, and its held and
# moved boxes keep the object's size (clipped to the frame when masked). Detections themselves are
# masked as found.
EDGE_PX = 1.0
# Weak tracks confirmed by how they behave (issue 26, TrackSpec.confirm_still_* and
# confirm_fast_sightings). In place: a sighting whose centre lies within STILL_DRIFT of the track's
# median side from the track's median centre (a standing face's weak boxes jitter by a few px; a
# walker's leave it). Fast: every step's velocity within FAST_AGREE of the track's mean velocity
# (its length) and every box within SIZE_RATIO of the median size: weak boxes that the linker's
# reach chains across a busy scene go every which way, a crosser goes one way.
STILL_DRIFT = 0.5
FAST_AGREE = 0.5
# The tracker adds recall, never removes it (issue 26): a new sighting that covers less than
# KEEP_COVER of the box where the track's motion up to it puts the object must not pull the mask
# back. The fixed camera's closer look on every gated frame (``video_zoom_every_frame``) finds a
# plate in a 640 px window that ends half-way along it (tune half, openalpr clip 1, frame 46: a
# 60 px box where the plate was 137, leaving the frame at 40 px a frame): as the track's last
# sighting it ended the trail there, where without it the trail of the sighting before had hidden
# the plate to the frame's edge. So the sighting before keeps the moved trail it had as the
# track's end (and, symmetrically, the sighting after keeps its moved lead). A sighting on the
# motion's line covers its box and adds nothing; a jump (JUMP_IOU) covers little of it.
# Only for a class that asks for it (``track_and_fill``'s ``keep``: the plates, whose closer look
# lays such windows): on faces, whose boxes jitter more from frame to frame, both keep rules
# added collateral on the tune half's panned clips (with the rules on faces / off for them:
# faces-masks 0.453 / 0.337, faces-wider 0.732 / 0.667) and hid nothing more.
KEEP_COVER = 0.5
# Weak crossers found by their motion (issue 26, ``TrackSpec.confirm_crosser_sightings``). In a busy
# still scene a weak crosser's sightings go to whichever texture track lies nearest (tune half,
# faces-wider clip 2: a 20x34 px face at (-41, -26) px a frame, weak on frames 19, 20, 22, 23 and
# 24, split over five tracks, none confirmed), so the crossers are looked for apart from the
# linker, velocity first, among the weak candidates that move: a weak box overlapping (IoU >=
# CROSSER_STILL_IOU) any box of the CROSSER_STILL_REACH detector frames either side stands
# (texture flickers in place; a crosser at FAST_SPEED of its size a frame or more has left its box
# within a frame or two). Two movers of one size (SIZE_RATIO) at least FAST_SPEED and at most
# FAST_REACH of their size a frame apart start a chain; the next sighting, within CROSSER_STEP
# detector frames, must lie within CROSSER_TOL of the first box's size of where the line fitted
# through the chain so far puts it (the tolerance grows with the reach of the extrapolation: two
# jittery boxes a frame apart give a velocity a few px a frame off). A chain of
# ``confirm_crosser_sightings`` is masked like a confirmed track (interpolation, moved lead and
# trail). Where more than CROSSER_MOVING_SHARE of a frame's weak candidates move, the camera moves
# (everything does), and no chain takes a box of that frame.
CROSSER_STILL_IOU = 0.5
CROSSER_STILL_REACH = 2
CROSSER_STEP = 2
CROSSER_TOL = 0.75
CROSSER_MOVING_SHARE = 0.25
# ... nor does a frame with more than this many moving weak candidates: the chains' search pairs
# every mover with every mover of the next frames, so dense flicker (rain, leaves, a crowd's
# texture) would cost tenths of a second a frame and chain noise (review: 0.33 s a frame at 227
# movers). The tune half's face crossers clips had at most 34 in a frame (seeds 7 and 11).
CROSSER_MAX_MOVERS = 48


@dataclass
class Track:
    track_id: int
    class_id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    # A fast link not taken (ALTERNATIVE_SIGHTINGS): every sighting it holds is another track's.
    alternative: bool = False
    # An alternative through a box another track took (ALTERNATIVE_MAX, ``share_taken``).
    borrowed: bool = False
    # An alternative linked past one full-plan period (LATE_PERIODS).
    late: bool = False
    # The boxes as detected where ``boxes`` holds them restored to the object's size (EDGE_PX).
    detected: list[np.ndarray] | None = None

    def predict(self, frame: int) -> np.ndarray:
        """Constant-velocity guess of the box at ``frame`` from the last two sightings."""
        if len(self.frames) < 2 or frame <= self.frames[-1]:
            return self.boxes[-1]
        return _coast(self.boxes[-1], self.boxes[-2], self.frames[-1], self.frames[-2], frame)

    def predict_before(self, frame: int) -> np.ndarray:
        """Constant-velocity guess of the box at an earlier ``frame`` from the first two sightings."""
        if len(self.frames) < 2 or frame >= self.frames[0]:
            return self.boxes[0]
        return _coast(self.boxes[0], self.boxes[1], self.frames[0], self.frames[1], frame)


def _coast(box: np.ndarray, other: np.ndarray, f_box, f_other, frame) -> np.ndarray:
    """``box`` (seen at ``f_box``) moved to ``frame`` at the velocity from ``other`` (seen at
    ``f_other``), never smaller than ``box``: two jittery sightings of a small face can shrink it
    by a pixel a frame, which extrapolated over a trail turns the box inside out. Works on one
    box or, row by row, on (n, 4) arrays with (n,) frame numbers."""
    steps = np.asarray(frame, np.float32) - f_box
    velocity = (box - other) / np.asarray(np.asarray(f_box, np.float32) - f_other)[..., None]
    moved = box + velocity * steps[..., None]
    centre = (moved[..., :2] + moved[..., 2:]) / 2
    half = np.maximum(moved[..., 2:] - moved[..., :2], box[..., 2:] - box[..., :2]) / 2
    return np.concatenate([centre - half, centre + half], axis=-1).astype(np.float32)


def _predict_all(tracks: list[Track], frame: int) -> np.ndarray:
    """``np.stack([t.predict(frame) for t in tracks])`` with one ``_coast`` over every moving track:
    the same float32 operations row by row, so the same boxes (tests/unit/test_track_equivalence.py)."""
    predicted = np.stack([t.boxes[-1] for t in tracks])
    moving = [i for i, t in enumerate(tracks) if len(t.frames) >= 2 and frame > t.frames[-1]]
    if moving:
        last = np.stack([tracks[i].boxes[-1] for i in moving])
        before = np.stack([tracks[i].boxes[-2] for i in moving])
        f_last = np.array([tracks[i].frames[-1] for i in moving], np.float32)
        f_before = np.array([tracks[i].frames[-2] for i in moving], np.float32)
        predicted[moving] = _coast(last, before, f_last, f_before, frame)
    return predicted


def _match(
    tracks: list[Track],
    boxes: np.ndarray,
    frame: int,
    iou_match: float,
    max_gap: int | None = None,
    fast_gap: int = FAST_MAX_GAP,
    alternatives: list[tuple[int, int, bool]] | None = None,
    share_taken: bool = False,
) -> dict[int, int]:
    """Greedy matching of live tracks to this frame's boxes by IoU, then by centre distance.

    Small, fast objects (a distant face, a plate in traffic) often have no IoU overlap between
    detector frames, so a box whose centre lies near the prediction also matches: within 1.5
    box sizes after one frame, a little more for each frame since the track was last seen.
    ``alternatives``, if given, receives the (track, box, borrowed) fast links not taken (see
    ALTERNATIVE_SIGHTINGS), with ``share_taken`` also boxes other tracks took (ALTERNATIVE_MAX).
    """
    if not tracks or not len(boxes):
        return {}
    predicted = _predict_all(tracks, frame)
    iou = box_iou(predicted, boxes)
    centres_p = (predicted[:, :2] + predicted[:, 2:]) / 2
    centres_b = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(predicted[:, 2:] - predicted[:, :2], 1).max(axis=1)
    dist = np.linalg.norm(centres_p[:, None] - centres_b[None], axis=2) / size[:, None]
    gap = np.array([frame - t.frames[-1] for t in tracks], np.float32)
    reach = np.minimum(1.5 + 0.5 * (gap - 1), 4.0)[:, None]
    score = np.where(iou >= iou_match, 2.0 + iou, np.where(dist < reach, 1.0 - dist / reach, 0.0))
    matches: dict[int, int] = {}
    taken: set[int] = set()
    if max_gap is not None and (stale := gap > max_gap).any():
        # A fast mover kept past max_gap (FAST_GAP_FACTOR) takes only a box where its motion puts
        # it, and only one that no live track wants: it must never take a sighting away from an
        # ordinary track (which would then bridge less, or fall below confirmation).
        late = np.where(stale[:, None] & (iou >= iou_match), score, 0.0)
        score[stale] = 0.0
        _greedy(score, matches, taken)
        _greedy(late, matches, taken)
    else:
        _greedy(score, matches, taken)
    _match_fast(tracks, boxes, frame, matches, taken, fast_gap, alternatives, share_taken)
    return matches


def _greedy(score: np.ndarray, matches: dict[int, int], taken: set[int]) -> None:
    """Add to ``matches`` the best-scoring free pairs first (sorted once: crowds bring hundreds)."""
    ts, bs = np.nonzero(score > 0)
    order = np.argsort(-score[ts, bs], kind="stable")
    for t, b in zip(ts[order].tolist(), bs[order].tolist()):
        if t not in matches and b not in taken:
            matches[t] = b
            taken.add(b)


def _match_fast(
    tracks: list[Track],
    boxes: np.ndarray,
    frame: int,
    matches: dict[int, int],
    taken: set[int],
    fast_gap: int = FAST_MAX_GAP,
    alternatives: list[tuple[int, int, bool]] | None = None,
    share_taken: bool = False,
) -> None:
    """Second sightings of fast movers (see FAST_REACH), added to ``matches`` in place: each track
    seen once, not matched yet, takes the nearest free box of its size within its reach, up to
    FAST_MAX_GAP frames after its sighting. Every other such (track, box) pair within reach, up to
    ``fast_gap`` frames after, goes to ``alternatives`` (ALTERNATIVE_SIGHTINGS); with
    ``share_taken``, for a track with no free box within reach, boxes other tracks took too."""
    single = [i for i, t in enumerate(tracks) if i not in matches and len(t.frames) == 1 and 0 < frame - t.frames[0] <= fast_gap]
    share = share_taken and alternatives is not None
    free = [b for b in range(len(boxes)) if share or b not in taken]
    owned = np.array([b in taken for b in free], bool)  # taken before this: only ever borrowed
    if not single or not free:
        return
    last = np.stack([tracks[i].boxes[0] for i in single])
    cand = boxes[free]
    side_t = np.sqrt(np.prod(np.maximum(last[:, 2:] - last[:, :2], 1), axis=1))
    side_b = np.sqrt(np.prod(np.maximum(cand[:, 2:] - cand[:, :2], 1), axis=1))
    ratio = np.maximum(side_t[:, None] / side_b[None], side_b[None] / side_t[:, None])
    centres_t = (last[:, :2] + last[:, 2:]) / 2
    centres_b = (cand[:, :2] + cand[:, 2:]) / 2
    dist = np.linalg.norm(centres_t[:, None] - centres_b[None], axis=2) / side_t[:, None]
    gap = np.array([frame - tracks[i].frames[0] for i in single], np.float32)[:, None]
    ok = (ratio <= SIZE_RATIO) & (dist <= FAST_REACH * gap)
    if share:
        # Boxes other tracks took count only for a track with no free box within reach, and as
        # alternatives only (the loop below never takes them as second sightings).
        if owned.any():
            ok[:, owned] &= ~(ok[:, ~owned].any(axis=1))[:, None]
    ts, bs = np.nonzero(ok)
    left = []
    for t, b in sorted(zip(ts.tolist(), bs.tolist()), key=lambda tb: dist[tb[0], tb[1]]):
        if gap[t, 0] <= FAST_MAX_GAP and single[t] not in matches and free[b] not in taken:
            matches[single[t]] = free[b]
            taken.add(free[b])
        else:
            left.append((t, b))
    if alternatives is not None:
        # A track that got its second sighting keeps it; one that did not (late, or beaten to its
        # nearest box by another track) gets every link within reach as an alternative. Every
        # link for every track seen once was a crowd's undoing: 3,600 alternatives in a 48-frame
        # tune clip of a panned crowd, and the tracker's time tripled, for nothing found there.
        # And only the links that compete with its nearest (ALTERNATIVE_SPREAD): two crossers
        # that passed each other lie at comparable distances (240 and 360 px in the example).
        nearest = np.where(ok, dist, np.inf).min(axis=1)
        kept: dict[int, int] = {}
        for t, b in left:  # nearest first
            if single[t] not in matches and dist[t, b] <= ALTERNATIVE_SPREAD * nearest[t] and kept.get(t, 0) < ALTERNATIVE_MAX:
                kept[t] = kept.get(t, 0) + 1
                alternatives.append((single[t], free[b], bool(owned[b])))


def link(
    per_frame: list[Detections | None],
    spec: TrackSpec,
    detect_every: int = 1,
    frame_size: tuple[int, int] | None = None,
    *,
    share_taken: bool = False,
) -> list[Track]:
    """Link one class's detections into tracks. ``None`` marks a frame the detector did not run on.

    With ``frame_size`` (width, height of the frame the boxes are in), the sides of a track's
    boxes cut by the frame's border are restored to the object's size (EDGE_PX). With
    ``share_taken`` (confident detections only), a track seen once with no free box within reach
    may get alternatives through boxes other tracks took (ALTERNATIVE_SIGHTINGS)."""
    max_gap = spec.max_gap_frames + detect_every
    long_gap = FAST_GAP_FACTOR * spec.max_gap_frames + detect_every
    live: list[Track] = []
    done: list[Track] = []
    next_id = 0
    for frame, dets in enumerate(per_frame):
        if dets is None:
            continue
        alive = [_alive(t, frame, max_gap, long_gap) for t in live]
        done.extend(t for t, keep in zip(live, alive) if not keep)
        live = [t for t, keep in zip(live, alive) if keep]
        # The tracks proper are linked exactly as without alternatives; alternatives then read
        # the same boxes again (any box, shared: they only ever add masks).
        primary = [t for t in live if not t.alternative]
        others = [t for t in live if t.alternative]
        pending: list[tuple[int, int, bool]] = []
        matches = _match(
            primary,
            dets.xyxy,
            frame,
            spec.iou_match,
            max_gap,
            max(FAST_MAX_GAP, (LATE_PERIODS if share_taken else 1) * detect_every),
            pending,
            share_taken,
        )
        matched_boxes = set(matches.values())
        for t_index, b_index in matches.items():
            _add(primary[t_index], frame, dets, b_index)
        for b_index in range(len(dets)):
            if b_index not in matched_boxes:
                track = Track(next_id, int(dets.class_id[b_index]))
                _add(track, frame, dets, b_index)
                live.append(track)
                next_id += 1
        # Borrowed and late alternatives read the boxes apart: competing with the others for a
        # box, one could take a sighting away from an alternative that had it without them.
        for borrowed, late in ((False, False), (True, False), (False, True), (True, True)):
            group = [t for t in others if t.borrowed == borrowed and t.late == late]
            for t_index, b_index in _match(group, dets.xyxy, frame, spec.iou_match, max_gap).items():
                _add(group[t_index], frame, dets, b_index)
        for t_index, b_index, borrowed in pending:
            first = primary[t_index]
            late = frame - first.frames[0] > max(FAST_MAX_GAP, detect_every)
            track = Track(next_id, first.class_id, alternative=True, borrowed=borrowed, late=late)
            _add(track, first.frames[0], None, 0, first.boxes[0], first.scores[0])
            _add(track, frame, dets, b_index)
            live.append(track)
            next_id += 1
    tracks = done + live
    if frame_size is not None:
        for t in tracks:
            _restore_cut(t, frame_size)
    return tracks


def _alive(track: Track, frame: int, max_gap: int, long_gap: int) -> bool:
    """Whether ``track`` is still live at ``frame``: seen within ``max_gap`` frames, or within
    ``long_gap`` (>= max_gap) when it moves fast. ``_speed`` only where it decides: a crowd keeps
    hundreds of tracks live, and asking each on every frame was a quarter of the tracker's time."""
    gap = frame - track.frames[-1]
    return gap <= max_gap or (gap <= long_gap and _speed(track, first=False) is not None)


def _restore_cut(track: Track, frame_size: tuple[int, int]) -> None:
    """Put back the sides of ``track``'s boxes that the frame's border cut (EDGE_PX), in place."""
    boxes = np.stack(track.boxes)
    limit = np.asarray(frame_size, np.float32) - EDGE_PX
    low, high = boxes[:, :2] <= EDGE_PX, boxes[:, 2:] >= limit  # (n, 2): x, y
    if not (low | high).any():
        return
    restored = boxes.copy()
    frames = np.asarray(track.frames)
    for axis in (0, 1):
        whole = ~low[:, axis] & ~high[:, axis]
        if whole.all() or not whole.any():
            continue  # nothing cut, or never seen whole along this axis: its size is unknown
        # Each sighting takes the size of the nearest sighting in time seen whole along the axis.
        seen = np.nonzero(whole)[0]
        after = np.minimum(np.searchsorted(frames[seen], frames), len(seen) - 1)
        before = np.maximum(after - 1, 0)
        nearest = np.where(
            np.abs(frames[seen[before]] - frames) <= np.abs(frames[seen[after]] - frames), seen[before], seen[after]
        )
        size = boxes[nearest, axis + 2] - boxes[nearest, axis]
        only_low, only_high = low[:, axis] & ~high[:, axis], high[:, axis] & ~low[:, axis]
        restored[only_low, axis] = np.minimum(boxes[only_low, axis], boxes[only_low, axis + 2] - size[only_low])
        restored[only_high, axis + 2] = np.maximum(boxes[only_high, axis + 2], boxes[only_high, axis] + size[only_high])
    if not np.array_equal(restored, boxes):
        track.detected = track.boxes
        track.boxes = list(restored)


def _add(
    track: Track, frame: int, dets: Detections | None, index: int, box: np.ndarray | None = None, score: float = 0.0
) -> None:
    """Append a sighting to ``track``: box ``index`` of ``dets``, or ``box`` with ``score``."""
    track.frames.append(frame)
    track.boxes.append((dets.xyxy[index] if dets is not None else box).astype(np.float32))
    track.scores.append(float(dets.confidence[index]) if dets is not None else score)


def _grow(box: np.ndarray, distance: int) -> np.ndarray:
    g = min(MAX_GROWTH, GROWTH_PER_FRAME * distance)
    half = (box[2:] - box[:2]) * g / 2  # once, not twice: the same float32 values
    return np.concatenate([box[:2] - half, box[2:] + half])


def fill_tracks(
    tracks: list[Track], n_frames: int, spec: TrackSpec, detect_every: int = 1, keep: bool = False
) -> list[list[tuple]]:
    """Return, per frame, the predicted (box, track_id, class_id, score) entries the tracks add.

    Gaps between sightings are interpolated from both sides. For ``lead_frames`` before the first
    sighting and ``trail_frames`` after the last, two guesses are masked: the box held where it
    was seen, and the box moved at the velocity of the two nearest sightings. Either alone leaks:
    the held box when the object moves, the moved one when that velocity came from two jittery
    boxes of a small object (a 6 px tall plate coasted 13 px a frame the wrong way and leaked).
    Where a track jumps (a sighting far from where its motion so far puts it), both ends also get
    a trail and a lead in place: linking by centre distance can hop from one weak plate to its
    neighbour and leave it bare.
    With ``keep``, a fast track's lead and trail also get a third guess, moved at the velocity
    fitted through its first or last FIT_SIGHTINGS sightings (``_fitted``), where it differs
    from the moved one.
    On frames the detector skipped, lead and trail cover at least the skip.
    """
    lead = max(spec.lead_frames, detect_every - 1)
    trail = max(spec.trail_frames, detect_every - 1)
    added: list[list[tuple]] = [[] for _ in range(n_frames)]
    for t in tracks:
        frames = t.frames
        seen = set(frames)
        jumped = _jumps(t) if len(frames) > 1 else []
        max_gap = spec.max_gap_frames + detect_every
        # An alternative link's two sightings are other tracks' (with their own leads and trails);
        # only the line between them is its own until a sighting of its own agrees with it.
        provisional = t.alternative and len(frames) < ALTERNATIVE_SIGHTINGS
        for k in range(len(frames) - 1):
            f0, f1 = frames[k], frames[k + 1]
            for f in range(f0 + 1, f1):
                a = (f - f0) / (f1 - f0)
                box = (1 - a) * t.boxes[k] + a * t.boxes[k + 1]
                added[f].append((_grow(box, min(f - f0, f1 - f)), t.track_id, t.class_id, t.scores[k]))
            if not provisional and (jumped[k] or f1 - f0 > max_gap):
                # A jump may be the track switching objects (two small plates side by side): the
                # one it left gets a trail where it was last seen, the one it joined a lead. A
                # fast mover joined across more than max_gap gets them too: as two tracks, which
                # it would have been without FAST_GAP_FACTOR, both ends had them.
                for d in range(1, trail + 1):
                    if f0 + d < n_frames:
                        added[f0 + d].append((_grow(t.boxes[k], d), t.track_id, t.class_id, t.scores[k]))
                for d in range(1, lead + 1):
                    if f1 - d >= 0:
                        added[f1 - d].append((_grow(t.boxes[k + 1], d), t.track_id, t.class_id, t.scores[k + 1]))
        if provisional:
            continue
        if keep and len(frames) > 2 and not t.alternative:
            # An alternative's sightings are other tracks' (which keep their own).
            _keep_short(t, added, n_frames, lead, trail)
        fast_lead, fast_trail = _speed(t, first=True), _speed(t, first=False)
        fit_lead, fit_trail = (_fitted(t, first=True), _fitted(t, first=False)) if keep else (None, None)
        fast = fast_lead is not None or fit_lead is not None
        for d in range(1, max(lead, spec.max_gap_frames if fast else 0) + 1):
            f = frames[0] - d
            if f < 0:
                break
            moved = t.predict_before(f)
            if d <= lead:
                for box in _guesses(t.boxes[0], moved):
                    added[f].append((_grow(box, d), t.track_id, t.class_id, t.scores[0]))
            elif fast_lead is not None:
                added[f].append((_along(moved, fast_lead, d), t.track_id, t.class_id, t.scores[0]))
            if fit_lead is not None:
                guess = _fitted_guess(t.boxes[0], fit_lead, -d, moved, d <= lead, fast_lead is not None)
                if guess is not None:
                    added[f].append((guess, t.track_id, t.class_id, t.scores[0]))
        fast = fast_trail is not None or fit_trail is not None
        for d in range(1, max(trail, spec.max_gap_frames if fast else 0) + 1):
            f = frames[-1] + d
            if f >= n_frames:
                break
            if f in seen:
                continue
            moved = t.predict(f)
            if d <= trail:
                for box in _guesses(t.boxes[-1], moved):
                    added[f].append((_grow(box, d), t.track_id, t.class_id, t.scores[-1]))
            elif fast_trail is not None:
                added[f].append((_along(moved, fast_trail, d), t.track_id, t.class_id, t.scores[-1]))
            if fit_trail is not None:
                guess = _fitted_guess(t.boxes[-1], fit_trail, d, moved, d <= trail, fast_trail is not None)
                if guess is not None:
                    added[f].append((guess, t.track_id, t.class_id, t.scores[-1]))
    return added


def _fitted(t: Track, *, first: bool) -> np.ndarray | None:
    """The per-frame velocity (vx, vy) of a track's centre fitted by least squares through its
    first (``first``) or last FIT_SIGHTINGS sightings; None with fewer than three, when that
    velocity is under FAST_SPEED of the track's size a frame (a standing object's boxes jitter:
    its held box already covers it), or when the whole track does not go that way."""
    n = len(t.frames)
    if n < 3:
        return None
    k = min(n, FIT_SIGHTINGS)
    picked = range(k) if first else range(n - k, n)
    frames = np.array([t.frames[i] for i in picked], np.float32)
    boxes = np.stack([t.boxes[i] for i in picked])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    steps = frames - frames.mean()
    velocity = (steps[:, None] * (centres - centres.mean(axis=0))).sum(axis=0) / float((steps * steps).sum())
    size = float(max(np.max(boxes[:, 2:] - boxes[:, :2]), 1.0))
    if float(np.hypot(*velocity)) < FAST_SPEED * size:
        return None
    # The whole track must go that way too, as in ``_speed``: boxes hopping around a standing
    # object fit a velocity that goes nowhere.
    if not _whole_track_goes(t, velocity, size):
        return None
    return velocity.astype(np.float32)


def _fitted_guess(
    end: np.ndarray, velocity: np.ndarray, frames: int, moved: np.ndarray, near: bool, moved_masked: bool
) -> np.ndarray | None:
    """The fitted guess ``frames`` frames (negative: earlier) from the end sighting ``end``, or
    None where the two-sighting guess ``moved`` already covers FIT_COVER of it.

    ``near``: within the ordinary lead or trail (grown as ``_grow`` grows; past it, widened along
    the motion as ``_along``). ``moved_masked``: whether ``moved`` is masked at this distance;
    past the lead of a track fast only by the fit it is not, and the fitted guess is the only one.
    """
    shift = velocity * frames
    fit = (end + np.concatenate([shift, shift])).astype(np.float32)
    if (near or moved_masked) and _covers(moved[None], fit[None])[0] >= FIT_COVER:
        return None
    distance = abs(frames)
    return _grow(fit, distance) if near else _along(fit, velocity, distance)


def _short_steps(t: Track) -> tuple[np.ndarray, np.ndarray]:
    """Per step k (sighting k -> k + 1), shape (len(frames) - 1,) each: whether sighting k + 1
    covers less than KEEP_COVER of where the motion of sightings k - 1 -> k puts the object on
    its frame (the trail of k is kept), and whether sighting k covers less than KEEP_COVER of
    where the motion of k + 1 -> k + 2 puts it (the lead of k + 1 is kept)."""
    boxes, frames = np.stack(t.boxes), np.asarray(t.frames, np.float32)
    n = len(frames) - 1
    trail, lead = np.zeros(n, bool), np.zeros(n, bool)
    if n >= 2:
        ahead = _coast(boxes[1:-1], boxes[:-2], frames[1:-1], frames[:-2], frames[2:])  # steps 1 .. n-1
        trail[1:] = _covers(boxes[2:], ahead) < KEEP_COVER
        behind = _coast(boxes[1:-1], boxes[2:], frames[1:-1], frames[2:], frames[:-2])  # steps 0 .. n-2
        lead[:-1] = _covers(boxes[:-2], behind) < KEEP_COVER
    return trail, lead


def _covers(seen: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Row by row, the share of each ``expected`` box that the ``seen`` box covers."""
    tl = np.maximum(seen[:, :2], expected[:, :2])
    br = np.minimum(seen[:, 2:], expected[:, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=1)
    return inter / np.maximum(np.prod(np.clip(expected[:, 2:] - expected[:, :2], 0, None), axis=1), 1e-6)


def _keep_short(t: Track, added: list[list[tuple]], n_frames: int, lead: int, trail: int) -> None:
    """Add to ``added`` the moved trail (lead) that a sighting had as the track's end (start)
    where the next (previous) sighting falls short of it (KEEP_COVER): on every frame of it, the
    short sighting's own frame included (its box is masked as found, the object is further on),
    up to the sighting after (before) the short one, from which the track is whole again."""
    short_trail, short_lead = _short_steps(t)
    frames, boxes = t.frames, t.boxes
    for k in np.nonzero(short_trail)[0].tolist():
        end = frames[k + 2] if k + 2 < len(frames) else n_frames
        for d in range(1, trail + 1):
            f = frames[k] + d
            if f >= min(end, n_frames):
                break
            box = _coast(boxes[k], boxes[k - 1], frames[k], frames[k - 1], f)
            added[f].append((_grow(box, d), t.track_id, t.class_id, t.scores[k]))
    for k in np.nonzero(short_lead)[0].tolist():
        start = frames[k - 1] if k >= 1 else -1
        for d in range(1, lead + 1):
            f = frames[k + 1] - d
            if f <= max(start, -1):
                break
            box = _coast(boxes[k + 1], boxes[k + 2], frames[k + 1], frames[k + 2], f)
            added[f].append((_grow(box, d), t.track_id, t.class_id, t.scores[k + 1]))


def _speed(t: Track, *, first: bool) -> np.ndarray | None:
    """The per-frame velocity (vx, vy) of a track's centre at its start (``first``) or end, from
    the two sightings there, when it moves at least FAST_SPEED of its size a frame; else None."""
    if len(t.frames) < FAST_SIGHTINGS:
        return None
    (a, fa), (b, fb) = ((t.boxes[0], t.frames[0]), (t.boxes[1], t.frames[1])) if first else (
        (t.boxes[-2], t.frames[-2]),
        (t.boxes[-1], t.frames[-1]),
    )
    velocity = ((b[:2] + b[2:]) - (a[:2] + a[2:])) / 2 / max(1, fb - fa)
    size = float(max(np.max(a[2:] - a[:2]), np.max(b[2:] - b[:2]), 1.0))
    if float(np.hypot(*velocity)) < FAST_SPEED * size:
        return None
    # The whole track must move that way too: a standing plate whose box hops between two
    # neighbouring detections has a fast last step but goes nowhere (a busy tune clip's
    # collateral rose from 0.024 to 0.114 before this check).
    if len(t.frames) > 2 and not _whole_track_goes(t, velocity, size):
        return None
    return velocity.astype(np.float32)


def _whole_track_goes(t: Track, velocity: np.ndarray, size: float) -> bool:
    """Whether the track's first-to-last motion is fast (FAST_SPEED of ``size`` a frame) and
    points the way of ``velocity``."""
    first, last = t.boxes[0], t.boxes[-1]
    overall = ((last[:2] + last[2:]) - (first[:2] + first[2:])) / 2 / max(1, t.frames[-1] - t.frames[0])
    return float(np.hypot(*overall)) >= FAST_SPEED * size and float(np.dot(overall, velocity)) > 0


def _along(box: np.ndarray, velocity: np.ndarray, distance: int) -> np.ndarray:
    """A moved guess ``distance`` frames from its sighting, grown as ``_grow`` does and, per side,
    by FAST_SLACK of the way travelled along each axis."""
    slack = np.abs(velocity) * distance * FAST_SLACK
    grown = _grow(box, distance)
    return np.concatenate([grown[:2] - slack, grown[2:] + slack]).astype(np.float32)


def _confirmed(
    track: Track,
    confident: float,
    sightings: int,
    max_size: float,
    spec: TrackSpec | None = None,
    ran: np.ndarray | None = None,
) -> bool:
    """A track holding a confident detection, or a persistent track of weak candidates that is
    sized like the faces around it: texture on a truck's front can persist as long as a small
    masked face does, but it is far larger than any face in the scene, and its mask hides the
    vehicle for the whole clip. With ``spec`` also a weak track standing in one place on nearly
    every detector frame (``ran``: detector frames before each frame), whatever its size, scoring
    near the threshold (``confirm_still_score``), or one moving steadily and fast (``_still``,
    ``_fast``)."""
    if max(track.scores) >= confident:
        return True
    if sightings > 0 and len(track.frames) >= sightings and (not max_size or _median_side(track.boxes) <= max_size):
        return True
    if spec is None or track.alternative:
        # An alternative is one reading among several of sightings that other tracks hold: in a
        # crowd of weak boxes (tune half, a marching band) dozens of them chain at one velocity.
        return False
    if (
        ran is not None
        and float(np.median(track.scores)) >= spec.confirm_still_score * confident
        and _still(track, spec.confirm_still_sightings, spec.confirm_still_share, ran)
    ):
        return True
    return _fast(track, spec.confirm_fast_sightings)


def _still(track: Track, need: int, share: float, ran: np.ndarray) -> bool:
    """Whether at least ``need`` of the track's sightings, and ``share`` of the class's detector
    frames over its span, see it in place (STILL_DRIFT). ``ran[f]``: detector frames before ``f``."""
    if need <= 0 or len(track.frames) < need:
        return False
    boxes = np.stack(track.boxes)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    off = np.linalg.norm(centres - np.median(centres, axis=0), axis=1)
    in_place = int(np.count_nonzero(off <= STILL_DRIFT * _median_side(track.boxes)))
    looked = int(ran[track.frames[-1] + 1] - ran[track.frames[0]])
    return in_place >= need and in_place >= share * looked


def _fast(track: Track, need: int) -> bool:
    """Whether the track holds at least ``need`` sightings moving at one velocity (FAST_AGREE) of
    at least FAST_SPEED of its size a frame, its boxes of one size (SIZE_RATIO)."""
    if need <= 0 or len(track.frames) < max(need, 2):
        return False
    boxes, frames = np.stack(track.boxes), np.asarray(track.frames, np.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = np.sqrt(np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 1), axis=1))
    size = float(np.median(sides))
    if sides.max() > SIZE_RATIO * size or sides.min() * SIZE_RATIO < size:
        return False
    mean = (centres[-1] - centres[0]) / max(1.0, float(frames[-1] - frames[0]))
    speed = float(np.hypot(*mean))
    if speed < FAST_SPEED * _median_side(track.boxes):
        return False
    steps = np.diff(centres, axis=0) / np.maximum(np.diff(frames), 1)[:, None]
    return bool(np.all(np.linalg.norm(steps - mean, axis=1) <= FAST_AGREE * speed))


def _movers(per_frame: list[Detections | None], confident: float) -> dict[int, np.ndarray]:
    """Per detector frame, the indices of its weak candidates (under ``confident``) that move: no
    box of the CROSSER_STILL_REACH detector frames either side overlaps them by CROSSER_STILL_IOU.
    Frames where more than CROSSER_MOVING_SHARE of the weak candidates move, or more than
    CROSSER_MAX_MOVERS of them, are left out."""
    ran = [f for f, d in enumerate(per_frame) if d is not None]
    out: dict[int, np.ndarray] = {}
    for k, f in enumerate(ran):
        dets = per_frame[f]
        weak = np.nonzero(dets.confidence < confident)[0]
        if not len(weak):
            continue
        # Nearest frames first, each asked only about the boxes no nearer frame saw in place: in a
        # crowd most texture is settled by the first (a panned crowd frame holds ~1,000 weak boxes).
        moving = weak
        near = ran[max(0, k - CROSSER_STILL_REACH) : k] + ran[k + 1 : k + 1 + CROSSER_STILL_REACH]
        for g in sorted(near, key=lambda g: (abs(g - f), g)):
            if not len(moving):
                break
            if len(per_frame[g]):
                moving = moving[~(box_iou(dets.xyxy[moving], per_frame[g].xyxy) >= CROSSER_STILL_IOU).any(axis=1)]
        if len(moving) and len(moving) <= min(CROSSER_MOVING_SHARE * len(weak), CROSSER_MAX_MOVERS):
            out[f] = moving
    return out


def _crossers(per_frame: list[Detections | None], confident: float, need: int) -> list[Track]:
    """Chains of at least ``need`` moving weak candidates on one straight line at one speed, as
    tracks (see CROSSER_STILL_IOU): weak crossers that the linker's nearest-first matching splits
    among the texture of a busy still scene."""
    if need <= 0:
        return []
    movers = _movers(per_frame, confident)
    frames = sorted(movers)
    ran = [f for f, d in enumerate(per_frame) if d is not None]
    at = {f: k for k, f in enumerate(ran)}
    data = {}
    for f in frames:
        boxes = per_frame[f].xyxy[movers[f]]
        sides = np.sqrt(np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 1), axis=1))
        data[f] = (boxes, (boxes[:, :2] + boxes[:, 2:]) / 2, sides)
    used: set[tuple[int, int]] = set()
    chains: list[Track] = []
    for f in frames:
        boxes_f, centres_f, sides_f = data[f]
        # The next CROSSER_STEP detector frames (those with movers) start a chain with it.
        for g in ran[at[f] + 1 : at[f] + 1 + CROSSER_STEP]:
            if g not in data:
                continue
            _, centres_g, sides_g = data[g]
            for i in range(len(centres_f)):
                if (f, i) in used:
                    continue
                speed = np.linalg.norm(centres_g - centres_f[i], axis=1) / (g - f)
                ratio = np.maximum(sides_g / sides_f[i], sides_f[i] / sides_g)
                ok = (speed >= FAST_SPEED * sides_f[i]) & (speed <= FAST_REACH * sides_f[i]) & (ratio <= SIZE_RATIO)
                for j in np.nonzero(ok)[0].tolist():
                    if (g, j) in used:
                        continue
                    chain = _extend(data, ran, at, [(f, i), (g, j)], sides_f[i])
                    if len(chain) >= need:
                        used.update(chain)
                        chains.append(_on_line(chain, data, per_frame, movers))
                        break
    for k, t in enumerate(chains):
        t.track_id = k
    return chains


def _on_line(chain: list[tuple[int, int]], data: dict, per_frame: list, movers: dict[int, np.ndarray]) -> Track:
    """A chain as a track whose boxes lie on the line fitted through it, at its median size: its
    interpolation, lead and trail follow the whole chain's motion, not the last two jittery weak
    boxes (tune half: a 20x34 px crosser's trail from its last two sightings covered 0.33 of it a
    frame later). The sightings as detected are what gets packed and masked as detections."""
    frames = [f for f, _ in chain]
    raw = np.stack([data[f][0][k] for f, k in chain]).astype(np.float32)
    slope, icpt = np.polyfit(np.asarray(frames, np.float64), (raw[:, :2] + raw[:, 2:]) / 2, 1)
    half = np.median(raw[:, 2:] - raw[:, :2], axis=0) / 2
    centres = slope * np.asarray(frames, np.float64)[:, None] + icpt
    boxes = np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)
    f0, k0 = chain[0]
    track = Track(
        -1,
        int(per_frame[f0].class_id[movers[f0][k0]]),
        frames,
        list(boxes),
        [float(per_frame[f].confidence[movers[f][k]]) for f, k in chain],
    )
    track.detected = list(raw)
    return track


def _extend(
    data: dict, ran: list[int], at: dict[int, int], chain: list[tuple[int, int]], side: float
) -> list[tuple[int, int]]:
    """Grow a chain of (frame, mover index) along the line fitted through it (CROSSER_TOL)."""
    chain = list(chain)
    while True:
        ts = np.array([f for f, _ in chain], np.float64)
        xs = np.stack([data[f][1][k] for f, k in chain]).astype(np.float64)
        slope, icpt = np.polyfit(ts, xs, 1)
        last, span = chain[-1][0], max(1, chain[-1][0] - chain[0][0])
        step = None
        for h in ran[at[last] + 1 : at[last] + 1 + CROSSER_STEP]:
            if h not in data:
                continue
            _, centres, sides = data[h]
            off = np.linalg.norm(centres - (slope * h + icpt), axis=1)
            reach = CROSSER_TOL * side * (1 + (h - last) / span)
            ratio = np.maximum(sides / side, side / sides)
            ok = (off <= reach) & (ratio <= SIZE_RATIO)
            if ok.any():
                step = (h, int(np.argmin(np.where(ok, off, np.inf))))
                break
        if step is None:
            return chain
        chain.append(step)


def _median_side(boxes: list[np.ndarray]) -> float:
    b = np.stack(boxes)
    return float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))


def _jumps(t: Track) -> np.ndarray:
    """Per step k (sighting k -> k + 1), whether sighting k + 1 lies far from where the track's
    motion puts it: bool (len(frames) - 1,).

    The motion is the step before (k - 1 -> k); the first step is checked against the one after
    it instead, and a track of two sightings by their own overlap.
    """
    boxes, frames = np.stack(t.boxes), np.asarray(t.frames, np.float32)
    expected = np.empty_like(boxes[1:])
    seen = boxes[1:].copy()
    expected[1:] = _coast(boxes[1:-1], boxes[:-2], frames[1:-1], frames[:-2], frames[2:])
    if len(boxes) > 2:
        expected[0], seen[0] = _coast(boxes[1], boxes[2], frames[1], frames[2], frames[0]), boxes[0]
    else:
        expected[0] = boxes[0]
    return paired_iou(expected, seen) < JUMP_IOU


def _guesses(held: np.ndarray, moved: np.ndarray) -> list[np.ndarray]:
    """The held box, and the moved one where it differs (a still object needs one mask, not two)."""
    # np.allclose(held, moved, atol=0.5) written out (its wrapper cost more than the test itself,
    # thousands of times per crowd clip): the same comparisons, so the same answer.
    close = (np.abs(held - moved) <= 0.5 + 1e-05 * np.abs(moved)) & np.isfinite(moved) | (held == moved)
    return [held] if close.all() else [held, moved]


def _as_detections(
    n_frames: int,
    tracks: list[Track],
    spec: TrackSpec,
    detect_every: int,
    *,
    below: float | None = None,
    id_offset: int = 0,
    keep: bool = False,
) -> list[Detections]:
    """Per frame: the detections the tracks hold (only those scoring under ``below``, if given),
    with their track ids, plus the boxes the tracks predict."""
    held: list[list[tuple]] = [[] for _ in range(n_frames)]
    for t in tracks:
        if t.alternative:
            continue  # every sighting of an alternative is another track's, packed with it
        for f, box, score in zip(t.frames, t.detected or t.boxes, t.scores):
            if below is None or score < below:
                held[f].append((box, t.track_id, t.class_id, score))
    added = fill_tracks(tracks, n_frames, spec, detect_every, keep)

    def pack(items: list[tuple], source: int) -> Detections:
        return Detections(
            np.stack([a[0] for a in items]).astype(np.float32),
            np.array([a[3] for a in items], np.float32),
            np.array([a[2] for a in items], np.int32),
            np.array([a[1] + id_offset for a in items], np.int32),
            np.full(len(items), source, np.int8),
        )

    out = []
    for h, a in zip(held, added):
        parts = ([pack(h, DETECTED)] if h else []) + ([pack(a, PREDICTED)] if a else [])
        out.append(Detections.merge(parts))
    return out


def track_and_fill(
    per_frame: list[Detections | None],
    spec: TrackSpec,
    detect_every: int = 1,
    confident: float | None = None,
    *,
    counted: range | None = None,
    frame_size: tuple[int, int] | None = None,
    keep: bool = False,
) -> tuple[list[Detections], int]:
    """Return (per-frame detections: raw ones plus track predictions, number of tracks).

    ``frame_size`` (width, height of the frame the boxes are in) lets the tracks follow objects
    the frame's border cuts, entering or leaving (EDGE_PX).

    ``keep``: more sightings never leave an object less masked (KEEP_COVER, ALTERNATIVE_MAX's
    borrowed alternatives), and leads and trails also follow a fitted velocity (FIT_SIGHTINGS),
    for a class whose detector looks through windows that cut boxes short.

    ``counted`` counts only the tracks that start in that range of frames (a window over a longer
    clip counts each track once, in the window where it starts).

    Without ``confident`` every detection is kept and linked. With it, ``per_frame`` may also hold
    weak candidates below ``confident``: the confident detections are tracked exactly as without
    them (so the result is a superset of that), and the candidates are linked again with them;
    a track there that holds a confident detection adds its weak detections and its predictions.
    A track of weak candidates alone adds nothing, unless it holds ``spec.confirm_sightings`` of
    them: texture flickers, but a face that the detector keeps seeing at a low score is a face.
    Nor unless it stands in one place on nearly every detector frame (``confirm_still_*``: a
    standing face in a fixed camera, whatever its size) or moves steadily and fast over
    ``confirm_fast_sightings`` of them (a weak crosser). Weak candidates that move in a still
    scene are also chained on their own, velocity first (``confirm_crosser_sightings``).
    """
    def count(tracks: list[Track]) -> int:
        # An alternative link is a second reading of sightings already counted in other tracks.
        return sum(1 for t in tracks if not t.alternative and (counted is None or t.frames[0] in counted))

    if confident is None:
        tracks = link(per_frame, spec, detect_every, frame_size, share_taken=keep)
        return _as_detections(len(per_frame), tracks, spec, detect_every, keep=keep), count(tracks)
    strong_frames = [None if d is None else d[d.confidence >= confident] for d in per_frame]
    strong = link(strong_frames, spec, detect_every, frame_size, share_taken=keep)
    out = _as_detections(len(per_frame), strong, spec, detect_every, keep=keep)
    # Persistence alone confirms a weak track up to confirm_max_px, or up to twice the median size
    # of the confident tracks around it where they are larger (a scene filmed from up close).
    max_size = float(spec.confirm_max_px)
    # (Borrowed and late alternatives left out: they only add masks, and must not move this bound.)
    sides = [_median_side(t.boxes) for t in strong if not (t.borrowed or t.late)]
    if max_size and sides:
        max_size = max(max_size, 2 * float(np.median(sides)))
    ran = np.concatenate([[0], np.cumsum([d is not None for d in per_frame])])
    confirmed = [
        t
        for t in link(per_frame, spec, detect_every, frame_size)
        if _confirmed(t, confident, spec.confirm_sightings, max_size, spec, ran)
    ]
    if confirmed:
        extra = _as_detections(
            len(per_frame), confirmed, spec, detect_every, below=confident, id_offset=len(strong), keep=keep
        )
        out = [Detections.merge([a, b]) for a, b in zip(out, extra)]
    crossers = _crossers(per_frame, confident, spec.confirm_crosser_sightings)
    if crossers:
        offset = len(strong) + len(confirmed) + max((t.track_id for t in confirmed), default=0) + 1
        extra = _as_detections(len(per_frame), crossers, spec, detect_every, below=confident, id_offset=offset)
        out = [Detections.merge([a, _new_only(b, a)]) for a, b in zip(out, extra)]
    return out, count(strong)


def _new_only(extra: Detections, out: Detections) -> Detections:
    """``extra`` without its detected boxes that ``out`` already holds as detected (a weak crosser's
    sighting that a confirmed track packed too), nor those it holds twice itself (two chains may
    share a sighting): each raw detection is packed once. Predicted boxes are all kept."""
    if not len(extra):
        return extra
    mine = extra.source == DETECTED
    if not mine.any():
        return extra
    theirs = out.xyxy[out.source == DETECTED] if len(out) else np.zeros((0, 4), np.float32)
    again = np.zeros(len(extra), bool)
    if len(theirs):
        again = mine & (np.abs(extra.xyxy[:, None] - theirs[None]).max(axis=2) == 0).any(axis=1)
    seen: set[bytes] = set()
    for i in np.nonzero(mine & ~again)[0].tolist():
        key = extra.xyxy[i].tobytes()
        again[i] = key in seen
        seen.add(key)
    return extra[~again]
