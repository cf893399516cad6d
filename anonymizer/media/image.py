"""Photos: decode with a pixel limit, apply EXIF orientation to the pixels, write with no metadata.

Pillow is told the profile's pixel limit before it decodes anything, so a decompression bomb (a
tiny file declaring a huge canvas) is refused from its header.

HEIC (what phones write) is read and written through the pillow-heif plugin. Its output is HEIC
again (pillow-heif's wheel carries an HEVC encoder), built from the masked pixels alone, so none of
the source's EXIF/GPS, XMP, thumbnails (an unmasked copy of the photo), depth or auxiliary images
survives; libheif applies the container's rotation while decoding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anonymizer.config import LimitsSpec, OutputSpec
from anonymizer.errors import LimitExceededError, MediaError, UnsupportedMediaError
from anonymizer.media.sniff import sniff_bytes

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
ACCEPTED_PIL_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "HEIF"}

try:
    import pillow_heif
except ImportError:  # a core dependency; without it HEIC is refused by read_photo, not by a crash
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()
    # Thumbnails, depth maps and auxiliary images are never used: not decoding them means an
    # unmasked thumbnail cannot reach the output by any path.
    pillow_heif.options.THUMBNAILS = False
    pillow_heif.options.DEPTH_IMAGES = False
    pillow_heif.options.AUX_IMAGES = False


@dataclass
class Photo:
    rgb: np.ndarray  # uint8 (H, W, 3), orientation already applied
    alpha: np.ndarray | None  # uint8 (H, W) or None
    format: str
    icc_profile: bytes | None


def read_photo(path: Path, limits: LimitsSpec) -> Photo:
    """Decode a photo. Raise LimitExceededError before decoding an oversized canvas."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = limits.max_pixels
            with Image.open(path) as im:
                if im.format not in ACCEPTED_PIL_FORMATS:
                    raise UnsupportedMediaError(f"unsupported image format {im.format}")
                if im.width * im.height > limits.max_pixels:
                    raise LimitExceededError(
                        f"{im.width}x{im.height} image exceeds limits.max_pixels={limits.max_pixels}"
                    )
                if getattr(im, "n_frames", 1) > 1 and im.format not in ("MPO",):
                    raise UnsupportedMediaError("multi-page images are not supported")
                fmt = "JPEG" if im.format == "MPO" else im.format
                im.load()
                icc = im.info.get("icc_profile")
                im = ImageOps.exif_transpose(im)
                alpha = None
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    im = im.convert("RGBA")
                    alpha = np.asarray(im)[:, :, 3].copy()
                rgb = np.array(im.convert("RGB"))  # a writable copy: masks are applied in place
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LimitExceededError(f"image exceeds limits.max_pixels={limits.max_pixels}") from exc
    except UnidentifiedImageError as exc:
        if pillow_heif is None and _is_heif(path):
            raise UnsupportedMediaError("HEIC photos need the pillow-heif package (run scripts/install.sh)") from exc
        raise UnsupportedMediaError("not a readable image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, MediaError):
            raise
        raise MediaError(f"corrupt or truncated image: {type(exc).__name__}") from exc
    return Photo(rgb, alpha, fmt, icc)


def write_photo(photo: Photo, rgb: np.ndarray, dst: Path, output: OutputSpec) -> None:
    """Write ``rgb`` in the photo's own format with no EXIF/GPS/XMP/IPTC/comments.

    Only the colour profile survives (it describes the pixels, not the person); orientation was
    applied to the pixels, so no orientation tag is needed (``keep_orientation_tag`` writes 1).
    """
    im = Image.fromarray(rgb, "RGB")
    if photo.alpha is not None and photo.format in ("PNG", "WEBP", "TIFF"):
        im.putalpha(Image.fromarray(photo.alpha, "L"))
    kwargs: dict = {}
    if photo.icc_profile and photo.format in ("JPEG", "PNG", "WEBP", "TIFF", "HEIF"):
        kwargs["icc_profile"] = photo.icc_profile
    if photo.format == "JPEG":
        kwargs.update(quality=output.image_quality, subsampling=0 if output.image_quality >= 90 else 2)
    elif photo.format in ("WEBP", "HEIF"):
        kwargs.update(quality=output.image_quality)
    if output.keep_orientation_tag and photo.format in ("JPEG", "WEBP", "TIFF"):
        exif = Image.Exif()
        exif[0x0112] = 1
        kwargs["exif"] = exif.tobytes()
    if photo.format == "HEIF":
        # Explicitly empty: pillow-heif would otherwise take EXIF/XMP from im.info if any were there.
        kwargs.update(exif=None, xmp=None)
    with open(dst, "wb") as fh:
        im.save(fh, format=photo.format, **kwargs)


def _is_heif(path: Path) -> bool:

    try:
        with open(path, "rb") as fh:
            return sniff_bytes(fh.read(64)) == "heif"
    except (OSError, MediaError):
        return False
