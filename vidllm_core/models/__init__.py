"""Network assemblies: DINOv2 encoder, Global-Frame aggregator, reconstruction model (and the Vid-LLM parts)."""
