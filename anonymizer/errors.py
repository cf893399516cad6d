"""One error hierarchy; each class also inherits the builtin it behaves like.

A job catches ``AnonymizerError`` (and ``OSError``) once, records the reason and moves on;
anything else is a bug and is allowed to stop the process so that systemd restarts it.
"""


class AnonymizerError(Exception):
    """Base class for every error the product raises on purpose."""


class ConfigError(AnonymizerError, ValueError):
    """A profile or daemon config is invalid. The message names file, key and allowed values."""


class MediaError(AnonymizerError, ValueError):
    """An input cannot be anonymized safely: unsupported, corrupt, truncated or hostile."""


class UnsupportedMediaError(MediaError):
    """The file is not a photo or video format this product accepts."""


class LimitExceededError(MediaError):
    """The file exceeds a limit set in the profile (pixels, duration, streams, size)."""


class ModelError(AnonymizerError, RuntimeError):
    """A detector's weights are missing, unreadable or do not match what was configured."""


class JobError(AnonymizerError, RuntimeError):
    """A job could not be completed for a reason outside the media (e.g. output verification)."""
