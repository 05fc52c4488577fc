"""Prediction heads: camera (pose encoding) and DPT dense heads, with their output activations."""
