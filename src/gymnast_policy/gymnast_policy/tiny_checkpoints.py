"""Tiny random-weight Hugging Face vision-language checkpoints, built offline.

Tests and benchmarks exercise the real loading code (AutoModelForImageTextToText,
AutoProcessor) on these, since no hub download works here.
"""

from __future__ import annotations


def local_tokenizer(extra_special=()):
    """A byte-level BPE trained here (no hub), wrapped so AutoTokenizer reloads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from gymnast_policy.hf_vla import PROMPT

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tasks = ("open the drawer", "press the button", "push the puck")
    corpus = [PROMPT.format(task=t) + " Reason in 2-3 sentences. Final Score: 1 0" for t in tasks] * 10
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>", *extra_special]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", additional_special_tokens=["<image>", *extra_special])


def save_tiny_paligemma(folder) -> None:
    import torch
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

    tokenizer = local_tokenizer()
    config = PaliGemmaConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=32),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16, vocab_size=len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), projection_dim=32, hidden_size=32)
    torch.manual_seed(0)
    PaliGemmaForConditionalGeneration(config).save_pretrained(folder)
    PaliGemmaProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}, image_seq_length=16),
                       tokenizer=tokenizer).save_pretrained(folder)


TINY_VLMS = {"paligemma": save_tiny_paligemma}
