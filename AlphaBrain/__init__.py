"""AlphaBrain-CL: continual learning for Vision-Language-Action policies."""

__version__ = "0.1.0"
