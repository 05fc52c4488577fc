"""Tokenizers for the 3D vision-language branch (Vid-LLM Sec. 3.3): an offline byte-level BPE for the demo LLM, or a local LLM's own.

Reserved tokens: `<pad>`, `<bos>`, `<eos>`, `<scene>` (placeholder the projected 3D tokens replace) and `<ground>`
(the answer token whose hidden state drives the grounding head, as Video-3D-LLM's `<ground>`).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from vidllm_core.errors import CheckpointError

__all__ = [
    "PAD", "BOS", "EOS", "SCENE", "GROUND", "SPECIAL_TOKENS",
    "build_tokenizer", "load_tokenizer", "ensure_special_tokens", "has_tokenizer_files",
]

PAD, BOS, EOS, SCENE, GROUND = "<pad>", "<bos>", "<eos>", "<scene>", "<ground>"
SPECIAL_TOKENS = (PAD, BOS, EOS, SCENE, GROUND)  # ids 0..4 in a tokenizer from `build_tokenizer`
_GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")


def build_tokenizer(texts: Iterable[str], vocab_size: int,
                    out_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` with the `tokenizers` library (offline, no download).

    Every byte is in the initial alphabet, so any UTF-8 text encodes without an unknown token. The five
    `SPECIAL_TOKENS` get ids 0..4; no chat template is set (prompts.chat_text uses the plain template).

    Args:
        texts: training sentences (questions, answers, captions, descriptions).
        vocab_size: target vocabulary size including the 256 byte symbols and the 5 special tokens (>= 261).
        out_dir: if given, the tokenizer is saved there (`tokenizer.json`, `tokenizer_config.json`).

    Returns:
        A `PreTrainedTokenizerFast` with bos/eos/pad set and `<scene>`, `<ground>` as additional special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be >= {minimum} (256 bytes + {len(SPECIAL_TOKENS)} special), "
                         f"got {vocab_size}")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator((t for t in texts if t), trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=[SCENE, GROUND],
    )
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def has_tokenizer_files(path: str | Path) -> bool:
    """True when `path` is a directory holding at least one tokenizer file Hugging Face can load."""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in _TOKENIZER_FILES)


def ensure_special_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Add `<scene>`, `<ground>` (and `<pad>` when the tokenizer has no pad token) if missing.

    Returns:
        The number of tokens added. When > 0 the LLM's embeddings must be resized to `len(tokenizer)`
        (`SceneLanguageModel` does this itself).
    """
    added = 0
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    vocab = tokenizer.get_vocab()
    missing = [t for t in (SCENE, GROUND) if t not in vocab]
    if missing:
        params = inspect.signature(tokenizer.add_special_tokens).parameters
        keep = "replace_extra_special_tokens" if "replace_extra_special_tokens" in params else \
            "replace_additional_special_tokens"  # transformers 5 renamed "additional" to "extra"
        added += tokenizer.add_special_tokens({"additional_special_tokens": missing}, **{keep: False})
    return added


def _declared_class(path: Path) -> str | None:
    """`tokenizer_class` of tokenizer_config.json (None when absent or unreadable)."""
    try:
        data = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("tokenizer_class") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def load_tokenizer(path: str | Path) -> tuple[PreTrainedTokenizerBase, int]:
    """Load a tokenizer from a local directory (never the network, never remote code) and ensure the reserved tokens.

    Args:
        path: a directory with `tokenizer.json` / `tokenizer_config.json` (a vidllm model's `tokenizer/`, or a
            Hugging Face LLM directory).

    Returns:
        (tokenizer, number of tokens added by `ensure_special_tokens`).

    Raises:
        CheckpointError: the directory is missing, holds no tokenizer files, or they cannot be parsed.
    """
    p = Path(path)
    if not p.is_dir():
        raise CheckpointError(f"tokenizer directory not found: {p}")
    if not has_tokenizer_files(p):
        raise CheckpointError(f"no tokenizer in {p} (expected tokenizer.json or tokenizer_config.json)")
    try:
        if _declared_class(p) in _GENERIC_CLASSES:
            # AutoTokenizer would follow a neighbouring config.json's model_type (a Qwen2 LLM -> Qwen2Tokenizer,
            # which adds its own unknown token); a generic tokenizer.json must load as exactly what was saved.
            tok = PreTrainedTokenizerFast.from_pretrained(str(p), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load the tokenizer in {p}: {first}") from None
    added = ensure_special_tokens(tok)
    return tok, added
