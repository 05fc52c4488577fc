"""Offline byte-level BPE tokenizer, loading from a directory, reserved tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidllm_core.errors import CheckpointError
from vidllm_core.language.tokenizer import SPECIAL_TOKENS, build_tokenizer, ensure_special_tokens, load_tokenizer


def test_build_save_load_roundtrip(tmp_path: Path, tokenizer) -> None:  # noqa: ANN001
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<bos>", "<eos>")
    text = "How many chairs? <scene> Ünïcödé 椅子 <ground>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(3) == 1 and ids.count(4) == 1  # reserved tokens are single ids, never split
    assert tokenizer.decode(ids) == text  # byte-level: any UTF-8 text round-trips
    tokenizer.save_pretrained(str(tmp_path))
    loaded, added = load_tokenizer(tmp_path)
    assert added == 0 and len(loaded) == len(tokenizer)
    assert loaded(text, add_special_tokens=False)["input_ids"] == ids


def test_vocab_size_too_small() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(["a b"], vocab_size=100)


def test_dir_without_tokenizer_is_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_tokenizer(tmp_path / "missing")


def test_corrupt_tokenizer_is_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        load_tokenizer(tmp_path)


def test_reserved_tokens_added_to_a_foreign_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["some text here"] * 3, trainers.BpeTrainer(
        vocab_size=270, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    foreign = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>")  # like a base LLM: no pad
    n = len(foreign)
    foreign.save_pretrained(str(tmp_path))
    tok, added = load_tokenizer(tmp_path)
    assert added == 3 and len(tok) == n + 3
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>"
    assert tok("<scene><ground>", add_special_tokens=False)["input_ids"] == [n + 1, n + 2]
    assert ensure_special_tokens(tok) == 0
