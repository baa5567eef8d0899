"""atm-min: chain-of-thought distillation into a GPT student with pre-, post- and adaptive thinking."""
