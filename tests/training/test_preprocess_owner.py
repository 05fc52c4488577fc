"""The preprocessing mode has one owner, the model's `input` config: Stage-2 data is preprocessed with it, and a recipe
asking for another mode is refused with one line instead of training a model that inference would feed differently."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vidllm_core.errors import ConfigError
from vidllm_core.training.recipe import Recipe
from vidllm_core.training.stage2 import build_dataset


def test_training_preprocessing_follows_the_model_input_config(scenes_dir) -> None:  # noqa: ANN001
    recipe = Recipe()
    recipe = replace(recipe, data=replace(recipe.data, scenes=str(scenes_dir), frames=2))
    config = recipe.model_config()
    assert build_dataset(recipe, config, language=False).mode == config.input.mode == recipe.data.mode
    crop = replace(recipe, data=replace(recipe.data, mode="crop"))
    with pytest.raises(ConfigError, match="differs from the model's input.mode 'short_side'"):
        build_dataset(crop, config, language=False)
    cropped = replace(config, input=replace(config.input, mode="crop"))   # model.overrides.input.mode = crop
    assert build_dataset(crop, cropped, language=False).mode == "crop"
