"""VQGAN: taming-compatible models, safe checkpoint loading, training on Shapes world."""

from vqclip.vqgan.model import VQGAN, DDConfig, VQGANConfig

__all__ = ["VQGAN", "DDConfig", "VQGANConfig"]
