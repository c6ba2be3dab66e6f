"""VQGAN+CLIP generation: prompts, cutouts, the optimisation loop and its outputs."""

from vqclip.generate.generator import GenerateResult, generate
from vqclip.generate.settings import GenerateSettings

__all__ = ["GenerateResult", "GenerateSettings", "generate"]
