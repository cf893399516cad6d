"""The GPU check: the default profile on a generated 1080p clip and on photos, fps and where the time goes.

Run by ``bench/gpu_check.sh`` (which installs the carried wheels first); see docs/gpu.md. On a host
without CUDA it runs the same steps on the CPU (onnxruntime, or ``--backend torch``) with fewer
frames, which proves the script, not the GPU.

    python bench/gpu_check.py                      # 300 frames of 1080p (60 on the CPU), the sample photos
    python bench/gpu_check.py --frames 600 --batch 16
    python bench/gpu_check.py --json out.json      # the figures as JSON too

It prints, in this order: the environment (torch, CUDA, the GPU, PyAV's hardware decoders); the
raw models' throughput per batch size (images/s); a plain transcode and a decode alone (the floor
any re-encode pays); the default profile on the panned and the fixed-camera clip (fps, and each
stage's busy seconds: read = first decode + RGB, detect, track, mask, encode = x264); the sample
photos (seconds each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import av  # noqa: E402
import numpy as np  # noqa: E402
from speed import make_clip, make_fixed_clip, timed, transcode  # noqa: E402

from anonymizer.config import load_profile  # noqa: E402
from anonymizer.detect.torch import cuda_available, torch_path_available  # noqa: E402

SAMPLES = ROOT / "samples"
DEFAULT_PROFILE = ROOT / "profiles" / "default.yaml"


def say(line: str = "") -> None:
    print(line, flush=True)


def environment() -> dict:
    env: dict = {"python": platform.python_version(), "av": av.__version__, "cpus": len(os.sched_getaffinity(0))}
    try:
        from av.codec.hwaccel import hwdevices_available

        env["av_hwdevices"] = hwdevices_available()
    except ImportError:
        env["av_hwdevices"] = []
    env["torch_path"] = torch_path_available()
    if env["torch_path"]:
        import torch

        env["torch"] = torch.__version__
        env["cuda"] = cuda_available()
        if env["cuda"]:
            env["gpu"] = torch.cuda.get_device_name(0)
    return env


def model_throughput(device: str, batches: list[int], seconds: float) -> dict[str, dict[int, float]]:
    """Images per second of each raw torch model at each batch size (platedet 640x640, CenterFace 1080p)."""
    from anonymizer.detect.registry import builtin_weights
    from anonymizer.detect.torch import TorchCenterFace, TorchYolo

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    models = {
        "platedet 1920x1080 letterboxed to 640": TorchYolo(*builtin_weights("platedet"), "platedet", device=device),
        "centerface 1920x1080 (padded to 1088)": TorchCenterFace(*builtin_weights("centerface"), device=device),
    }
    out: dict[str, dict[int, float]] = {}
    for name, model in models.items():
        out[name] = {}
        for n in batches:
            images = [frame] * n
            model.batch(images, 0.05)  # warm-up (cuDNN picks its kernels per shape)
            calls, start = 0, time.perf_counter()
            while calls < 2 or time.perf_counter() - start < seconds:
                model.batch(images, 0.05)
                calls += 1
            if device == "cuda":
                import torch

                torch.cuda.synchronize()
            out[name][n] = calls * n / (time.perf_counter() - start)
            say(f"  {name}, batch {n}: {out[name][n]:.1f} images/s")
    return out


def decode_fps(clip: Path, frames: int, hwaccel: bool) -> tuple[float, bool]:
    from anonymizer.media import video

    limits = load_profile(DEFAULT_PROFILE).limits
    container, on_gpu = video._open_decoding(clip, hwaccel)
    container.close()
    start = time.perf_counter()
    n = sum(1 for _ in video.iter_frames(clip, limits, hwaccel=hwaccel))
    assert n == frames, (n, frames)
    return n / (time.perf_counter() - start), on_gpu


def run_engine(engine, clip: Path, out: Path, frames: int) -> dict:
    held: list = []
    wall, cpu = timed(lambda: held.append(engine.process(clip, out)))
    result = held[0]
    assert result.frames == frames
    stages = {k: round(v, 2) for k, v in result.timings.items()}
    return {
        "fps": frames / wall,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 1),
        "stages": stages,
        "passes": result.passes,
        "masked_frames": {k: c.masked_frames for k, c in result.counts.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, help="frames of each 1080p clip (default 300 on CUDA, 60 without)")
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnxruntime"),
        default="auto",
        help="auto: torch on CUDA, onnxruntime on the CPU",
    )
    parser.add_argument("--batch", type=int, default=0, help="video frames per detector call (0: the engine's)")
    parser.add_argument("--model-seconds", type=float, default=3.0, help="time per batch size in the model test")
    parser.add_argument("--photos", type=int, default=0, help="only the first N sample photos (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    from anonymizer.media.memory import return_large_buffers

    return_large_buffers()  # the engine runs in this process: set up as the CLI sets up its own

    t_start = time.perf_counter()
    env = environment()
    on_gpu = bool(env.get("cuda"))
    frames = args.frames or (300 if on_gpu else 60)
    backend = None if args.backend == "auto" else args.backend
    report: dict = {"environment": env}
    say("## environment")
    for key, value in env.items():
        say(f"  {key}: {value}")
    if not on_gpu:
        say("  NO CUDA DEVICE: CPU fallback (proves the script, not the GPU)")

    if env["torch_path"] and (on_gpu or backend == "torch"):
        say("## raw models (torch, " + ("cuda fp16" if on_gpu else "cpu fp32") + ")")
        batches = [1, 8, 32] if on_gpu else [1, 2]
        report["models"] = model_throughput("cuda" if on_gpu else "cpu", batches, args.model_seconds if on_gpu else 0)

    from anonymizer.pipeline import Engine

    started = time.perf_counter()
    engine = Engine(load_profile(DEFAULT_PROFILE), backend=backend)
    if args.batch:
        engine.batch = args.batch
        for detector in engine.detectors.values():  # crops per call: at least one per frame
            detector.batch_size = max(detector.batch_size, args.batch)
    report["engine"] = {
        "device": engine.device,
        "backend": engine.backend,
        "batch": engine.batch,
        "load_seconds": round(time.perf_counter() - started, 1),
    }
    say(f"## engine: {report['engine']}")

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        panned = make_clip(work / "panned.mp4", frames)
        fixed, how = make_fixed_clip(work / "fixed.mp4", frames, seed=0, use_labels=False)
        say(f"## clips: 1920x1080, {frames} frames each, made in {time.perf_counter() - started:.0f} s (fixed: {how})")

        wall, _ = timed(lambda: transcode(panned, work / "transcode.mp4"))
        report["transcode_fps"] = frames / wall
        report["decode_fps_cpu"], _ = decode_fps(panned, frames, False)
        say(f"  plain transcode (decode + x264 veryfast, CPU): {report['transcode_fps']:.1f} fps")
        say(f"  decode alone, CPU: {report['decode_fps_cpu']:.1f} fps")
        if engine.device == "cuda":
            report["decode_fps_gpu"], nvdec = decode_fps(panned, frames, True)
            say(f"  decode alone, hwaccel asked: {report['decode_fps_gpu']:.1f} fps (NVDEC used: {nvdec})")

        say("## default profile on the clips (stage seconds are busy time; the stages overlap)")
        for name, clip in (("panned", panned), ("fixed", fixed)):
            run = run_engine(engine, clip, work / f"out-{name}.mp4", frames)
            report[f"clip_{name}"] = run
            run["x_transcode_time"] = run["seconds"] * report["transcode_fps"] / frames
            say(
                f"  {name}: {run['fps']:.1f} fps ({run['seconds']} s, CPU {run['cpu_seconds']} s), "
                f"{run['x_transcode_time']:.2f}x a plain transcode's time"
            )
            say(f"    stages: {run['stages']}")
            say(f"    passes: {run['passes']}  masked frames: {run['masked_frames']}")

        say("## default profile on the sample photos")
        photos = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        photos = photos[: args.photos or None]
        report["photos"] = {}
        for photo in photos:
            result_holder: list = []
            wall, _ = timed(lambda photo=photo: result_holder.append(engine.process(photo, work / photo.name)))
            size = f"{result_holder[0].width}x{result_holder[0].height}"
            report["photos"][photo.name] = {"seconds": round(wall, 3), "size": size}
            say(f"  {photo.name} ({size}): {wall:.2f} s")
        total = sum(p["seconds"] for p in report["photos"].values())
        say(f"  {len(photos)} photos in {total:.2f} s ({len(photos) / total:.2f} photos/s)")

    report["check_seconds"] = round(time.perf_counter() - t_start, 1)
    say(f"## done in {report['check_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
