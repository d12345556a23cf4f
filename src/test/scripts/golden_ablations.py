#!/usr/bin/env python3
"""Golden run_circuits outputs for every ablation type, from an independent plain-PyTorch reference.

WHAT THIS IS
  A second, independent implementation of AutoCircuit's edge patching on the factorized GPT-2 graph (the one the
  golden files under src/test/resources/fixtures/golden come from), written directly in PyTorch: no AutoCircuit, no
  TransformerLens, and nothing from the Java code under test. It writes run_circuits + measure_prune_metrics outputs
  for all seven ablation types (RESAMPLE, ZERO, TOKENWISE_MEAN_CLEAN, TOKENWISE_MEAN_CORRUPT,
  TOKENWISE_MEAN_CLEAN_AND_CORRUPT, BATCH_TOKENWISE_MEAN, BATCH_ALL_TOK_MEAN) under EDGE_PATCH and TREE_PATCH, in the
  format of the circuit_metrics_*.json files AutoCircuit itself produced.

WHY NOT AUTOCIRCUIT ITSELF
  The goldens beside it were made by AutoCircuit (commit 98db58c) on TransformerLens 2.16.0. Neither can be installed
  on this project's machines: `pip install transformer_lens==2.16.0 auto-circuit` ends in
  "ERROR: No matching distribution found for transformer_lens==2.16.0 (from versions: none)", because pypi.org does
  not resolve here ("Failed to establish a new connection: [Errno -2] Name or service not known") and the local
  package mirrors hold neither transformer-lens nor auto-circuit. Only torch 2.13.0 (CPU), numpy and safetensors
  are needed by this script.

HOW IT IS TIED TO AUTOCIRCUIT
  `--check` recomputes, with the same code path, every number AutoCircuit's own golden files hold for the three
  ablation types it ran (RESAMPLE, ZERO, TOKENWISE_MEAN_CORRUPT, both patch types, all eight metrics and the
  per-prompt RESAMPLE logits) on the component graph, the token graph and the left-padded prompts, plus the clean
  logits, and fails unless all agree (logits 1e-4, metrics rtol 1e-3). Measured when the goldens were written:
  see the "reference_check" block in each output header. The four other ablation types differ from those only in how
  the patch values are reduced (means over the batch, the sequence, or the data set's clean prompts), which the code
  below does in one place each, following AutoCircuit's documented semantics:
    BATCH_TOKENWISE_MEAN: mean over the batch, per position, of the source outputs on the batch's other side;
    BATCH_ALL_TOK_MEAN:   mean over the batch and every position (left padding included) of the same;
    TOKENWISE_MEAN_*:     per-position mean over every prompt of the loader (clean, corrupt, or the average of both).

THE MODEL (as AutoCircuit's fixture loads it into TransformerLens, weight processing "none")
  GPT-2 from model.safetensors: learned positions, pre-LayerNorm, gelu_new, W_U = W_E^T, no unembedding bias.
  Left padding as TransformerLens handles it: the attention mask marks leading pad tokens (id = BOS = 50256) as padding
  except the last one (the BOS); positions are cumsum(mask) - 1 clamped at 0, and padded positions get a zero position
  embedding (not that of position 0); masked keys get -inf, and fully masked rows (pad queries) a zero pattern instead
  of NaN. (The zero position embedding matters only where activations at padded positions are averaged into means
  read at other prompts' real tokens: TOKENWISE_MEAN_CORRUPT on the padded prompts at 10 edges differs without it.) Token ids come from AutoCircuit's own clean_logits.json, so no
  tokenizer is involved.

  Factorized graph with separate Q/K/V: sources are Resid Start (blocks.0.hook_resid_pre), each head's result
  (z_h W_O^h, no bias) and each MLP's output; destinations are each head's q/k/v input, each MLP's input and the final
  residual. A destination's input in a patched pass is its unpatched input + sum over sources of
  mask * (patch value - the source's output in this pass).

RUN (from the repository root; about a minute on 2 cores)
  python3 -m venv /tmp/parity && /tmp/parity/bin/pip install /opt/wheels/torch-2.13.0+cpu-*.whl numpy safetensors
  /tmp/parity/bin/python src/test/scripts/golden_ablations.py --check --write
  (--check alone verifies against AutoCircuit's goldens without writing; --only component|token|padded limits the
  run; the token graph takes most of the time.)
"""
import argparse
import json
import math
import os
import platform
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "src", "test", "resources", "fixtures")
MODEL = os.path.join(ROOT, "datasets", "models", "gpt2-tiny-random")

ABLATIONS = ["RESAMPLE", "ZERO", "TOKENWISE_MEAN_CLEAN", "TOKENWISE_MEAN_CORRUPT", "TOKENWISE_MEAN_CLEAN_AND_CORRUPT",
             "BATCH_TOKENWISE_MEAN", "BATCH_ALL_TOK_MEAN"]
AUTOCIRCUIT_RAN = ["RESAMPLE", "ZERO", "TOKENWISE_MEAN_CORRUPT"]
PATCH_TYPES = ["EDGE_PATCH", "TREE_PATCH"]
METRICS = ["Logit Diff", "Clean KL Div", "Corrupt KL Div", "Correct Answer Percent", "Answer Prob", "Answer Logit",
           "Logit Diff Percent", "Correct Answer Greater Than Incorrect Percent"]
PAD = 50256


class Gpt2:
    def __init__(self, folder):
        cfg = json.load(open(os.path.join(folder, "config.json")))
        w = load_file(os.path.join(folder, "model.safetensors"))
        w = {k[len("transformer."):] if k.startswith("transformer.") else k: v.float() for k, v in w.items()}
        self.L, self.D, self.H = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
        self.dh = self.D // self.H
        self.eps = cfg["layer_norm_epsilon"]
        self.w = w
        self.W_E, self.W_pos = w["wte.weight"], w["wpe.weight"]
        self.W_U = w.get("lm_head.weight", self.W_E).T

    def ln(self, x, name):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt() * self.w[name + ".weight"] + self.w[name + ".bias"]

    @staticmethod
    def attention_mask(tokens):
        """TransformerLens's mask for left padding where pad == BOS: leading pads are masked except the last (BOS)."""
        not_pad = tokens.ne(PAD)
        leading = not_pad.long().cumsum(-1) == 0
        mask = (~leading).long()
        bos = leading.sum(-1) - 1
        rows = torch.arange(tokens.shape[0])
        ok = bos >= 0
        mask[rows[ok], bos[ok]] = 1
        return mask

    def n_srcs(self):
        return 1 + self.L * (self.H + 1)

    def forward(self, tokens, patch=None, masks=None, per_position=False):
        """Logits at the last position [B, V] and the stacked source outputs [n_src, B, S, D] of this pass."""
        B, S = tokens.shape
        H, D, dh = self.H, self.D, self.dh
        am = self.attention_mask(tokens)
        pos = (am.cumsum(1) - 1).clamp(min=0)
        resid = self.W_E[tokens] + self.W_pos[pos] * am[..., None]
        srcs = [resid]

        def delta(mask, heads):
            """sum over sources of mask * (patch - curr) for a destination module; [B,S,(H,)D]."""
            if patch is None:
                return 0
            n = mask.shape[-1]
            diff = patch[:n] - torch.stack(srcs[:n])                       # [n, B, S, D]
            if heads:
                eq = "shn,nbsd->bshd" if per_position else "hn,nbsd->bshd"
            else:
                eq = "sn,nbsd->bsd" if per_position else "n,nbsd->bsd"
            return torch.einsum(eq, mask, diff)

        causal = torch.tril(torch.ones(S, S, dtype=torch.bool))
        keep = causal[None, None] & am.bool()[:, None, None, :]              # [B, 1, Sq, Sk]
        for l in range(self.L):
            p = "h.%d." % l
            cw, cb = self.w[p + "attn.c_attn.weight"], self.w[p + "attn.c_attn.bias"]
            per_head = resid[:, :, None, :].expand(B, S, H, D)
            ins = {}
            for i, kind in enumerate("qkv"):
                x = per_head + (delta(masks["blocks.%d.hook_%s_input" % (l, kind)], True) if patch is not None else 0)
                W = cw[:, i * D:(i + 1) * D].reshape(D, H, dh)
                b = cb[i * D:(i + 1) * D].reshape(H, dh)
                ins[kind] = torch.einsum("bshd,dhe->bshe", self.ln(x, p + "ln_1"), W) + b
            scores = torch.einsum("bqhe,bkhe->bhqk", ins["q"], ins["k"]) / math.sqrt(dh)
            scores = torch.where(keep, scores, torch.tensor(float("-inf")))
            pattern = torch.softmax(scores, -1)
            pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
            z = torch.einsum("bhqk,bkhe->bqhe", pattern, ins["v"])
            W_O = self.w[p + "attn.c_proj.weight"].reshape(H, dh, D)
            result = torch.einsum("bqhe,hed->bqhd", z, W_O)                # [B, S, H, D]
            srcs.extend(result[:, :, h] for h in range(H))
            resid = resid + result.sum(2) + self.w[p + "attn.c_proj.bias"]
            x = resid + (delta(masks["blocks.%d.hook_mlp_in" % l], False) if patch is not None else 0)
            h1 = self.ln(x, p + "ln_2") @ self.w[p + "mlp.c_fc.weight"] + self.w[p + "mlp.c_fc.bias"]
            h1 = 0.5 * h1 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h1 + 0.044715 * h1.pow(3))))
            mlp_out = h1 @ self.w[p + "mlp.c_proj.weight"] + self.w[p + "mlp.c_proj.bias"]
            srcs.append(mlp_out)
            resid = resid + mlp_out
        x = resid + (delta(masks["blocks.%d.hook_resid_post" % (self.L - 1)], False) if patch is not None else 0)
        logits = self.ln(x, "ln_f") @ self.W_U
        return logits[:, -1], torch.stack(srcs)


_DATASET_MEANS = {}


def ablation_values(model, batches, batch, side, ablation):
    """AutoCircuit's src_ablations for one batch: [n_src, B, S, D]; `side` supplies per-batch values."""
    if ablation.startswith("TOKENWISE_MEAN_"):
        key = (id(batches), ablation)
        if key not in _DATASET_MEANS:
            _DATASET_MEANS[key] = dataset_mean(model, batches, ablation)
        return _DATASET_MEANS[key].expand(-1, batch[side].shape[0], -1, -1)
    return batch_ablation(model, batch, side, ablation)


def dataset_mean(model, batches, ablation):
    """Per-position mean over every prompt of the loader: the mean of the batch means (equal batch sizes)."""
    sides = {"TOKENWISE_MEAN_CLEAN": ["clean"], "TOKENWISE_MEAN_CORRUPT": ["corrupt"],
             "TOKENWISE_MEAN_CLEAN_AND_CORRUPT": ["clean", "corrupt"]}[ablation]
    total = 0
    for b in batches:
        for s in sides:
            total = total + model.forward(b[s])[1].mean(1, keepdim=True)
    return total / (len(batches) * len(sides))


def batch_ablation(model, batch, side, ablation):
    outs = model.forward(batch[side])[1]
    if ablation == "RESAMPLE":
        return outs
    if ablation == "ZERO":
        return torch.zeros_like(outs)
    if ablation == "BATCH_TOKENWISE_MEAN":
        return outs.mean(1, keepdim=True).expand_as(outs)
    if ablation == "BATCH_ALL_TOK_MEAN":
        return outs.mean((1, 2), keepdim=True).expand_as(outs)
    raise ValueError(ablation)


def run_circuits(model, batches, scores, counts, patch_type, ablation, per_position):
    flat = torch.cat([s.abs().flatten() for s in scores.values()])
    desc = flat.sort(descending=True).values
    out = {}
    for bi, batch in enumerate(batches):
        on, other = ("corrupt", "clean") if patch_type == "EDGE_PATCH" else ("clean", "corrupt")
        patch = ablation_values(model, batches, batch, other, ablation)
        for k in counts:
            threshold = float("inf") if k == 0 else desc[k - 1].item()
            if patch_type == "EDGE_PATCH":
                masks = {m: (s.abs() >= threshold).float() for m, s in scores.items()}
                n = int(sum(m.sum().item() for m in masks.values()))
            else:
                masks = {m: (s.abs() < threshold).float() for m, s in scores.items()}
                n = int(sum((1 - m).sum().item() for m in masks.values()))
            # keyed by the real count, as AutoCircuit's run_circuits: counts that tie into one keep the last pass
            out.setdefault(n, {})[bi] = model.forward(batch[on], patch, masks, per_position)[0]
    return {n: [per_batch[i] for i in range(len(batches))] for n, per_batch in sorted(out.items())}


def metrics(outs, clean, corrupt, batches):
    def diff(lg, b):
        return lg.gather(1, b["answers"])[:, 0] - lg.gather(1, b["wrong"])[:, 0]

    def kl(circ, ref):
        c = torch.log_softmax(torch.cat(circ), -1)
        r = torch.log_softmax(torch.cat(ref), -1)
        return max((r.exp() * (r - c)).sum().item() / c.shape[0], 0.0)

    nb = len(batches)
    clean_diff = sum(diff(clean[i], b).mean().item() for i, b in enumerate(batches)) / nb
    res = {m: [] for m in METRICS}
    for n, per_batch in outs.items():
        ld = sum(diff(per_batch[i], b).mean().item() for i, b in enumerate(batches)) / nb
        res["Logit Diff"].append([n, ld])
        res["Clean KL Div"].append([n, kl(per_batch, clean)])
        res["Corrupt KL Div"].append([n, kl(per_batch, corrupt)])
        res["Correct Answer Percent"].append([n, 100 * sum(
            (lg.argmax(-1) == b["answers"][:, 0]).float().mean().item() for lg, b in zip(per_batch, batches)) / nb])
        res["Answer Prob"].append([n, sum(torch.softmax(lg, -1).gather(1, b["answers"]).mean().item()
                                          for lg, b in zip(per_batch, batches)) / nb])
        res["Answer Logit"].append([n, sum(lg.gather(1, b["answers"]).mean().item()
                                           for lg, b in zip(per_batch, batches)) / nb])
        res["Logit Diff Percent"].append([n, ld / clean_diff * 100])
        res["Correct Answer Greater Than Incorrect Percent"].append([n, 100 * sum(
            (diff(lg, b) >= 0).float().mean().item() for lg, b in zip(per_batch, batches)) / nb])
    return res


def detail(outs, batches):
    return {str(n): [{"answer_logit": lg.gather(1, b["answers"])[:, 0].tolist(),
                      "wrong_answer_logit": lg.gather(1, b["wrong"])[:, 0].tolist(),
                      "logsumexp": torch.logsumexp(lg, -1).tolist()} for lg, b in zip(per_batch, batches)]
            for n, per_batch in outs.items()}


def load_batches(folder):
    golden = json.load(open(os.path.join(FIXTURES, "golden", folder, "clean_logits.json")))
    return [{"clean": torch.tensor(b["clean"]), "corrupt": torch.tensor(b["corrupt"]),
             "answers": torch.tensor(b["answers"]), "wrong": torch.tensor(b["wrong_answers"]),
             "golden": b} for b in golden["test"]["batches"]], golden


def experiment(model, folder, graph):
    batches, clean_golden = load_batches(folder)
    ps = json.load(open(os.path.join(FIXTURES, "golden", folder, "prune_scores_eap_mask_gradient_%s.json" % graph)))
    scores = {m: torch.tensor(v, dtype=torch.float32) for m, v in ps["prune_scores"].items()}
    per_position = next(iter(scores.values())).dim() == 3 or scores["blocks.0.hook_mlp_in"].dim() == 2
    reference = json.load(open(os.path.join(FIXTURES, "golden", folder, "circuit_metrics_%s.json" % graph)))
    counts = reference["header"]["test_edge_counts"]
    with torch.inference_mode():
        clean = [model.forward(b["clean"])[0] for b in batches]
        corrupt = [model.forward(b["corrupt"])[0] for b in batches]
        results = {}
        for patch_type in PATCH_TYPES:
            for ablation in ABLATIONS:
                outs = run_circuits(model, batches, scores, counts, patch_type, ablation, per_position)
                results[(patch_type, ablation)] = (metrics(outs, clean, corrupt, batches), detail(outs, batches))
    return batches, clean_golden, clean, reference, results, counts


def check(batches, clean_golden, clean, reference, results, where):
    """Worst deviations from AutoCircuit's own goldens; raises when outside the golden tests' tolerances."""
    worst_logit, worst_metric_rel = 0.0, 0.0
    for b, lg in zip(batches, clean):
        g = b["golden"]
        worst_logit = max(worst_logit,
                          (lg.gather(1, b["answers"])[:, 0] - torch.tensor(g["clean_answer_logit"])).abs().max().item(),
                          (torch.logsumexp(lg, -1) - torch.tensor(g["clean_logsumexp"])).abs().max().item())
    compared = 0
    for patch_type in PATCH_TYPES:
        for ablation in AUTOCIRCUIT_RAN:
            got, got_detail = results[(patch_type, ablation)]
            for metric, points in reference["measurements"][patch_type][ablation].items():
                mine = got[metric]
                if [p[0] for p in points] != [p[0] for p in mine]:
                    raise SystemExit("%s %s %s %s: edge counts %s, AutoCircuit %s" % (
                        where, patch_type, ablation, metric, [p[0] for p in mine], [p[0] for p in points]))
                for (n, want), (_, have) in zip(points, mine):
                    err = abs(want - have)
                    if err > 1e-3 * abs(want) + 2e-6:
                        raise SystemExit("%s %s %s %s at %d: %r, AutoCircuit %r" % (
                            where, patch_type, ablation, metric, n, have, want))
                    worst_metric_rel = max(worst_metric_rel, err / (abs(want) + 1e-6))
                    compared += 1
            if ablation == "RESAMPLE":
                for n, per_batch in reference["run_circuits_resample_detail"][patch_type].items():
                    for want, have in zip(per_batch, got_detail[n]):
                        for key in want:
                            worst_logit = max(worst_logit, max(abs(a - c) for a, c in zip(want[key], have[key])))
    if worst_logit > 1e-4:
        raise SystemExit("%s: logits differ from AutoCircuit's by %g" % (where, worst_logit))
    return {"metric_values_compared": compared, "max_relative_metric_diff": worst_metric_rel,
            "max_abs_logit_diff": worst_logit}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with AutoCircuit's goldens (fails on a mismatch)")
    ap.add_argument("--write", action="store_true", help="write circuit_metrics_all_ablations_*.json")
    ap.add_argument("--only", choices=["component", "token", "padded"], action="append",
                    help="run only these experiments (default: all three)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = Gpt2(MODEL)
    for folder, graph in [("", "component"), ("", "token"), ("padded", "component")]:
        if args.only and (folder or graph) not in args.only:
            continue
        where = (folder or "golden") + "/" + graph
        batches, clean_golden, clean, reference, results, counts = experiment(model, folder, graph)
        checked = check(batches, clean_golden, clean, reference, results, where) if args.check else None
        if checked:
            print(where, "agrees with AutoCircuit:", json.dumps(checked))
        if args.write:
            header = {
                "experiment": "run_circuits + measure_prune_metrics, every ablation type, %s graph" % graph,
                "script": "src/test/scripts/golden_ablations.py --check --write",
                "implementation": "independent plain-PyTorch reference of AutoCircuit's factorized edge patching "
                                  "(AutoCircuit and TransformerLens cannot be installed here; see the script)",
                "reference_check": checked,
                "model": "datasets/models/gpt2-tiny-random (weight processing none)",
                "tokens": "golden/%sclean_logits.json (AutoCircuit's own tokenization)" % (folder + "/" if folder else ""),
                "ranking_scores": reference["header"]["ranking_scores"],
                "test_edge_counts": counts,
                "graph": {"factorized": True, "separate_qkv": True, "slice_output": "last_seq",
                          "seq_len": reference["header"]["graphs"][graph]["seq_len"]},
                "dataloader": "test split (the loader's batches, as in clean_logits.json)",
                "ablation_types": ABLATIONS,
                "measurement_format": reference["header"]["measurement_format"],
                "env": {"python": platform.python_version(), "torch": torch.__version__, "torch_num_threads": 2},
            }
            out = {"header": header,
                   "measurements": {pt: {ab: results[(pt, ab)][0] for ab in ABLATIONS} for pt in PATCH_TYPES},
                   "run_circuits_detail": {pt: {ab: results[(pt, ab)][1] for ab in ABLATIONS} for pt in PATCH_TYPES}}
            path = os.path.join(FIXTURES, "golden", folder, "circuit_metrics_all_ablations_%s.json" % graph)
            with open(path, "w") as f:
                json.dump(out, f, separators=(",", ":"))
                f.write("\n")
            print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    sys.exit(main())
