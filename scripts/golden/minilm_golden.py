"""Golden sentence vectors of all-MiniLM-L6-v2 from the reference implementation.

Runs HF transformers' BertModel on the weights that scripts/fetch_models.sh puts in
models/all-MiniLM-L6-v2/, pools the way sentence-transformers does (mean over the attention
mask, then L2 normalisation) and writes tests/golden/minilm_golden.json.

    .venv-ref/bin/python scripts/golden/minilm_golden.py
"""
import json
import os

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
SENTENCES = [
    "A man is riding a bicycle down the street.",
    "Someone cycles along the road.",
    "The stock market fell sharply today.",
    "Share prices dropped on Wall Street.",
    "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them",
]

tok = AutoTokenizer.from_pretrained(MODEL)
model = AutoModel.from_pretrained(MODEL).eval()
with torch.no_grad():
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    unit = torch.nn.functional.normalize(pooled, dim=-1)
out = {
    "description": "all-MiniLM-L6-v2 sentence vectors (mean pooling over the mask, L2-normalised) from HF transformers",
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    "sentences": [{"text": s, "input_ids": enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist(), "embedding": [float(x) for x in unit[i]]} for i, s in enumerate(SENTENCES)],
}
with open(os.path.join(ROOT, "tests", "golden", "minilm_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote", len(SENTENCES), "vectors")
