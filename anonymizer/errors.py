"""One error hierarchy; each class also inherits the builtin it behaves like.

A job catches ``AnonymizerError`` (and ``OSError``) once, records the reason and moves on;
anything else is a bug and is allowed to stop the process so that systemd restarts it.
"""

import re

# The key paths a validation error names: "<source>: at 'regions[0].box': ..." (anonymizer.schema's
# Checker) and "<sidecar>: regions[0]: reaches outside ..." (a sidecar that does not fit its media).
_KEY_PATH = re.compile(r"at '([^']*)'|(?:^|: )((?:regions|exclusions)\[\d+\]):", re.MULTILINE)


def config_error_keys(exc: BaseException) -> list[str]:
    """The key paths a config or sidecar error names, sorted, without the values it quotes."""
    return sorted({a or b for a, b in _KEY_PATH.findall(str(exc))})


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
