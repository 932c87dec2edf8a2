"""Video processor plugins (numpy only): edges, grayscale, mirror, text overlay, picture-in-picture, sprite."""

from runner.processors.video.edges import EdgeDetect
from runner.processors.video.grayscale import Grayscale
from runner.processors.video.mirror import Mirror
from runner.processors.video.overlay_text import TextOverlay
from runner.processors.video.pip import PictureInPicture
from runner.processors.video.sprite import Sprite

__all__ = ["EdgeDetect", "Grayscale", "Mirror", "PictureInPicture", "Sprite", "TextOverlay"]
