"""VQGAN+CLIP generation: prompts, cutouts, the optimisation loop and its outputs."""

from vqclip.generation.generator import GenerateResult, generate
from vqclip.generation.settings import GenerateSettings

__all__ = ["GenerateResult", "GenerateSettings", "generate"]
