"""Building blocks shared by every network: attention, block, MLP, RoPE, LayerScale, patch embedding."""
