"""Prediction heads: camera (pose encoding), DPT dense heads with their activations, 3D grounding boxes."""
