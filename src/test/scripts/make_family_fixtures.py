"""Builds the Qwen2, Mistral and Gemma-2 reference fixtures under src/test/resources/fixtures/families/.

Each fixture is a tiny random Hugging Face model (2 layers, d_model 64, 4 query / 2 key-value heads, d_head 16)
saved in bf16 the way `save_pretrained` writes it, with a small byte-level BPE tokenizer cut out of GPT-2's (only
the merges the IOI prompts need, so every prompt splits into exactly the same pieces as with GPT-2, and all 256
byte tokens, so any text still encodes), plus the eager-attention logits of Hugging Face `transformers` on the 32
prompts of datasets/ioi-32.json with the folder's BOS in front. See src/test/scripts/README.md for how to run it.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import platform
import shutil
import sys

import numpy
import safetensors
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer
from transformers import (Gemma2Config, Gemma2ForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Strings whose ids the Java tests compare with these (Python `tokenizers`) ones: plain words, a special token in
# the text, characters outside the cut vocabulary (byte fallback: they come out as byte tokens), digits, newlines.
CHECK_STRINGS = [
    "When Mary and John went to the store, John gave a drink to",
    " Mary",
    "Zoë ate 😀 at 12345 o'clock.\n\nNew line",
    "  two  spaces\tand a tab",
]

# Per family: the tokenizer's special tokens (in id order), where they go (before or after the BPE vocabulary), its
# pre-tokenizer regex, whether the tokenizer.json adds BOS by itself (TemplateProcessing) and the tokenizer_config.
FAMILIES = {
    "qwen2": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], specials_first=False, regex=QWEN2_REGEX,
        template_bos=None,
        tokenizer_config={"add_bos_token": False, "add_prefix_space": False, "bos_token": None,
                          "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": None,
                          "errors": "replace", "model_max_length": 64, "tokenizer_class": "Qwen2Tokenizer"}),
    "mistral": dict(
        specials=["<unk>", "<s>", "</s>"], specials_first=True, regex=LLAMA3_REGEX, template_bos="<s>",
        tokenizer_config={"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                          "unk_token": "<unk>", "pad_token": None, "model_max_length": 64,
                          "tokenizer_class": "LlamaTokenizerFast"}),
    "gemma2": dict(
        specials=["<pad>", "<eos>", "<bos>", "<unk>"], specials_first=True, regex=LLAMA3_REGEX, template_bos="<bos>",
        tokenizer_config={"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>", "eos_token": "<eos>",
                          "pad_token": "<pad>", "unk_token": "<unk>", "model_max_length": 64,
                          "tokenizer_class": "GemmaTokenizerFast"}),
    # tokenizer only (no model): Llama 3's layout, BOS from the post-processor alone (no add_bos_token)
    "llama3": dict(
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], specials_first=False, regex=LLAMA3_REGEX,
        template_bos="<|begin_of_text|>",
        tokenizer_config={"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                          "model_max_length": 64, "tokenizer_class": "PreTrainedTokenizerFast"}),
}


def ioi_texts(dataset):
    texts = []
    for p in dataset["prompts"]:
        texts += [p["clean"], p["corrupt"], *p["answers"], *p["wrong_answers"]]
    return texts


def cut_tokenizer(gpt2_json, texts, family):
    """A byte-level BPE tokenizer.json with only the GPT-2 merges that `texts` use (see the module doc)."""
    spec = FAMILIES[family]
    gpt2 = Tokenizer.from_str(json.dumps(gpt2_json))
    vocab = gpt2_json["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in gpt2_json["model"]["merges"]]
    made_by = {a + b: (a, b) for a, b in merges}
    keep = set(t for t, i in vocab.items() if i < 256)  # the 256 byte tokens
    stack = [t for text in texts for t in gpt2.encode(text, add_special_tokens=False).tokens]
    while stack:
        t = stack.pop()
        if t in keep:
            continue
        keep.add(t)
        stack.extend(made_by[t])
    bpe_tokens = sorted(keep, key=lambda t: vocab[t])
    n_special = len(spec["specials"])
    offset = n_special if spec["specials_first"] else 0
    new_vocab = {t: offset + i for i, t in enumerate(bpe_tokens)}
    special_ids = {s: (i if spec["specials_first"] else len(bpe_tokens) + i) for i, s in enumerate(spec["specials"])}
    if spec["specials_first"]:  # as in SentencePiece conversions (Mistral, Gemma): the model's vocab holds them too
        new_vocab = {**{s: special_ids[s] for s in spec["specials"]}, **new_vocab}
    new_merges = [f"{a} {b}" for a, b in merges if a + b in keep and a in keep and b in keep]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    post = dict(byte_level)
    if spec["template_bos"]:
        bos = spec["template_bos"]
        post = {"type": "Sequence", "processors": [dict(byte_level), {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [special_ids[bos]], "tokens": [bos]}}}]}
    tok_json = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": special_ids[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for s in spec["specials"]],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": spec["regex"]}, "behavior": "Isolated", "invert": False},
            dict(byte_level)]},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": new_vocab, "merges": new_merges},
    }
    cut = Tokenizer.from_str(json.dumps(tok_json))
    for s, i in special_ids.items():
        assert cut.encode(s, add_special_tokens=False).ids == [i], (family, s, i)
    for text in texts:  # the same pieces as GPT-2, for every string the fixtures use
        a = gpt2.encode(text, add_special_tokens=False).tokens
        b = cut.encode(text, add_special_tokens=False).tokens
        assert a == b, (family, text, a, b)
    return tok_json, cut, special_ids


def bos_of(config):
    """The BOS string the Java loader prepends: bos_token, else eos_token (as TransformerLens does)."""
    return config.get("bos_token") or config.get("eos_token")


def init_weights(model, family):
    """HF init (seed 0, initializer_range 0.1), then biases := randn*0.1 and norm gains := 1 + randn*0.2 with a
    generator seeded 1234 walking named_parameters() in order (Gemma-2 stores a norm's gain as 1 + weight, so its
    weight := randn*0.2), then every value rounded to bfloat16."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "norm" in name and name.endswith(".weight"):
                r = torch.randn(p.shape, generator=g) * 0.2
                p.copy_(r if family == "gemma2" else 1 + r)
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def build_model(family, vocab_size, special_ids, tok_config):
    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
                  initializer_range=0.1, rms_norm_eps=1e-6, attention_dropout=0.0,
                  bos_token_id=special_ids.get(bos_of(tok_config)), eos_token_id=special_ids[tok_config["eos_token"]],
                  pad_token_id=special_ids.get(tok_config.get("pad_token")))
    if family == "qwen2":
        cfg = Qwen2Config(**common, hidden_act="silu", tie_word_embeddings=True,
                          rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, use_sliding_window=False)
        cls = Qwen2ForCausalLM
    elif family == "mistral":
        cfg = MistralConfig(**common, hidden_act="silu", tie_word_embeddings=False, sliding_window=4,
                            rope_parameters={"rope_theta": 10000.0, "rope_type": "default"})
        cls = MistralForCausalLM
    elif family == "gemma2":
        cfg = Gemma2Config(**common, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                           rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, sliding_window=4,
                           layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=24,
                           attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
        cls = Gemma2ForCausalLM
    else:
        raise ValueError(family)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls(cfg).to(torch.float32).eval()
    init_weights(model, family)
    return model


def reload(folder, expected):
    """The folder as Hugging Face loads it in float32, checked to hold exactly the parameters of `expected`."""
    cls = type(expected)
    model = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    mine = dict(expected.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, mine[name]), (folder, name)
    return model


def reference(model, cut, bos, dataset, env, note):
    prompts = []
    full = []
    with torch.no_grad():
        for i, p in enumerate(dataset["prompts"]):
            ids = cut.encode(bos + p["clean"], add_special_tokens=False).ids
            answer = cut.encode(p["answers"][0], add_special_tokens=False).ids
            wrong = cut.encode(p["wrong_answers"][0], add_special_tokens=False).ids
            assert len(answer) == 1 and len(wrong) == 1, p
            logits = model(torch.tensor([ids])).logits[0].to(torch.float64)
            last = logits[-1]
            prompts.append({"index": i, "text": p["clean"], "ids": ids, "answer_id": answer[0],
                            "wrong_answer_id": wrong[0], "answer_logit": last[answer[0]].item(),
                            "wrong_answer_logit": last[wrong[0]].item(),
                            "logsumexp": torch.logsumexp(last, 0).item(), "argmax": int(last.argmax())})
            if i < 2:
                full.append({"index": i, "ids": ids, "logits": [[float(x) for x in row] for row in logits.tolist()]})
    return {"header": {**env, "note": note, "bos": bos, "prompts": "datasets/ioi-32.json, clean prompts, BOS string "
                       "prepended, encoded without special tokens", "attn_implementation": "eager",
                       "model": "the folder as from_pretrained(dtype=float32) loads it",
                       "compute_dtype": "float32"},
            "prompts": prompts, "full_logits": full}


def write_folder(model, out, tok_json, tok_config, dtype, max_shard_size=None):
    if os.path.exists(out):
        shutil.rmtree(out)
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    # a copy: casting the model itself would also round its buffers (the rotary inv_freq) to bf16 and back
    copy.deepcopy(model).to(dtype).save_pretrained(out, safe_serialization=True, **kwargs)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_config, f, indent=1)
    for name in os.listdir(out):  # save_pretrained may add generation_config.json: keep the folder minimal
        if name == "generation_config.json":
            os.remove(os.path.join(out, name))


def dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    args = ap.parse_args()
    repo = os.path.abspath(args.repo)
    res = os.path.join(repo, "src", "test", "resources", "fixtures")
    torch.set_num_threads(2)
    with open(os.path.join(res, "tokenizers", "gpt2", "tokenizer.json"), encoding="utf-8") as f:
        gpt2_json = json.load(f)
    with open(os.path.join(repo, "datasets", "ioi-32.json"), encoding="utf-8") as f:
        dataset = json.load(f)
    env = {"script": "src/test/scripts/make_family_fixtures.py", "python": platform.python_version(),
           "torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
           "safetensors": safetensors.__version__, "numpy": numpy.__version__, "torch_num_threads": 2, "seed": 0}
    texts = ioi_texts(dataset)
    gpt2 = Tokenizer.from_str(json.dumps(gpt2_json))
    tokenizer_checks = {"header": env, "gpt2": [{"text": s, "ids": gpt2.encode(s, add_special_tokens=False).ids}
                                                for s in CHECK_STRINGS]}
    for family in ["qwen2", "mistral", "gemma2", "llama3"]:
        spec = FAMILIES[family]
        tok_json, cut, special_ids = cut_tokenizer(gpt2_json, texts, family)
        tok_config = spec["tokenizer_config"]
        bos = bos_of(tok_config)
        tokenizer_checks[family] = [{"text": s, "ids": cut.encode(s, add_special_tokens=False).ids,
                                     "ids_with_special_tokens": cut.encode(s, add_special_tokens=True).ids,
                                     "decoded": cut.decode(cut.encode(s, add_special_tokens=False).ids)}
                                    for s in CHECK_STRINGS + [bos + CHECK_STRINGS[0]]]
        if family == "llama3":  # tokenizer only
            out = os.path.join(res, "tokenizers", "llama3-style")
            os.makedirs(out, exist_ok=True)
            dump(tok_json, os.path.join(out, "tokenizer.json"))
            dump(tok_config, os.path.join(out, "tokenizer_config.json"))
            continue
        n_tokens = len(set(tok_json["model"]["vocab"].values()) | set(special_ids.values()))
        # Qwen2 pads its embedding beyond the tokenizer (151936 rows for 151665 tokens): round up to 64 here too
        vocab_size = 64 * math.ceil(n_tokens / 64) if family == "qwen2" else n_tokens
        model = build_model(family, vocab_size, special_ids, tok_config)
        base = os.path.join(res, "families", family)
        os.makedirs(base, exist_ok=True)
        write_folder(model, os.path.join(base, "model"), tok_json, tok_config, torch.bfloat16)
        loaded = reload(os.path.join(base, "model"), model)
        note = f"{family}: weights stored bf16 (values exactly bf16, so loading into float32 is exact)"
        ref = reference(loaded, cut, bos, dataset, env, note)
        dump(ref, os.path.join(base, "reference_logits.json"))
        if family == "mistral":
            # the same weights without a sliding window (full causal attention), in one file and in two shards
            # with model.safetensors.index.json
            model.config.sliding_window = None
            write_folder(model, os.path.join(base, "model-no-window"), tok_json, tok_config, torch.bfloat16)
            loaded = reload(os.path.join(base, "model-no-window"), model)
            note = "mistral without sliding window (sliding_window null): full causal attention"
            ref = reference(loaded, cut, bos, dataset, env, note)
            dump(ref, os.path.join(base, "reference_logits_no_window.json"))
            size = sum(p.numel() * 2 for p in model.parameters())
            write_folder(model, os.path.join(base, "model-sharded"), tok_json, tok_config, torch.bfloat16,
                         max_shard_size=size // 2 + 1024)
            shards = sorted(n for n in os.listdir(os.path.join(base, "model-sharded")) if n.endswith(".safetensors"))
            assert len(shards) == 2, shards
            sharded = reload(os.path.join(base, "model-sharded"), model)
            assert reference(sharded, cut, bos, dataset, env, note) == ref, "the shards give other logits"
        if family == "qwen2":  # fp16 weights: rounding bf16 values to fp16 may change tiny ones, so own reference
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(torch.float16).to(torch.float32))
            write_folder(model, os.path.join(base, "model-fp16"), tok_json, tok_config, torch.float16)
            loaded = reload(os.path.join(base, "model-fp16"), model)
            note = "qwen2 with float16 weights (the bf16 model's values rounded to fp16), logits from those"
            dump(reference(loaded, cut, bos, dataset, env, note), os.path.join(base, "reference_logits_fp16.json"))
        print(family, "vocab", vocab_size, "tokens", n_tokens,
              "params", sum(p.numel() for p in model.parameters()), file=sys.stderr)
    dump(tokenizer_checks, os.path.join(res, "tokenizers", "tokenizer_checks.json"))


if __name__ == "__main__":
    main()
