"""The VLA policy: action tokenizer, compact and Hugging Face backbones, SFT, GRPO and the policy node."""
