"""Float32 rounding of our forward and of transformers', measured against a float64 forward.

A diagnosis for the Hugging Face export round trip (issue 19): when our float32 logits and
transformers' float32 logits of the same exported weights differ, which side is nearer the
exact result? Three forwards of an exported Gemma 3 directory (--hf_dir, written by
experiments/export.py), each in its own process (one model in memory at a time):

  --side=ours  our JAX forward in float32 (unrolled layer by layer, to record the residual
               stream after each layer; its logits are checked against the scanned forward);
  --side=hf    transformers, float32, eager attention (hooks record each layer's output);
  --side=ref   an independent NumPy float64 forward written from the Gemma 3 definition
               (RMSNorm times 1 + w, sqrt(d) embedding scale, QK-norm, rotate-half RoPE with
               the float32 inverse frequencies both implementations use, query scale
               query_pre_attn_scalar**-0.5, tanh GELU, post-norms, tied unembedding);
  --side=compare  reads the three files and prints, per prompt, max |error| of the logits
               and of each layer's residual stream against float64.

  python -m experiments.export --checkpoint=gemma3-270m --output=/tmp/g3
  for s in ours hf ref compare; do
    python -m experiments.export_precision --hf_dir=/tmp/g3 --work=/tmp/g3p --side=$s
  done
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import flags

from experiments import cli

PROG = "export_precision"
FLAGS = flags.FLAGS
flags.DEFINE_string(
    "hf_dir", None, "Exported Gemma 3 directory (experiments/export.py " "--output). Required."
)
flags.DEFINE_string("work", None, "Directory for the per-side result files (created). " "Required.")
flags.DEFINE_enum(
    "side",
    None,
    ["ours", "hf", "ref", "compare"],
    "Which forward to run, " "or compare the three saved results. Required.",
)
flags.DEFINE_string(
    "tokenizer",
    "gemma3-270m",
    "Tokenizer source for the prompts (our "
    "tokenizer; the ids are saved by --side=ours for the other sides).",
)

# The prompts of tests/models/test_export.py::test_embedded_gemma3_export_round_trip.
PROMPTS = [
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "The capital of France is the city of",
    "<start_of_turn>user\nWhat is 2 + 2?<end_of_turn>\n<start_of_turn>model\n",
]


def _ids(work: str) -> list[np.ndarray]:
  data = np.load(os.path.join(work, "ids.npz"))
  return [data[str(k)] for k in range(len(data.files))]


def run_ours(hf_dir: str, work: str) -> None:
  """Our float32 forward, one layer at a time; residual stream [T, d] after each layer."""
  import jax
  import jax.numpy as jnp
  from absolute_zero import tokenizers as tk
  from absolute_zero.models import compute_logits, forward
  from absolute_zero.models import transformer as tf
  from absolute_zero.models.hf_import import load_hf_checkpoint

  tok = tk.load_tokenizer(FLAGS.tokenizer)
  ids = [np.asarray(tok.encode(p, parse_special=True)) for p in PROMPTS]
  np.savez(os.path.join(work, "ids.npz"), **{str(k): v for k, v in enumerate(ids)})
  config, params = load_hf_checkpoint(hf_dir)
  c = config
  block = tf.Block(c)

  @jax.jit
  def layer(p, x, i, is_local, rope_g, rope_l, masks):
    (x, _, _), _ = block.apply({"params": p}, (x, None, i), is_local, rope_g, rope_l, masks, 0)
    return x

  scanned = jax.jit(lambda p, t, pos: compute_logits(p, forward(p, t, pos, None, c), c))
  out = {}
  for k, row in enumerate(ids):
    tokens = jnp.asarray(row)[None]  # [1, T]
    pos = jnp.arange(row.size)[None]
    x = jnp.take(params["embedding"], tokens, axis=0) * jnp.asarray(
        np.sqrt(c.embed_dim), jnp.float32
    )
    masks = tf.attention_masks(pos, pos, jnp.ones_like(tokens, bool), c.sliding_window)
    rope_g = tf.rope_tables(pos, tf.rope_inv_freq(c.head_dim, c.rope_base, c.rope_scaling))
    rope_l = tf.rope_tables(pos, tf.rope_inv_freq(c.head_dim, c.rope_base_local, None))
    hidden = [np.asarray(x[0])]
    for i in range(c.num_layers):
      p_i = jax.tree.map(lambda a, i=i: a[i], params["layers"])
      x = layer(p_i, x, jnp.int32(i), jnp.asarray(c.is_local_layer[i]), rope_g, rope_l, masks)
      hidden.append(np.asarray(x[0]))
    normed = tf.RMSNorm(c.rms_norm_eps, c.norm_offset).apply({"params": params["final_norm"]}, x)
    logits = np.asarray(compute_logits(params, normed, c))[0]
    whole = np.asarray(scanned(params, tokens, pos))[0]
    print(
        f"prompt {k}: T={row.size}, unrolled vs scanned forward max |logit difference| "
        f"{np.abs(logits - whole).max():.3g}",
        flush=True,
    )
    out[f"{k}/hidden"] = np.stack(hidden)  # [L + 1, T, d]
    out[f"{k}/logits"] = whole  # the scanned forward's: what the export test compares
  np.savez(os.path.join(work, "ours.npz"), **out)


def run_hf(hf_dir: str, work: str) -> None:
  """transformers float32 eager; each decoder layer's output recorded by a hook."""
  import torch
  import transformers

  model = transformers.AutoModelForCausalLM.from_pretrained(
      hf_dir, dtype=torch.float32, attn_implementation="eager"
  )
  recorded = []
  model.model.embed_tokens.register_forward_hook(lambda m, a, o: recorded.append(o))
  for lay in model.model.layers:
    lay.register_forward_hook(lambda m, a, o: recorded.append(o[0] if isinstance(o, tuple) else o))
  out = {}
  with torch.no_grad():
    for k, row in enumerate(_ids(work)):
      recorded.clear()
      logits = model(torch.from_numpy(row)[None]).logits[0].numpy()
      out[f"{k}/hidden"] = np.stack([r[0].numpy() for r in recorded])  # [L + 1, T, d]
      out[f"{k}/logits"] = logits
  np.savez(os.path.join(work, "hf.npz"), **out)


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
  """Gemma RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * (1 + w)."""
  return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def run_ref(hf_dir: str, work: str) -> None:
  """NumPy float64 Gemma 3 text forward from the safetensors and config.json."""
  from safetensors.numpy import load_file

  cfg = json.load(open(os.path.join(hf_dir, "config.json")))
  w = {}
  for name in sorted(os.listdir(hf_dir)):
    if name.endswith(".safetensors"):
      w.update(load_file(os.path.join(hf_dir, name)))
  f64 = lambda name: w[name].astype(np.float64)  # noqa: E731
  d, heads, kv, hd = (
      cfg["hidden_size"],
      cfg["num_attention_heads"],
      cfg["num_key_value_heads"],
      cfg["head_dim"],
  )
  eps, window = cfg["rms_norm_eps"], cfg["sliding_window"]
  emb = f64("model.embed_tokens.weight")  # [V, d]
  del w["model.embed_tokens.weight"]
  scale = float(np.float32(np.sqrt(d)))  # both implementations round sqrt(d) to float32
  inv = {}  # float32 inverse frequencies, as both implementations compute them
  for kind, base in (
      ("sliding_attention", cfg["rope_local_base_freq"]),
      ("full_attention", cfg["rope_theta"]),
  ):
    inv[kind] = (
        (1.0 / (np.float32(base) ** (np.arange(0, hd, 2).astype(np.float32) / hd)))
        .astype(np.float32)
        .astype(np.float64)
    )
  out = {}
  for k, row in enumerate(_ids(work)):
    t = row.size
    x = emb[row] * scale  # [T, d]
    hidden = [x]
    pos = np.arange(t, dtype=np.float64)
    diff = pos[:, None] - pos[None, :]
    for i, kind in enumerate(cfg["layer_types"]):
      p = f"model.layers.{i}."
      allowed = diff >= 0
      if kind == "sliding_attention":
        allowed &= diff < window
      angles = pos[:, None] * inv[kind][None]  # [T, hd/2]
      cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]  # [T, 1, hd/2]

      def rope(v):  # v [T, h, hd]
        a, b = v[..., : hd // 2], v[..., hd // 2 :]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

      h = _rms_norm(x, f64(p + "input_layernorm.weight"), eps)
      q = (h @ f64(p + "self_attn.q_proj.weight").T).reshape(t, heads, hd)
      key = (h @ f64(p + "self_attn.k_proj.weight").T).reshape(t, kv, hd)
      val = (h @ f64(p + "self_attn.v_proj.weight").T).reshape(t, kv, hd)
      q = rope(_rms_norm(q, f64(p + "self_attn.q_norm.weight"), eps))
      key = rope(_rms_norm(key, f64(p + "self_attn.k_norm.weight"), eps))
      key = np.repeat(key, heads // kv, axis=1)
      val = np.repeat(val, heads // kv, axis=1)
      scores = np.einsum("qhd,khd->hqk", q, key) * cfg["query_pre_attn_scalar"] ** -0.5
      scores = np.where(allowed[None], scores, -np.inf)
      probs = np.exp(scores - scores.max(-1, keepdims=True))
      probs /= probs.sum(-1, keepdims=True)
      attn = np.einsum("hqk,khd->qhd", probs, val).reshape(t, heads * hd)
      attn = attn @ f64(p + "self_attn.o_proj.weight").T
      x = x + _rms_norm(attn, f64(p + "post_attention_layernorm.weight"), eps)
      h = _rms_norm(x, f64(p + "pre_feedforward_layernorm.weight"), eps)
      g = h @ f64(p + "mlp.gate_proj.weight").T
      gelu = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g**3)))
      m = (gelu * (h @ f64(p + "mlp.up_proj.weight").T)) @ f64(p + "mlp.down_proj.weight").T
      x = x + _rms_norm(m, f64(p + "post_feedforward_layernorm.weight"), eps)
      hidden.append(x)
    x = _rms_norm(x, f64("model.norm.weight"), eps)
    out[f"{k}/hidden"] = np.stack(hidden)
    out[f"{k}/logits"] = x @ emb.T  # [T, V]
  np.savez(os.path.join(work, "ref.npz"), **out)


def compare(work: str) -> None:
  ours, hf, ref = (np.load(os.path.join(work, f"{s}.npz")) for s in ("ours", "hf", "ref"))
  n = len(_ids(work))
  rows = []
  for k in range(n):
    r = ref[f"{k}/logits"]
    e_ours = np.abs(ours[f"{k}/logits"] - r)
    e_hf = np.abs(hf[f"{k}/logits"] - r)
    row = dict(
        prompt=k,
        tokens=int(r.shape[0]),
        max_abs_logit=float(np.abs(r).max()),
        ours_vs_f64=float(e_ours.max()),
        hf_vs_f64=float(e_hf.max()),
        ours_vs_hf=float(np.abs(ours[f"{k}/logits"] - hf[f"{k}/logits"]).max()),
        ours_vs_f64_rms=float(np.sqrt(np.mean(e_ours**2))),
        hf_vs_f64_rms=float(np.sqrt(np.mean(e_hf**2))),
    )
    for key in ("ours_vs_f64", "hf_vs_f64", "ours_vs_hf"):
      row[key + "_per_max_logit"] = row[key] / row["max_abs_logit"]
    rows.append(row)
    print(json.dumps(row))
    print("  layer  max|h|     ours-f64   hf-f64     ours-hf  (residual stream after layer)")
    for i in range(ref[f"{k}/hidden"].shape[0]):
      hr = ref[f"{k}/hidden"][i]
      ho, hh = ours[f"{k}/hidden"][i], hf[f"{k}/hidden"][i]
      print(
          f"  {i:5d}  {np.abs(hr).max():9.3g}  {np.abs(ho - hr).max():9.3g}  "
          f"{np.abs(hh - hr).max():9.3g}  {np.abs(ho - hh).max():9.3g}"
      )
  json.dump(rows, open(os.path.join(work, "summary.json"), "w"), indent=1)


def main(argv) -> None:
  cli.check(len(argv) == 1, f"unexpected arguments {argv[1:]}: every input is a flag")
  cli.check(FLAGS.side is not None, "--side is required: ours, hf, ref or compare")
  cli.check(FLAGS.work is not None, "--work is required: a directory for the result files")
  work = cli.path_flag("work", kind="dir")
  if FLAGS.side == "compare":
    missing = [
        s
        for s in ("ids", "ours", "hf", "ref")
        if not os.path.isfile(os.path.join(work, f"{s}.npz"))
    ]
    cli.check(
        not missing,
        f"--work={FLAGS.work}: no {', '.join(missing)} results; run "
        "--side=ours, then --side=hf and --side=ref, with this --work first",
    )
    return compare(work)
  cli.check(FLAGS.hf_dir is not None, "--hf_dir is required: an exported Gemma 3 directory")
  hf_dir = cli.path_flag("hf_dir", kind="dir")
  cli.check(
      os.path.isfile(os.path.join(hf_dir, "config.json")),
      f"--hf_dir={FLAGS.hf_dir}: no config.json; give experiments/export.py's --output",
  )
  cli.check(
      FLAGS.side == "ours" or os.path.isfile(os.path.join(work, "ids.npz")),
      f"--work={FLAGS.work}: no ids.npz; run --side=ours first (it tokenizes the " "prompts)",
  )
  os.makedirs(work, exist_ok=True)
  {"ours": run_ours, "hf": run_hf, "ref": run_ref}[FLAGS.side](hf_dir, work)


if __name__ == "__main__":
  cli.run(main, PROG)
