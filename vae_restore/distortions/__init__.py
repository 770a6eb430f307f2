"""Synthetic degradations that turn clear images into training inputs."""

from .noise import gaussian_noise

__all__ = ["gaussian_noise"]
