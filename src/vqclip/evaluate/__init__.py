"""Evaluations on Shapes world: CLIP zero-shot and retrieval, VQGAN reconstruction, generation."""
