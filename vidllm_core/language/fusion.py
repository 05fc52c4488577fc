"""3D tokens into a causal LLM through `inputs_embeds` at the `<scene>` placeholder (Vid-LLM Sec. 3.3; losses Sec. 3.4, Eq. 8).

`SceneLanguageModel` owns the projector (MLP C -> D, 2 layers, GELU, as LLaVA's `mlp2x_gelu`), the causal LM (any
Hugging Face `AutoModelForCausalLM`, never remote code) and the grounding head. The one `<scene>` placeholder of a
prompt is replaced by the item's M_b real pooled tokens (padding tokens are dropped, so items have different
lengths); sequences are right-padded for training and grounding, left-padded for generation.

Named dimensions: B batch, N raw 3D tokens, M pooled tokens, C token width, D LLM hidden size, L sequence, V vocab.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from vidllm_core.config import LanguageConfig
from vidllm_core.errors import PICKLE_REFUSED, CheckpointError, ConfigError, DataError
from vidllm_core.heads.grounding import GroundingHead, GroundingOutput, select_boxes
from vidllm_core.language.prompts import TaskPrompt, chat_text
from vidllm_core.language.tokenizer import GROUND, SCENE, ensure_special_tokens, load_tokenizer

__all__ = ["SceneLanguageModel", "SceneBatch", "PromptLike"]

PromptLike = str | TaskPrompt


@dataclass
class SceneBatch:
    """Model inputs built from prompts + scene tokens.

    Attributes:
        inputs_embeds: [B, L, D]. attention_mask: [B, L] int64. input_ids: [B, L] (the `<scene>` id at scene
        positions, the pad id at padding). labels: [B, L] (IGNORE_INDEX except answer tokens; None without targets).
        ground_index: [B] position of the first `<ground>` input token of the answer, -1 when absent.
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    input_ids: Tensor
    labels: Tensor | None
    ground_index: Tensor


class SceneLanguageModel(nn.Module):
    """Projector + causal LLM + grounding head.

    Args:
        llm: a Hugging Face causal LM. tokenizer: its tokenizer (reserved tokens are added if missing and the
            embeddings resized to `len(tokenizer)`). token_dim: C, width of the 3D patch tokens.
        num_grounding_queries, max_question_tokens: from `LanguageConfig` (its pooling settings are read by
            `language.pooling.pool_scene_tokens`).
        grounding_dim: width of the grounding head. system_prompt: optional system text for the chat template.
    """

    def __init__(self, llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, token_dim: int, *,
                 num_grounding_queries: int = 16, max_question_tokens: int = 256, grounding_dim: int = 128,
                 system_prompt: str | None = None) -> None:
        super().__init__()
        ensure_special_tokens(tokenizer)
        if tokenizer.eos_token_id is None:
            raise CheckpointError("the tokenizer has no end-of-sequence token")
        if llm.get_input_embeddings().num_embeddings < len(tokenizer):
            llm.resize_token_embeddings(len(tokenizer))
        self.tokenizer = tokenizer
        self.max_question_tokens = int(max_question_tokens)
        self.system_prompt = system_prompt
        hidden = int(llm.config.get_text_config().hidden_size)
        self.projector = nn.Sequential(nn.Linear(token_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.llm = llm
        heads = 4 if grounding_dim % 4 == 0 else 1
        self.grounding_head = GroundingHead(hidden, token_dim, dim=grounding_dim, num_queries=num_grounding_queries,
                                            num_heads=heads)
        self.scene_id = int(tokenizer.convert_tokens_to_ids(SCENE))
        self.ground_id = int(tokenizer.convert_tokens_to_ids(GROUND))
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id)

    # ---- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: LanguageConfig, tokenizer: PreTrainedTokenizerBase, token_dim: int,
                    **kwargs: object) -> "SceneLanguageModel":
        """A randomly initialised LLM from `cfg.llm` (a Hugging Face config dict with "model_type")."""
        ensure_special_tokens(tokenizer)
        llm_dict = dict(cfg.llm)
        if not llm_dict.get("model_type"):
            raise ConfigError("language.llm must be a Hugging Face config dict with a 'model_type'")
        for key, value in (("pad_token_id", tokenizer.pad_token_id), ("eos_token_id", tokenizer.eos_token_id),
                           ("bos_token_id", tokenizer.bos_token_id)):
            llm_dict.setdefault(key, value)
        try:
            llm_cfg = AutoConfig.for_model(**llm_dict)
            llm = AutoModelForCausalLM.from_config(llm_cfg, trust_remote_code=False)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"language.llm is not a usable causal-LM config: {_first_line(exc)}") from None
        return cls(llm, tokenizer, token_dim, **{**language_kwargs(cfg), **kwargs})  # type: ignore[arg-type]

    @classmethod
    def from_llm_dir(cls, path: str | Path, cfg: LanguageConfig, token_dim: int,
                     dtype: torch.dtype | None = None, **kwargs: object) -> "SceneLanguageModel":
        """A pretrained LLM + tokenizer from a local Hugging Face directory (`paper` preset); fresh projector/head."""
        tokenizer, _ = load_tokenizer(path)
        try:
            llm = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, trust_remote_code=False,
                                                       dtype=dtype)
        except pickle.UnpicklingError:
            raise CheckpointError(f"refused the LLM in {path}: {PICKLE_REFUSED}") from None
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
            raise CheckpointError(f"cannot load the LLM in {path}: {_first_line(exc)}") from None
        return cls(llm, tokenizer, token_dim, **{**language_kwargs(cfg), **kwargs})  # type: ignore[arg-type]

    def llm_config_dict(self) -> dict:
        """The LLM's Hugging Face config as a plain dict (what `LanguageConfig.llm` stores)."""
        return self.llm.config.to_dict()

    def _embed_dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    def build_batch(self, tokens: Tensor, mask: Tensor, prompts: Sequence[PromptLike],
                    targets: Sequence[str | None] | None = None, *, padding_side: str = "right",
                    add_eos: bool = True) -> SceneBatch:
        """Tokenise chat-wrapped prompts (+ targets), expand `<scene>` to the item's real tokens, pad.

        Args:
            tokens: [B, M, C] pooled 3D tokens (projected here). mask: [B, M] bool, True = real token.
            prompts: B user turns (str with at most one `<scene>`, or `TaskPrompt`).
            targets: B answer texts (None entries / None: no answer part). add_eos: append eos to targets.
        """
        b = len(prompts)
        if tokens.dim() != 3 or tokens.shape[0] != b or mask.shape != tokens.shape[:2]:
            raise ValueError(f"tokens [B, M, C] and mask [B, M] for {b} prompts expected, got "
                             f"{tuple(tokens.shape)}, {tuple(mask.shape)}")
        if targets is not None and len(targets) != b:
            raise ValueError(f"{len(targets)} targets for {b} prompts")
        dev = tokens.device
        mask = mask.to(torch.bool)
        scene = self.projector(tokens.to(self.projector[0].weight.dtype)).to(self._embed_dtype())  # [B, M, D]
        rows: list[list[int]] = []
        prompt_lens: list[int] = []
        scene_starts: list[int] = []
        for i, p in enumerate(prompts):
            text = p.prompt if isinstance(p, TaskPrompt) else p
            ids = self.tokenizer(chat_text(self.tokenizer, text, self.system_prompt),
                                 add_special_tokens=False)["input_ids"]
            where = [k for k, t in enumerate(ids) if t == self.scene_id]
            if len(where) > 1:
                raise DataError(f"prompt {i} has {len(where)} {SCENE} placeholders; at most one is allowed")
            m_i = int(mask[i].sum())
            if where:
                k = where[0]
                ids = ids[:k] + [self.scene_id] * m_i + ids[k + 1:]
                scene_starts.append(k)
            else:
                scene_starts.append(-1)
            prompt_lens.append(len(ids))
            tgt = targets[i] if targets is not None else None
            if tgt is not None:
                ids = ids + self.tokenizer(tgt, add_special_tokens=False)["input_ids"]
                ids = ids + ([self.eos_id] if add_eos else [])
            rows.append(ids)
        length = max(len(r) for r in rows)
        context = getattr(self.llm.config.get_text_config(), "max_position_embeddings", None)
        if context is not None and length > int(context):
            raise DataError(f"prompt + scene tokens ({length}) exceed the LLM's context of {context} tokens; "
                            "lower language.token_budget or the question length")
        input_ids = torch.full((b, length), self.pad_id, dtype=torch.long, device=dev)
        attention = torch.zeros(b, length, dtype=torch.long, device=dev)
        is_scene = torch.zeros(b, length, dtype=torch.bool, device=dev)
        offsets: list[int] = []
        for i, r in enumerate(rows):
            off = length - len(r) if padding_side == "left" else 0
            offsets.append(off)
            input_ids[i, off:off + len(r)] = torch.tensor(r, dtype=torch.long, device=dev)
            attention[i, off:off + len(r)] = 1
            if scene_starts[i] >= 0:
                m_i = int(mask[i].sum())
                is_scene[i, off + scene_starts[i]: off + scene_starts[i] + m_i] = True
        embeds = self.llm.get_input_embeddings()(input_ids)
        has_slot = torch.tensor([s >= 0 for s in scene_starts], dtype=torch.bool, device=dev)
        real_scene = scene[mask & has_slot[:, None]]  # [sum M_b, D], (item, token) order = is_scene's row-major order
        if real_scene.shape[0]:
            slot = torch.cumsum(is_scene.reshape(-1).long(), 0).reshape(b, length) - 1
            gathered = real_scene[slot.clamp(min=0)]
            embeds = torch.where(is_scene[..., None], gathered, embeds)
        labels = None
        if targets is not None:
            from vidllm_core.losses.language import IGNORE_INDEX, mask_prompt_labels  # training only (cold start)

            starts = torch.tensor([o + n for o, n in zip(offsets, prompt_lens)], device=dev)
            labels = mask_prompt_labels(input_ids, starts, self.pad_id, attention_mask=attention)
            if padding_side == "left":  # mask_prompt_labels masks [0, start): the left padding is in there too
                labels[attention == 0] = IGNORE_INDEX
        ground_index = torch.full((b,), -1, dtype=torch.long, device=dev)
        for i, r in enumerate(rows):
            hits = [k for k in range(prompt_lens[i], len(r)) if r[k] == self.ground_id]
            if hits:
                ground_index[i] = offsets[i] + hits[0]
        return SceneBatch(embeds, attention, input_ids, labels, ground_index)

    # ---- training ----------------------------------------------------------------------------------------------
    def loss_terms(self, tokens: Tensor, xyz: Tensor, mask: Tensor, prompts: Sequence[PromptLike],
                   targets: Sequence[str] | None = None, gt_boxes: Sequence[Tensor | None] | None = None,
                   proposals: Sequence[Tensor] | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Attached Stage-2 terms ("answer_ce", and "grounding" when a target holds `<ground>`) + detached sub-parts.

        `answer_ce` is Eq. 8's instruction-following cross-entropy on the answer tokens only (prompt, scene and
        padding positions are IGNORE_INDEX). For grounding items the LLM's last hidden state at the `<ground>`
        input token queries the grounding head; `grounding_loss` (Hungarian matching, L1 + IoU + objectness BCE)
        compares its Q boxes with `gt_boxes[b]` ([G_b, 6], G_b may be 0). With `proposals` (B tensors [P_b, 6]),
        `losses.grounding.proposal_loss` is added (cross-entropy towards each GT box's best-IoU proposal).
        """
        from vidllm_core.losses.grounding import grounding_loss, proposal_loss  # training only: keeps scipy and
        from vidllm_core.losses.language import answer_cross_entropy  # the losses out of `vidllm ask` (issue 16)

        targets = _targets(prompts, targets)
        if any(t is None for t in targets):
            raise ValueError("every training prompt needs a target")
        batch = self.build_batch(tokens, mask, prompts, targets)
        is_ground = batch.ground_index >= 0
        out = self.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                       output_hidden_states=bool(is_ground.any()), use_cache=False)
        terms = {"answer_ce": answer_cross_entropy(out.logits, batch.labels)}
        parts: dict[str, Tensor] = {}
        tasks = [getattr(p, "task", None) for p in prompts]
        for name in sorted({t for t in tasks if t}):  # logged per task (the answer cross-entropy of its items)
            rows = [i for i, t in enumerate(tasks) if t == name]
            parts[f"ce_{name}"] = answer_cross_entropy(out.logits[rows].detach(), batch.labels[rows])
        if bool(is_ground.any()):
            rows = torch.nonzero(is_ground).flatten()
            if gt_boxes is None or len(gt_boxes) != len(prompts):
                raise ValueError("grounding targets need gt_boxes: one [G, 6] tensor per item")
            gts = []
            for r in rows.tolist():
                if gt_boxes[r] is None:
                    raise ValueError(f"item {r} has a {GROUND} target but no gt_boxes")
                gts.append(gt_boxes[r].reshape(-1, 6))
            state = out.hidden_states[-1][rows, batch.ground_index[rows]]  # [G, D]
            head = self.grounding_head(state, tokens[rows], xyz[rows], mask[rows])
            g_total, g_parts = grounding_loss(head.boxes, head.logits, gts)
            parts.update({f"ground_{k}": v for k, v in g_parts.items()})
            if proposals is not None:
                props = [proposals[r] for r in rows.tolist()]
                logits = self.grounding_head.score_proposals(state, tokens[rows], xyz[rows], mask[rows], props)
                p_loss, p_parts = proposal_loss(logits, props, gts)
                parts["ground_proposal"] = p_loss.detach()
                parts.update({f"ground_proposal_{k}": v for k, v in p_parts.items()})
                g_total = g_total + p_loss
            terms["grounding"] = g_total
        return terms, parts

    def loss(self, tokens: Tensor, xyz: Tensor, mask: Tensor, prompts: Sequence[PromptLike],
             targets: Sequence[str] | None = None, gt_boxes: Sequence[Tensor | None] | None = None,
             proposals: Sequence[Tensor] | None = None,
             weights: Mapping[str, float] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(total, parts): weighted sum of `loss_terms` (weights default 1) and every term/sub-part detached."""
        terms, parts = self.loss_terms(tokens, xyz, mask, prompts, targets, gt_boxes, proposals)
        weights = weights or {}
        total = sum(float(weights.get(k, 1.0)) * v for k, v in terms.items())
        logged = {k: v.detach() for k, v in terms.items()} | parts
        return total, logged  # type: ignore[return-value]

    forward = loss

    # ---- inference ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, tokens: Tensor, xyz: Tensor, mask: Tensor, prompts: Sequence[PromptLike],
                 max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0, top_p: float = 1.0) -> list[str]:
        """Answer each prompt; greedy when temperature == 0, else sampling, reproducible with `seed`.

        `xyz` is unused by the text path (positions are inside the tokens, Eq. 4); it is taken for symmetry.
        """
        del xyz
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        batch = self.build_batch(tokens, mask, prompts, None, padding_side="left")
        sample = temperature > 0
        eos = {self.eos_id}
        gen_eos = getattr(self.llm.generation_config, "eos_token_id", None)
        eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        gen_cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample, pad_token_id=self.pad_id,
                                   eos_token_id=sorted(eos), bos_token_id=self.tokenizer.bos_token_id,
                                   **({"temperature": float(temperature), "top_p": float(top_p), "top_k": 0}
                                      if sample else {}))
        dev = batch.inputs_embeds.device
        fork = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        inputs = (self._shared_prefix_inputs(batch) if not sample else None) or \
            {"inputs_embeds": batch.inputs_embeds, "attention_mask": batch.attention_mask}
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seed)
            out = self.llm.generate(**inputs, generation_config=gen_cfg)
        # from inputs_embeds (+ a prefix cache), generate returns only the new tokens
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _shared_prefix_inputs(self, batch: SceneBatch) -> dict[str, object] | None:
        """`generate` inputs for a batch whose rows start with the same embeddings (the questions of one scene: chat
        prefix + its 3D tokens): that prefix runs through the LLM once and its key/value cache is shared by every
        row; each row's own tokens follow it after the row's padding (positions come from the attention mask, so
        they are those of the row alone). Greedy answers equal one prompt at a time
        (tests/language/test_batched_answers.py). None when fewer than 2 rows or no common prefix."""
        b = batch.inputs_embeds.shape[0]
        if b < 2:
            return None
        real = [batch.attention_mask[i].bool() for i in range(b)]
        embeds = [batch.inputs_embeds[i][real[i]] for i in range(b)]
        ids = [batch.input_ids[i][real[i]] for i in range(b)]
        shortest = min(len(x) for x in ids) - 1   # every row keeps >= 1 token of its own to generate from
        same = torch.ones(shortest, dtype=torch.bool, device=batch.input_ids.device)
        for i in range(1, b):
            same &= (ids[i][:shortest] == ids[0][:shortest]) & (embeds[i][:shortest] == embeds[0][:shortest]).all(-1)
        p = int(same.long().cumprod(0).sum()) if shortest > 0 else 0
        if p == 0:
            return None
        out = self.llm(inputs_embeds=embeds[0][None, :p], use_cache=True)
        cache = out["cache"] if "cache" in out.keys() else out["past_key_values"]   # transformers 5 / 4 names
        if not hasattr(cache, "batch_repeat_interleave"):   # an LLM whose cache cannot be copied per row: the
            return None                                      # plain batch (same answers, the prefix computed B times)
        cache.batch_repeat_interleave(b)
        rest = max(len(x) for x in ids) - p
        emb = batch.inputs_embeds.new_zeros(b, p + rest, batch.inputs_embeds.shape[-1])
        att = batch.attention_mask.new_zeros(b, p + rest)
        for i in range(b):
            n = len(ids[i]) - p
            emb[i, :p], emb[i, p + rest - n:] = embeds[i][:p], embeds[i][p:]
            att[i, :p], att[i, p + rest - n:] = 1, 1
        key = "cache" if "cache" in inspect.signature(self.llm.forward).parameters else "past_key_values"
        return {"inputs_embeds": emb, "attention_mask": att, key: cache}

    @torch.no_grad()
    def ground_outputs(self, tokens: Tensor, xyz: Tensor, mask: Tensor,
                       prompts: Sequence[PromptLike]) -> tuple[GroundingOutput, Tensor]:
        """Head outputs for grounding prompts, `<ground>` forced as the answer: (GroundingOutput, state [B, D])."""
        batch = self.build_batch(tokens, mask, prompts, [GROUND] * len(prompts), add_eos=False)
        out = self.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                       output_hidden_states=True, use_cache=False)
        rows = torch.arange(len(prompts), device=batch.ground_index.device)
        state = out.hidden_states[-1][rows, batch.ground_index]
        return self.grounding_head(state, tokens, xyz, mask), state

    @torch.no_grad()
    def ground(self, tokens: Tensor, xyz: Tensor, mask: Tensor, prompts: Sequence[PromptLike],
               proposals: Sequence[Tensor | None] | None = None, multiple: bool | Sequence[bool] | None = None,
               threshold: float = 0.5) -> list[tuple[Tensor, Tensor]]:
        """Boxes for each grounding prompt: B pairs (boxes [K, 6] metres world frame, scores [K] in [0, 1]).

        Without proposals the head's Q boxes are the candidates, scored by sigmoid(objectness); with proposals
        ([P_b, 6] per item) the proposals are. `multiple` (default: True for Multi3DRefer `TaskPrompt`s) returns
        every candidate with score >= threshold (maybe none), otherwise the single best one.
        """
        b = len(prompts)
        if multiple is None:
            flags = [isinstance(p, TaskPrompt) and p.task == "multi3drefer" for p in prompts]
        elif isinstance(multiple, bool):
            flags = [multiple] * b
        else:
            flags = list(multiple)
        if proposals is not None and len(proposals) != b:
            raise ValueError(f"{len(proposals)} proposal sets for {b} prompts")
        head, state = self.ground_outputs(tokens, xyz, mask, prompts)
        results: list[tuple[Tensor, Tensor]] = []
        for i in range(b):
            props = proposals[i] if proposals is not None else None
            if props is not None:
                props = props.to(device=tokens.device, dtype=torch.float32).reshape(-1, 6)
                logits = self.grounding_head.score_proposals(state[i:i + 1], tokens[i:i + 1], xyz[i:i + 1],
                                                             mask[i:i + 1], [props])[0]
                cand, scores = props, torch.sigmoid(logits.float())
            else:
                cand, scores = head.boxes[i].float(), torch.sigmoid(head.logits[i].float())
            results.append(select_boxes(cand, scores, flags[i], threshold))
        return results


def _targets(prompts: Sequence[PromptLike], targets: Sequence[str | None] | None) -> list[str | None]:
    if targets is not None:
        return list(targets)
    return [p.target if isinstance(p, TaskPrompt) else None for p in prompts]


def language_kwargs(cfg: LanguageConfig) -> dict[str, object]:
    """`SceneLanguageModel` keyword arguments held by a `LanguageConfig` (everything but the LLM itself)."""
    return {"num_grounding_queries": cfg.num_grounding_queries, "max_question_tokens": cfg.max_question_tokens,
            "grounding_dim": cfg.grounding_dim, "system_prompt": cfg.system_prompt}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
