"""Hugging Face logits of left-padded prompts for the sliding-window fixtures (Mistral window 4, Gemma-2).

Writes src/test/resources/fixtures/families/{mistral,gemma2}/reference_logits_padded.json: 8 prompts made from the
first 8 of the folder's reference_logits.json (BOS, then the last L-1 tokens of the 15-token prompt, L = 15, 13, 11,
9, 7, 15, 12, 10), left-padded to 15 with the pad id, run through the folder as from_pretrained(dtype=float32,
attn_implementation="eager") loads it, with attention_mask and position_ids = cumsum(mask) - 1 clamped at 0 (the
position of every real token counts real tokens only, as generate() and TransformerLens number them). Records the
padded ids, the mask and the full logits at the last position of each prompt.

Run from the repository root with the virtualenv of make_family_fixtures.py (src/test/scripts/README.md):
    /work/venvs/folders/bin/python src/test/scripts/padded_window_reference.py
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

LENGTHS = [15, 13, 11, 9, 7, 15, 12, 10]


def main():
    torch.set_num_threads(2)
    base = os.path.join("src", "test", "resources", "fixtures", "families")
    for family in ["mistral", "gemma2"]:
        folder = os.path.join(base, family, "model")
        ref = json.load(open(os.path.join(base, family, "reference_logits.json")))
        cfg = json.load(open(os.path.join(folder, "config.json")))
        pad = cfg.get("pad_token_id")
        if pad is None:
            pad = 0
        seq = len(ref["prompts"][0]["ids"])
        ids, mask = [], []
        for i, length in enumerate(LENGTHS):
            full = ref["prompts"][i]["ids"]
            real = full[:1] + full[seq - (length - 1):]
            ids.append([pad] * (seq - length) + real)
            mask.append([0] * (seq - length) + [1] * length)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        input_ids = torch.tensor(ids)
        attention_mask = torch.tensor(mask)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        last = logits[:, -1, :]
        out = {"header": {"script": "src/test/scripts/padded_window_reference.py", "python": sys.version.split()[0],
                          "torch": torch.__version__, "transformers": transformers.__version__,
                          "folder": f"families/{family}/model", "sliding_window": cfg.get("sliding_window"),
                          "pad_id": pad, "lengths": LENGTHS,
                          "position_ids": "cumsum(attention_mask) - 1, clamped at 0",
                          "attn_implementation": "eager", "compute_dtype": "float32"},
               "ids": ids, "attention_mask": mask, "last_logits": last.tolist()}
        path = os.path.join(base, family, "reference_logits_padded.json")
        with open(path, "w") as f:
            json.dump(out, f)
            f.write("\n")
        print(path, "written; last-position logits", tuple(last.shape))


if __name__ == "__main__":
    main()
