"""Action Images: multiview video-action generation for robot learning."""

__version__ = "0.1.0"
