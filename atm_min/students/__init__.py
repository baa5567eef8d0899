"""Students other than the GPT-2 one in atm_min/model.py, each in its own file with the same interface
(forward, hidden_states, generate, get_input_embeddings): llama.py, the Llama family (Llama, SmolLM2, Qwen2, Qwen3)."""
