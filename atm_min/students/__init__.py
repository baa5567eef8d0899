"""Students other than the GPT-2 one in atm_min/model.py, each in its own file with the same interface
(forward, hidden_states, generate, get_input_embeddings): llama.py, the Llama family (Llama, SmolLM2, Qwen2, Qwen3)."""

from ..model import GPT, GPTConfig
from .llama import Llama, LlamaConfig


def student_from_args(model_args: dict):
    """The student a checkpoint's model_args (its config's fields) describe: model_args["arch"] names the
    class; checkpoints from before there was a choice have no "arch" and hold a GPT-2 student."""
    if model_args.get("arch") == "llama":
        return Llama(LlamaConfig(**model_args))
    return GPT(GPTConfig(**model_args))
