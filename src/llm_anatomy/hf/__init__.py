"""How transformers sees a checkpoint: name maps, fused conversions, loader transforms, the cached skeleton."""
