"""The Hugging Face backbone adapter on tiny random-weight checkpoints that the test saves itself."""

import numpy as np
import pytest
import torch

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, NormStats
from gymnast_policy.checkpoint import load_policy, save_policy
from gymnast_policy.hf_vla import PROMPT, HFVLAPolicy

SPEC = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(np.random.default_rng(0).uniform(-0.05, 0.05, (100, 7))))


def local_tokenizer(extra_special=()):
    """A byte-level BPE trained here (no hub), wrapped so AutoTokenizer reloads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [PROMPT.format(task=t) for t in ("open the drawer", "press the button", "push the puck")] * 10
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>", *extra_special]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", additional_special_tokens=["<image>", *extra_special])


def save_tiny_paligemma(folder):
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


BACKBONES = {"paligemma": save_tiny_paligemma}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_tiny_backbone_runs_forward_and_backward(name, tmp_path):
    BACKBONES[name](tmp_path / name)
    policy = HFVLAPolicy(tmp_path / name, SPEC, chunk_size=2, image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    instructions = ["open the drawer", "press the button"]
    logits = policy.logits(torch.from_numpy(frames), instructions)
    assert logits.shape == (2, 14, 256)
    chunk = policy.act(frames, instructions, temperature=1.0)
    assert chunk.actions.shape == (2, 2, 7)
    loss = -policy.logprob(frames, instructions, chunk.tokens).mean()
    loss.backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # Save/load keeps weights and statistics: identical greedy actions.
    save_policy(policy, tmp_path / "ckpt")
    reloaded = load_policy(tmp_path / "ckpt")
    np.testing.assert_array_equal(policy.act(frames, instructions, 0).actions, reloaded.act(frames, instructions, 0).actions)


def test_missing_hf_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        HFVLAPolicy(tmp_path / "nothing", SPEC)
