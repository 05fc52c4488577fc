"""Exceptions the library raises for bad input; the CLI turns each into one line on stderr."""


class VidLLMError(Exception):
    """Base class: a problem with the user's input, files or checkpoints (not a bug)."""


class VideoError(VidLLMError):
    """A video (or image folder) is missing, empty, truncated or not decodable."""


class CheckpointError(VidLLMError):
    """A checkpoint or model directory is missing, malformed or does not match its config."""


class ConfigError(VidLLMError):
    """A configuration file or value is invalid."""


class DataError(VidLLMError):
    """Annotations, scenes or predictions are malformed."""


# torch.load(weights_only=True) refused a pickle (pytorch_model.bin) that holds more than tensors: nothing ran.
PICKLE_REFUSED = ("a pickled weights file (pytorch_model.bin) holds objects other than tensors and was not loaded "
                  "(only plain weights are read); convert the checkpoint to safetensors")


class RunLockedError(VidLLMError):
    """Another process holds the run folder's lock (two runs must not write one folder)."""


class VidLLMWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as one `warning:` line)."""
