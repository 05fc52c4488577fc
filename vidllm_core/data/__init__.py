"""Data: video reading, frame sampling, synthetic scenes and benchmark loaders."""
