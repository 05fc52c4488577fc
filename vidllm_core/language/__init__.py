"""3D vision-language branch of Vid-LLM (Sec. 3.3-3.4): token pooling, tokenizer, prompts, LLM fusion, scene cache.

Submodules are imported on use (they pull in torch / transformers): `pooling`, `tokenizer`, `prompts`, `fusion`,
`cache`.
"""
