"""anonymizer: on-premise removal of faces and licence plates from video and photos."""

__version__ = "0.1.0"
