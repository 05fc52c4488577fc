"""Reconstruction export formats other tools read (issue 13, not in the paper): COLMAP, GLB, nerfstudio, preview."""
