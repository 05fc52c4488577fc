"""Geometry helpers: pose encoding, unprojection, scale alignment, point clouds."""
