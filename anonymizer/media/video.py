"""Video in and out with PyAV: probe with limits, decode frames with their pts, re-encode with audio.

The pipeline decodes a video twice, side by side (anonymizer.stream.stages): ahead of the tracker
for detection, behind it for masking and encoding; the output is written under a temporary name
and kept only when every frame decoded and was written. Timestamps are carried from the source
frame to the encoded frame, never recomputed from a frame rate: phone and VMS video is often
variable frame rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from anonymizer.config import LimitsSpec, OutputSpec
from anonymizer.errors import LimitExceededError, MediaError, UnsupportedMediaError

# Demuxers we accept. Playlist and concat demuxers (hls, concat, ...) are absent on purpose: a
# playlist dropped into a watched folder must never make us read a file from outside it.
FORMAT_WHITELIST = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,asf,gif,m4v,h264,hevc,yuv4mpegpipe"
OPEN_OPTIONS = {"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": "file"}

# Output muxer by suffix, and the video codec a muxer forces regardless of the profile.
MUXERS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".3gp": "3gp", ".mkv": "matroska", ".webm": "webm",
    ".avi": "avi", ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".mpg": "mpeg", ".mpeg": "mpeg",
    ".flv": "flv", ".asf": "asf", ".wmv": "asf", ".gif": "gif",
}
FORCED_CODEC = {"webm": "libvpx-vp9", "mpeg": "mpeg2video", "gif": "gif", "asf": "msmpeg4", "flv": "flv"}
# Container-level tags that say nothing about a person or a device; everything else is dropped.
ALLOWED_TAGS = ("creation_time",)
VFR_CODECS = {"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "libvpx-vp9", "gif"}
MPEG2_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
               Fraction(50), Fraction(60000, 1001), Fraction(60)]


def _mpeg2_rate(rate: Fraction) -> Fraction:
    """The MPEG-2 frame rate closest to ``rate`` (the encoder accepts no other)."""
    return min(MPEG2_RATES, key=lambda r: abs(float(r) - float(rate)))


@dataclass(frozen=True)
class VideoInfo:
    format_name: str
    width: int
    height: int
    codec: str
    frames_declared: int
    duration_s: float | None
    fps: float | None
    has_audio: bool
    streams: int
    duration_exact: bool = True  # duration is the video stream's own, not the container's


def _open(path: Path, hwaccel: object | None = None) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", options=dict(OPEN_OPTIONS), hwaccel=hwaccel)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot open as video: {exc.strerror or type(exc).__name__}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"cannot open as video: {type(exc).__name__}") from exc


def probe_video(path: Path, limits: LimitsSpec) -> VideoInfo:
    """Read the header only. Raise MediaError / LimitExceededError before any frame is decoded."""
    with _open(path) as container:
        if not container.streams.video:
            raise UnsupportedMediaError("no video stream")
        if len(container.streams) > limits.max_streams:
            raise LimitExceededError(f"{len(container.streams)} streams exceed limits.max_streams={limits.max_streams}")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise MediaError("video stream declares no frame size")
        if width * height > limits.max_pixels:
            raise LimitExceededError(f"{width}x{height} frames exceed limits.max_pixels={limits.max_pixels}")
        duration, exact = _stream_duration(stream), True
        if duration is None and container.duration is not None:
            # The container's duration may include a longer audio track: judged more loosely.
            duration, exact = container.duration / av.time_base, False
        if duration is not None and duration > limits.max_duration_s:
            raise LimitExceededError(f"duration {duration:.0f}s exceeds limits.max_duration_s={limits.max_duration_s:.0f}")
        frames = int(stream.frames or 0)
        if frames > limits.max_frames:
            raise LimitExceededError(f"{frames} frames exceed limits.max_frames={limits.max_frames}")
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            duration_exact=exact,
            format_name=container.format.name,
            width=width,
            height=height,
            codec=ctx.name,
            frames_declared=frames,
            duration_s=duration,
            fps=float(rate) if rate else None,
            has_audio=bool(container.streams.audio),
            streams=len(container.streams),
        )


@dataclass
class DecodedFrame:
    index: int
    pts: int | None
    frame: av.VideoFrame

    def rgb(self) -> np.ndarray:
        return self.frame.to_ndarray(format="rgb24")


def _open_decoding(path: Path, hwaccel: bool) -> tuple[av.container.InputContainer, bool]:
    """Open ``path`` for decoding on the GPU (NVDEC, through PyAV's CUDA hwaccel) when asked and
    possible, else on the CPU. Return (container, whether the GPU decodes).

    H.264 and HEVC decoding is bit-exact, so both decoders give the same pixels: the GPU only
    takes the work off the CPU cores the encoder needs. A host without a CUDA device (FFmpeg
    cannot create the device: PermissionError here), a codec without a CUDA decoder, or an FFmpeg
    built without CUDA falls back to the CPU; ``allow_software_fallback`` covers a stream the
    hardware decoder refuses (a profile or size it lacks).
    """
    if hwaccel:
        try:
            from av.codec.hwaccel import HWAccel

            accel = HWAccel("cuda", allow_software_fallback=True)
            return _open(path, accel), True
        except (ImportError, NotImplementedError, ValueError, av.error.FFmpegError, MediaError):
            pass  # the CPU decodes: same pixels
    return _open(path), False


def iter_frames(path: Path, limits: LimitsSpec, *, hwaccel: bool = False) -> Iterator[DecodedFrame]:
    """Decode every frame of the first video stream. Any decode error raises MediaError.

    ``hwaccel``: decode on the CUDA device when there is one (``_open_decoding``); frames are
    downloaded to memory either way. A stream the GPU decoder fails on before its first frame is
    decoded on the CPU instead; after it, an error fails the job as any decode error does.
    """
    container, on_gpu = _open_decoding(path, hwaccel)
    frames = _decode(container, limits)
    try:
        if on_gpu:
            try:
                first = next(frames)
            except StopIteration:
                return
            except LimitExceededError:
                raise
            except MediaError:  # NVDEC refused the stream (a profile or size it lacks)
                frames = _decode(_open(path), limits)
            else:
                yield first
        yield from frames
    finally:
        frames.close()  # a consumer that stops early closes the file now, not at collection


def _decode(container: av.container.InputContainer, limits: LimitsSpec) -> Iterator[DecodedFrame]:
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # Fail on damaged data instead of concealing it: a concealed frame may show what the
        # detector never saw. No output is better than one with unmasked frames.
        stream.codec_context.options = {"err_detect": "explode"}
        index = 0
        try:
            for frame in container.decode(stream):
                if index >= limits.max_frames:
                    raise LimitExceededError(f"more than limits.max_frames={limits.max_frames} frames")
                if frame.time is not None and frame.time > limits.max_duration_s:
                    raise LimitExceededError(f"stream runs past limits.max_duration_s={limits.max_duration_s:.0f}")
                yield DecodedFrame(index, frame.pts, frame)
                index += 1
        except av.error.FFmpegError as exc:
            raise MediaError(f"decode error at frame {index}: {exc.strerror or type(exc).__name__}") from exc


def check_complete(info: VideoInfo, decoded: int, last_time_s: float | None) -> None:
    """Raise MediaError when fewer frames decode than the container declares.

    Truncated AVI and MKV files decode about half their frames without any error while their
    header still declares all of them (RUNTIME-NOTES.md); a half-copied export looks the same.
    """
    if decoded == 0:
        raise MediaError("no frame could be decoded")
    if info.frames_declared:
        missing = info.frames_declared - decoded
        if missing > max(2, 0.01 * info.frames_declared):
            raise MediaError(f"truncated: {decoded} of {info.frames_declared} declared frames decoded")
    if info.duration_s and last_time_s is not None and info.fps:
        # The last decoded frame must reach (almost) the declared end of the stream: within a
        # few frames when the video stream declares its own duration, within a second when
        # only the container's (which may include a longer audio track) is known.
        tolerance = max(3.0 / info.fps, 0.02 * info.duration_s, 0.0 if info.duration_exact else 1.0)
        if last_time_s + tolerance < info.duration_s:
            raise MediaError(f"truncated: frames end at {last_time_s:.1f}s of {info.duration_s:.1f}s declared")


class VideoWriter:
    """Encode masked frames into ``dst`` and copy the source's audio packets untouched.

    Usage: ``with VideoWriter(src, dst, output) as w: w.write(frame_or_array, pts) ...``; the
    caller feeds video frames in order; audio is muxed in ``close`` from a second read of the
    source, interleaved by the muxer. Container tags are reduced to ``ALLOWED_TAGS``.
    """

    def __init__(self, src: Path, dst: Path, output: OutputSpec, info: VideoInfo, *, rotation: int = 0) -> None:
        self.src, self.dst, self.output, self.info = src, dst, output, info
        muxer = MUXERS.get(dst.suffix.lower())
        if muxer is None:
            raise UnsupportedMediaError(f"no output container for suffix {dst.suffix!r}")
        self.source = _open(src)
        in_stream = self.source.streams.video[0]
        self.time_base = in_stream.time_base or Fraction(1, 90000)
        self.container = av.open(str(dst), mode="w", format=muxer)
        for key in ALLOWED_TAGS:
            if key in self.source.metadata:
                self.container.metadata[key] = self.source.metadata[key]
        codec = FORCED_CODEC.get(muxer, output.video_codec)
        rate = in_stream.average_rate or in_stream.guessed_rate or Fraction(25)
        self.stream = self.container.add_stream(codec, rate=rate)
        self.stream.width, self.stream.height = info.width, info.height
        # Codecs of the MPEG-2/MPEG-4 part 2 family only know constant frame rates (and MPEG-2
        # only the broadcast ones): they get frame-numbered timestamps at that rate. Every other
        # codec keeps the source's own time base and per-frame timestamps (VFR).
        self.constant_rate = codec not in VFR_CODECS
        if self.constant_rate:
            rate = _mpeg2_rate(rate) if codec == "mpeg2video" else rate
            self.time_base = Fraction(rate.denominator, rate.numerator)
            self.stream.rate = rate
        self.stream.time_base = self.time_base
        self.stream.codec_context.time_base = self.time_base
        if codec == "gif":
            self.stream.pix_fmt = "rgb8"
        elif codec in ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "libvpx-vp9", "mpeg2video", "mpeg4"):
            self.stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "libx265"):
            self.stream.options = {"crf": str(output.crf), "preset": output.preset}
        elif codec == "libvpx-vp9":
            self.stream.options = {"crf": str(output.crf + 11), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        elif codec in ("h264_nvenc", "hevc_nvenc"):
            self.stream.options = {"cq": str(output.crf), "preset": "p4"}
        else:
            self.stream.bit_rate = max(1_000_000, info.width * info.height * 4)
        if rotation:
            self.stream.set_display_rotation(rotation)
        self.audio_map = {}
        if output.audio == "copy":
            for audio in self.source.streams.audio:
                try:
                    self.audio_map[audio.index] = self.container.add_stream_from_template(audio)
                except (ValueError, av.error.FFmpegError):
                    continue  # the container cannot carry this codec; recorded as dropped
        self.audio_streams_dropped = len(self.source.streams.audio) - len(self.audio_map)
        self._audio_iter = self._audio_packets() if self.audio_map else iter(())
        self._pending_audio = None
        self.frames_written = 0
        self._last_pts: int | None = None

    def _audio_packets(self):
        for packet in self.source.demux([self.source.streams[i] for i in self.audio_map]):
            # The demuxer's flush packet has size 0; muxing it would end the stream early.
            if packet.size == 0 or packet.dts is None:
                continue
            yield packet

    def _mux_audio_until(self, time_s: float | None) -> None:
        while True:
            if self._pending_audio is None:
                self._pending_audio = next(self._audio_iter, None)
                if self._pending_audio is None:
                    return
            packet = self._pending_audio
            if time_s is not None and packet.pts is not None and float(packet.pts * packet.time_base) > time_s:
                return
            packet.stream = self.audio_map[packet.stream_index]
            self.container.mux(packet)
            self._pending_audio = None

    def write(self, image: np.ndarray | av.VideoFrame, pts: int | None) -> None:
        if isinstance(image, np.ndarray):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        else:
            frame = image
            # A decoded frame remembers it was an I/P/B frame; the encoder must choose anew.
            frame.pict_type = av.video.frame.PictureType.NONE
        if self.constant_rate:
            pts = self.frames_written
        # Encoders require strictly increasing pts; a source with duplicates or gaps in pts keeps
        # its timing as closely as the encoder allows.
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + 1
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        frame.pts, frame.time_base = pts, self.time_base
        self._last_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames_written += 1
        self._mux_audio_until(float(pts * self.time_base))

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self._mux_audio_until(None)
        finally:
            self.container.close()
            self.source.close()

    def abort(self) -> None:
        for c in (self.container, self.source):
            try:
                c.close()
            except Exception:  # closing a half-written muxer may itself fail; the file is removed
                pass


def _stream_duration(stream) -> float | None:
    """The video stream's own duration in seconds, from its header or (Matroska) its tags."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


def frame_rotation(frame: av.VideoFrame) -> int:
    """Display rotation in degrees carried by a decoded frame's display matrix (phones set it)."""
    try:
        return int(round(frame.rotation)) % 360 if not math.isnan(frame.rotation) else 0
    except (AttributeError, TypeError, ValueError):
        return 0

