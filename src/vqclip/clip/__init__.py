"""CLIP: loading public and embedded models, contrastive training, zero-shot classification."""
