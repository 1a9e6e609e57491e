"""Gemma 3 270M on CPU: pull cost, conversion sanity, training and sampling speed, and whether a
smaller output vocabulary is worth shipping.

    RODS_MODELS_DIR=/work/cache/models .venv/bin/python benchmarks/bench_gemma.py [--fresh] [--steps 3]

Figures (each a median over `--steps` repetitions where it is a speed):
- pull: `trainer.models.convert` wall time into a fresh temporary models dir (`--fresh`; the
  chunk packages are installed, so the download is excluded), then the second call (idempotent);
  the directory's size.
- perplexity of the converted model on a paragraph of ordinary English, against a randomly
  initialised model of the same architecture (the conversion sanity check: ~1e5 for random).
- SFT tokens/s: forward + backward + AdamW on demo-task conversations (batch 1), with the LM head
  only at labelled positions (`trainer.sft.sft_loss`) vs at every position (the reference).
- hf sampled tokens/s: the hf rollout engine, G rollouts of one demo task, temperature 1.
- GRPO step time: `trainer.update.grpo_update` on those rollouts (micro-batch 1, no KL).
- peak RSS of the process.
- output-vocabulary slicing: the tokens the BFCL world and the chat template need (every token of
  the training and held-out tasks' ground-truth conversations, tool results and user turns
  included, and the specials), the tied embedding/LM head sliced to them; greedy continuations of
  both models on a few prompts compared on the kept vocabulary, and the forward+backward speed
  ratio of the sliced model on the same batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

ENGLISH = (
    "The old library stood at the end of the street, its windows glowing softly in the evening "
    "light. Every afternoon, children gathered on its steps to read the books they had borrowed, "
    "while their parents talked quietly about the weather and the price of bread. Inside, the "
    "librarian kept a careful record of every visitor, and she knew most of them by name."
)


def perplexity(model: torch.nn.Module, tok: object, text: str) -> float:
    ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]  # type: ignore[attr-defined]
    x = torch.tensor([ids])
    with torch.no_grad():
        return float(torch.exp(model(input_ids=x, labels=x).loss))


def timed_pull(fresh: bool) -> dict[str, float]:
    from trainer.models import convert, dir_bytes

    out: dict[str, float] = {}
    if fresh:
        prev = os.environ.get("RODS_MODELS_DIR")
        with tempfile.TemporaryDirectory(dir=str(Path(prev).parent) if prev else None) as tmp:
            os.environ["RODS_MODELS_DIR"] = tmp
            t0 = time.perf_counter()
            path = convert("gemma-3-270m")
            out["pull/first_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            convert("gemma-3-270m")
            out["pull/second_s"] = time.perf_counter() - t0
            out["pull/dir_bytes"] = float(dir_bytes(path))
        if prev is None:
            os.environ.pop("RODS_MODELS_DIR")
        else:
            os.environ["RODS_MODELS_DIR"] = prev
    path = convert("gemma-3-270m")
    t0 = time.perf_counter()
    convert("gemma-3-270m")
    out["pull/second_s_cached"] = time.perf_counter() - t0
    out["pull/dir_bytes"] = float(dir_bytes(path))
    return out


def sft_speed(model: torch.nn.Module, tok: object, examples: list, steps: int) -> dict[str, float]:
    from trainer.sft import sft_batch, sft_loss

    def full_head_loss(m, ids, att, labels):  # noqa: ANN001, ANN202
        logits = m(input_ids=ids, attention_mask=att).logits[:, :-1].float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)

    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    out: dict[str, float] = {}
    for name, fn in (("full_head", full_head_loss), ("labelled_head", sft_loss)):
        rates = []
        for k in range(steps):
            ex = examples[k % len(examples)]
            ids, att, labels = sft_batch([ex], tok.pad_token_id)  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            loss = fn(model, ids, att, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            rates.append(ids.numel() / (time.perf_counter() - t0))
        out[f"sft/{name}_tok_per_s"] = statistics.median(rates)
    out["sft/labelled_vs_full_ratio"] = out["sft/labelled_head_tok_per_s"] / out["sft/full_head_tok_per_s"]
    out["sft/seq_tokens"] = float(statistics.median(len(e.token_ids) for e in examples[:steps]))
    return out


def rollout_and_grpo(model: torch.nn.Module, tok: object, task: object, group: int) -> dict[str, float]:
    from trainer.grpo import GRPOLossConfig
    from trainer.rollout import HFRolloutEngine, RolloutSettings
    from trainer.update import grpo_update

    settings = RolloutSettings(max_new_tokens=48, max_total_tokens=1024, compact_tools=True,
                               max_steps_per_turn=3)
    engine = HFRolloutEngine(model, tok, settings)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    groups = engine.rollout([task], group)
    dt = time.perf_counter() - t0
    n = sum(t.n_generated for t in groups[0])
    out = {"hf/sampled_tokens": float(n), "hf/sampled_tok_per_s": n / dt, "hf/rollout_s": dt,
           "hf/mean_reward": sum(t.reward for t in groups[0]) / group}
    for t in groups[0]:  # a spread so the update is not skipped (zero advantage): time a real step
        t.reward = float(groups[0].index(t) % 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    t0 = time.perf_counter()
    grpo_update(model, opt, groups, loss_cfg=GRPOLossConfig(kl_coef=0.0), micro_batch=1, grad_clip=1.0,
                pad_id=tok.pad_token_id, device=torch.device("cpu"))  # type: ignore[attr-defined]
    out["grpo/update_s"] = time.perf_counter() - t0
    out["grpo/step_s"] = out["hf/rollout_s"] + out["grpo/update_s"]
    out["grpo/trajectory_tokens"] = float(sum(len(t.token_ids) for t in groups[0]))
    return out


def kept_vocabulary(tok: object) -> list[int]:
    """Token ids of every ground-truth conversation of the 800 tasks, plus the specials."""
    from rods.env import GroundTruthCache
    from rods.tasks import load_split
    from trainer.chat import ChatRenderer, ground_truth_conversation, tokenize_conversation

    cache = GroundTruthCache()
    keep: set[int] = set(tok.all_special_ids)  # type: ignore[attr-defined]
    for compact in (True, False):
        renderer = ChatRenderer(tok, {"compact_tools": compact, "tool_result_chars": 0})
        for task in load_split("train") + load_split("eval"):
            conv = ground_truth_conversation(task, cache, compact=compact)
            keep.update(tokenize_conversation(conv, renderer).token_ids)
    return sorted(keep)


def sliced_copy(model: torch.nn.Module, keep: list[int]) -> torch.nn.Module:
    import copy

    small = copy.deepcopy(model)
    idx = torch.tensor(keep)
    emb = small.get_input_embeddings()
    new = torch.nn.Embedding(len(keep), emb.weight.shape[1])
    new.weight.data = emb.weight.data[idx].clone()
    small.set_input_embeddings(new)
    small.lm_head.weight = new.weight  # tied, as the original
    small.config.vocab_size = len(keep)
    return small


def vocab_slicing(model: torch.nn.Module, tok: object, examples: list, steps: int) -> dict[str, float]:
    keep = kept_vocabulary(tok)
    remap = torch.full((model.config.vocab_size,), -1, dtype=torch.long)
    remap[torch.tensor(keep)] = torch.arange(len(keep))
    small = sliced_copy(model, keep)
    out: dict[str, float] = {"vocab/kept": float(len(keep)), "vocab/full": float(model.config.vocab_size)}
    # greedy continuations: the full model's argmax, and the sliced model's mapped back
    prompts = [ENGLISH[:80], "The capital of France is", '<tool_call>{"name":"cd","arguments":{"folder":']
    same = in_kept = 0
    for p in prompts:
        ids = torch.tensor([[tok.bos_token_id, *tok(p, add_special_tokens=False)["input_ids"]]])  # type: ignore[attr-defined]
        if bool((remap[ids] < 0).any()):  # the sliced model cannot read this prompt: not compared
            continue
        with torch.no_grad():
            g_full = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:]
            g_small = small.generate(remap[ids], max_new_tokens=16, do_sample=False)[0, ids.shape[1]:]
        back = torch.tensor(keep)[g_small]
        n = min(len(g_full), len(back))
        in_kept += int(bool((remap[g_full] >= 0).all()))
        same += int(torch.equal(g_full[:n], back[:n]))
    out["vocab/greedy_prompts"] = float(len(prompts))
    out["vocab/greedy_full_in_kept"] = float(in_kept)
    out["vocab/greedy_same"] = float(same)
    # forward + backward speed on the same batch
    from trainer.sft import sft_batch

    def fb(m: torch.nn.Module, ids: torch.Tensor) -> float:
        t0 = time.perf_counter()
        logits = m(input_ids=ids).logits.float()
        torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).backward()
        m.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    t_full, t_small = [], []
    for k in range(steps):
        ids, _, _ = sft_batch([examples[k % len(examples)]], tok.pad_token_id)  # type: ignore[attr-defined]
        t_full.append(fb(model, ids))
        t_small.append(fb(small, remap[ids]))
    out["vocab/fwd_bwd_full_s"] = statistics.median(t_full)
    out["vocab/fwd_bwd_sliced_s"] = statistics.median(t_small)
    out["vocab/speed_ratio"] = out["vocab/fwd_bwd_full_s"] / out["vocab/fwd_bwd_sliced_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", action="store_true", help="also time a first pull into a temporary dir")
    ap.add_argument("--steps", type=int, default=3, help="repetitions of each speed figure")
    ap.add_argument("--group", type=int, default=4, help="G rollouts for the sampling figure")
    ap.add_argument("--no-vocab", action="store_true", help="skip the output-vocabulary figures")
    ap.add_argument("--out", default="benchmarks/results/gemma.json")
    args = ap.parse_args()

    from tests.unit.tiny_lm import demo_tasks
    from trainer.models import convert
    from trainer.policy import load_policy
    from trainer.sft import sft_examples

    res: dict[str, float] = {"threads": float(torch.get_num_threads())}
    res.update(timed_pull(args.fresh))
    print(json.dumps(res), flush=True)
    model, tok = load_policy(convert("gemma-3-270m"))
    res["ppl/converted"] = perplexity(model, tok, ENGLISH)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    rand = AutoModelForCausalLM.from_config(model.config)
    res["ppl/random_init"] = perplexity(rand, tok, ENGLISH)
    del rand
    print(json.dumps(res), flush=True)
    tasks = demo_tasks(27)
    examples = sft_examples(tasks[: args.steps], tok, compact_tools=True)
    res.update(rollout_and_grpo(model, tok, tasks[1], args.group))
    print(json.dumps(res), flush=True)
    res.update(sft_speed(model, tok, examples, args.steps))
    print(json.dumps(res), flush=True)
    if not args.no_vocab:
        res.update(vocab_slicing(model, tok, examples, args.steps))
    res["rss/peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
