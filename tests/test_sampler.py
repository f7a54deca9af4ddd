"""The sampler end to end on tiny random models of the three families.

References are independent of the decode path: greedy tokens and log-probs come from full
re-forwards (no cache) of the growing sequence, sampled distributions from the full
forward's logits pushed through a NumPy definition of temperature / top-k / top-p.
"""

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from absolute_zero import sharding
from absolute_zero.models import compute_logits, forward, get_config, init_params
from absolute_zero.sampler import TRACE_COUNTS, Sampler, SamplerConfig
from absolute_zero.buckets import batch_bucket, length_bucket
from absolute_zero.sampling.padding import left_pad
from absolute_zero.tokenizers import Tokenizer
from tests.test_sampler_token_sampling import chi_square_pvalue, reference_distribution

FAMILIES = ["tiny-gemma3", "tiny-qwen2", "tiny-llama"]
PROMPTS = [
    [2, 17, 301, 45],
    [2] + list(range(100, 112)),
    [2, 7, 7, 400, 33, 21, 9],
]  # 13 > window 8
MAX_NEW = 12
REF_LEN = 32  # full re-forwards use one padded length (causal: later slots do not matter)


def varied_params(config, seed=0):
  """Random params rescaled so greedy paths vary and next-token laws are not one-hot.

  (At init the residual stream is dominated by the input embedding, so a tied model just
  repeats its last token.)
  """
  params = dict(init_params(config, jax.random.key(seed)))
  if config.norm_offset:  # Gemma: tied; shrink the embedding, sharpen the final norm
    params["embedding"] = params["embedding"] * 0.05
    params["final_norm"] = {"scale": params["final_norm"]["scale"] + 4.0}
  else:
    params["embedding"] = params["embedding"] * 0.2
  return params


# Tests reuse a few shapes (prompt bucket 16, 16 new slots, 4 decode rows) so the compiled
# programs are shared: jitted functions are cached per (config, shapes), not per Sampler.


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
  config = get_config(request.param)
  params = varied_params(config)
  return config, params, Sampler(config, params)


@functools.lru_cache(maxsize=None)
def _full_logits_fn(config):
  @jax.jit
  def logits_at(params, tokens):  # tokens [1, REF_LEN] -> logits [REF_LEN, V]
    positions = jnp.arange(tokens.shape[1])[None]
    return compute_logits(params, forward(params, tokens, positions, None, config), config)[0]

  return logits_at


def reference_logits(config, params, prompt, generated):
  """Full-forward logits [len(generated), V] predicting each generated token."""
  seq = list(prompt) + list(generated)
  padded = np.zeros((1, REF_LEN), np.int32)
  padded[0, : len(seq)] = seq
  logits = np.asarray(_full_logits_fn(config)(params, jnp.asarray(padded)))
  return logits[len(prompt) - 1 : len(seq) - 1]


def reference_greedy(config, params, prompt, steps):
  fn = _full_logits_fn(config)
  seq = list(prompt)
  for _ in range(steps):
    padded = np.zeros((1, REF_LEN), np.int32)
    padded[0, : len(seq)] = seq
    seq.append(int(np.asarray(fn(params, jnp.asarray(padded)))[len(seq) - 1].argmax()))
  return seq[len(prompt) :]


def _log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_greedy_matches_full_reforwards(family):
  config, params, sampler = family
  out = sampler.generate(PROMPTS, max_new_tokens=MAX_NEW, temperature=0.0, eos_token_ids=())
  assert [c.prompt_index for c in out] == [0, 1, 2]
  for c, prompt in zip(out, PROMPTS):
    ref = reference_greedy(config, params, prompt, MAX_NEW)
    assert c.token_ids.tolist() == ref
    assert c.finish_reason == "length" and c.prompt_token_ids == tuple(prompt)
    logits = reference_logits(config, params, prompt, ref)
    ref_lp = _log_softmax(logits)[np.arange(MAX_NEW), ref]
    np.testing.assert_allclose(c.logprobs, ref_lp, atol=1e-4)
  assert len(set(tuple(c.token_ids) for c in out)) == 3


def test_sampled_logprobs_are_tempered_log_softmax(family):
  config, params, sampler = family
  temperature = 0.7
  out = sampler.generate(
      PROMPTS[:2],
      max_new_tokens=MAX_NEW,
      temperature=temperature,
      top_k=50,
      n=2,
      seed=3,
      eos_token_ids=(),
  )
  assert len(out) == 4
  for c in out:
    prompt = PROMPTS[c.prompt_index]
    logits = reference_logits(config, params, prompt, c.token_ids)
    ref = _log_softmax(logits / temperature)[np.arange(MAX_NEW), c.token_ids]
    np.testing.assert_allclose(c.logprobs, ref, atol=1e-4)
    # Every sampled token lies in the top 50 of its step.
    ranks = (logits > logits[np.arange(MAX_NEW), c.token_ids][:, None]).sum(-1)
    assert ranks.max() < 50


def test_top_k_one_and_a_tiny_nucleus_are_greedy_with_tempered_logprobs(family):
  """top_k and top_p reach the token sampler: keeping one candidate is greedy decoding at
  any temperature, and the log-probs stay those of the tempered full distribution."""
  config, params, sampler = family
  greedy = sampler.generate(PROMPTS, max_new_tokens=MAX_NEW, temperature=0.0, eos_token_ids=())
  temperature = 1.5
  for knobs in (dict(top_k=1), dict(top_p=1e-6)):
    out = sampler.generate(
        PROMPTS, max_new_tokens=MAX_NEW, temperature=temperature, seed=5, eos_token_ids=(), **knobs
    )
    for c, g in zip(out, greedy):
      assert c.token_ids.tolist() == g.token_ids.tolist(), knobs
      logits = reference_logits(config, params, PROMPTS[c.prompt_index], c.token_ids)
      ref = _log_softmax(logits / temperature)[np.arange(MAX_NEW), c.token_ids]
      np.testing.assert_allclose(c.logprobs, ref, atol=1e-4)
  # Without them the same call samples other tokens (the check above can tell).
  free = sampler.generate(
      PROMPTS, max_new_tokens=MAX_NEW, temperature=temperature, seed=5, eos_token_ids=()
  )
  assert [c.token_ids.tolist() for c in free] != [g.token_ids.tolist() for g in greedy]


def test_seed_controls_randomness(family):
  _, _, sampler = family
  kw = dict(max_new_tokens=8, temperature=1.0, eos_token_ids=())
  a = sampler.generate(PROMPTS, seed=1, **kw)
  b = sampler.generate(PROMPTS, seed=1, **kw)
  c = sampler.generate(PROMPTS, seed=2, **kw)
  assert [x.token_ids.tolist() for x in a] == [x.token_ids.tolist() for x in b]
  assert [x.token_ids.tolist() for x in a] != [x.token_ids.tolist() for x in c]


def char_tokenizer(vocab_size=512):
  """A real `Tokenizer` over a toy alphabet: id -> one letter (id % 26), eos 1."""
  letters = "abcdefghijklmnopqrstuvwxyz"
  return Tokenizer(
      name="chars",
      vocab_size=vocab_size,
      specials={},
      encode_plain=lambda text: [letters.index(ch) + 26 for ch in text],
      decode_ids=lambda ids, skip: "".join("" if skip and i == 1 else letters[i % 26] for i in ids),
      bos_id=2,
      eos_id=1,
      pad_id=0,
  )


@pytest.fixture(scope="module")
def gemma():
  config = get_config("tiny-gemma3")
  params = varied_params(config)
  return (
      config,
      params,
      Sampler(
          config, params, char_tokenizer(), sampler_config=SamplerConfig(stop_check_interval=4)
      ),
  )


@pytest.mark.slow  # one more compile (4096 rows); the token-level tests cover the laws
def test_first_token_distribution_matches_full_forward(gemma):
  """n samples of one prompt: the empirical law of the first token vs the analytic one."""
  config, params, sampler = gemma
  prompt = PROMPTS[1]
  logits = reference_logits(config, params, prompt, [0])[0]
  for temperature, top_k, top_p in ((1.0, 0, 1.0), (0.8, 0, 0.9), (1.2, 30, 0.95)):
    out = sampler.generate(
        [prompt],
        max_new_tokens=1,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        n=4096,
        seed=11,
        eos_token_ids=(),
    )
    samples = np.array([c.token_ids[0] for c in out])
    expected = reference_distribution(logits, temperature, top_k, top_p)
    assert chi_square_pvalue(samples, expected) > 1e-3, (temperature, top_k, top_p)


def test_n_samples_prefill_once_and_greedy_rows_agree(gemma):
  config, params, sampler = gemma
  out = sampler.generate(PROMPTS[:2], max_new_tokens=6, temperature=0.0, n=2, eos_token_ids=())
  assert sampler.last_stats["prompt_rows"] == 2 and sampler.last_stats["decode_rows"] == 4
  assert [(c.prompt_index, c.sample_index) for c in out] == [
      (p, s) for p in range(2) for s in range(2)
  ]
  for c in out:
    assert c.token_ids.tolist() == reference_greedy(config, params, PROMPTS[c.prompt_index], 6)


def test_stop_token_and_eos_end_rows_and_the_loop_early(gemma):
  config, params, sampler = gemma
  ref = reference_greedy(config, params, PROMPTS[1], MAX_NEW)
  stop_at = next(i for i in range(2, MAX_NEW) if ref[i] not in ref[:i])
  out = sampler.generate(
      [PROMPTS[1]],
      max_new_tokens=MAX_NEW,
      temperature=0.0,
      n=4,
      stop_token_ids=[ref[stop_at]],
      eos_token_ids=(),
  )
  for c in out:
    assert c.finish_reason == "stop"
    assert c.token_ids.tolist() == ref[: stop_at + 1]
    assert len(c.logprobs) == stop_at + 1
    assert c.text == char_tokenizer().decode(ref[:stop_at])  # without the stop token
  assert sampler.last_stats["decode_steps"] == stop_at + 1  # early exit
  out = sampler.generate(
      [PROMPTS[1]], max_new_tokens=MAX_NEW, temperature=0.0, n=4, eos_token_ids=[ref[stop_at]]
  )
  assert out[0].finish_reason == "eos" and out[0].token_ids.tolist() == ref[: stop_at + 1]
  # Rows stop independently: sampled rows end at their own stop token or at the limit.
  out = sampler.generate(
      PROMPTS,
      max_new_tokens=MAX_NEW,
      temperature=1.0,
      seed=0,
      eos_token_ids=(),
      stop_token_ids=[ref[stop_at]],
  )
  for c in out:
    ids = c.token_ids.tolist()
    if c.finish_reason == "stop":
      assert ids[-1] == ref[stop_at] and ref[stop_at] not in ids[:-1]
    else:
      assert c.finish_reason == "length" and len(ids) == MAX_NEW


def test_stop_strings_cut_text_and_tokens(gemma):
  config, params, sampler = gemma
  ref = reference_greedy(config, params, PROMPTS[2], MAX_NEW)
  text = char_tokenizer().decode(ref)
  stop = text[5:7]
  first = text.find(stop)
  out = sampler.generate(
      [PROMPTS[2]],
      max_new_tokens=MAX_NEW,
      temperature=0.0,
      n=4,
      stop=[stop, "zzzzz"],
      eos_token_ids=(),
  )
  for c in out:
    assert c.finish_reason == "stop"
    assert c.text == text[:first]
    assert c.token_ids.tolist() == ref[: first + len(stop)]  # through the completing token
  assert sampler.last_stats["decode_steps"] <= first + len(stop) + 4  # checked every 4
  # The stop string completes on the very last allowed token: still "stop", still cut.
  out = sampler.generate(
      [PROMPTS[2]],
      max_new_tokens=first + len(stop),
      temperature=0.0,
      n=4,
      stop=[stop],
      eos_token_ids=(),
  )
  assert out[0].finish_reason == "stop" and out[0].text == text[:first]
  with pytest.raises(ValueError, match="non-empty"):
    sampler.generate([PROMPTS[2]], max_new_tokens=4, stop=[""])


def test_on_finished_reports_each_completion_once_as_soon_as_it_is_final(gemma):
  """Rows that finish in an early segment are handed over while later segments still
  decode; every completion exactly once, the returned objects themselves, and nothing
  generated differs from a call without the callback."""
  config, params, sampler = gemma
  ref = reference_greedy(config, params, PROMPTS[1], MAX_NEW)
  stop_at = next(i for i in range(2, MAX_NEW) if ref[i] not in ref[:i])
  kwargs = dict(  # greedy: prompt 1's rows stop at ref[stop_at], the others run to the end
      max_new_tokens=MAX_NEW,
      temperature=0.0,
      n=2,
      eos_token_ids=(),
      stop_token_ids=[ref[stop_at]],
      stop=["zzzzz"],  # stop strings: the decode runs in segments of 4 steps
  )
  calls = []
  out = sampler.generate(PROMPTS, on_finished=calls.append, **kwargs)
  plain = sampler.generate(PROMPTS, **kwargs)
  assert [(c.token_ids.tolist(), c.logprobs.tolist(), c.text, c.finish_reason) for c in out] == [
      (c.token_ids.tolist(), c.logprobs.tolist(), c.text, c.finish_reason) for c in plain
  ]
  reported = [c for call in calls for c in call]
  assert sorted(map(id, reported)) == sorted(map(id, out))  # each one once, same objects
  # Prompt 1's two rows come first, alone, after the segment they stopped in; the other
  # four at the end.
  assert stop_at + 1 <= 4 < MAX_NEW
  assert [
      [(c.prompt_index, c.finish_reason, len(c.token_ids)) for c in call] for call in calls
  ] == [
      [(1, "stop", stop_at + 1)] * 2,
      [(0, "length", MAX_NEW)] * 2 + [(2, "length", MAX_NEW)] * 2,
  ]


def test_repeated_calls_do_not_recompile():
  config = get_config("tiny-llama", max_position=4096)  # a config no other test compiles
  sampler = Sampler(config, varied_params(config))
  before = dict(TRACE_COUNTS)
  first = sampler.generate([[1, 2, 3], [4, 5, 6, 7, 8], [6]], max_new_tokens=10, temperature=0.0)
  counts = dict(TRACE_COUNTS)
  delta = {k: counts[k] - before.get(k, 0) for k in counts}
  assert delta["prefill"] == 1 and delta["decode"] == 1  # start_decode has no config:
  assert delta.get("start_decode", 0) <= 1  # another test may have compiled its shapes
  # Same buckets (lengths <= 16, 3-4 prompts -> 4 rows, <= 16 new tokens), new knobs.
  sampler.generate(
      [[1, 2], [3] * 16, [9, 9]],
      max_new_tokens=16,
      temperature=0.9,
      top_p=0.8,
      top_k=7,
      stop_token_ids=[5, 6],
      seed=4,
  )
  sampler.generate(
      [[7] * 9, [1], [2], [3]], max_new_tokens=3, temperature=1.3, seed=5, eos_token_ids=[0]
  )
  new_params = varied_params(config, seed=1)
  sampler.update_params(new_params)
  updated = sampler.generate([[1, 2, 3], [4, 5, 6, 7, 8], [6]], max_new_tokens=10, temperature=0.0)
  assert dict(TRACE_COUNTS) == counts
  # A second sampler of the same model shares the compiled programs.
  fresh = Sampler(config, new_params).generate(
      [[1, 2, 3], [4, 5, 6, 7, 8], [6]], max_new_tokens=10, temperature=0.0
  )
  assert dict(TRACE_COUNTS) == counts
  assert [c.token_ids.tolist() for c in updated] == [c.token_ids.tolist() for c in fresh]
  assert [c.token_ids.tolist() for c in updated] != [c.token_ids.tolist() for c in first]
  # A new bucket compiles once more.
  sampler.generate([[1] * 20], max_new_tokens=4, temperature=0.0)
  assert TRACE_COUNTS["prefill"] == counts["prefill"] + 1
  with pytest.raises(ValueError, match="structure or shapes"):
    sampler.update_params(varied_params(get_config("tiny-qwen2")))


def test_sharded_mesh_matches_single_device():
  if jax.device_count() < 8:
    pytest.skip("needs 8 (fake) devices")
  config = get_config("tiny-qwen2")
  params = varied_params(config)
  mesh = sharding.make_mesh((2, 2, 2))
  single = Sampler(config, params)
  sharded = Sampler(config, params, mesh=mesh)
  # One shape (4 rows, as in the tests above, so the 1-device program is cached).
  kw = dict(max_new_tokens=MAX_NEW, eos_token_ids=(), temperature=1.0, seed=7)
  a = single.generate(PROMPTS, **kw)
  b = sharded.generate(PROMPTS, **kw)
  assert [c.token_ids.tolist() for c in a] == [c.token_ids.tolist() for c in b]
  for x, y in zip(a, b):
    np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-4)
  assert sharded.last_stats["decode_rows"] % 4 == 0
  assert sharded.params["layers"]["mlp"]["up_proj"].sharding.spec[-1] == "tensor"


def test_weights_are_cast_to_the_compute_dtype_once_and_survive_donation():
  """bfloat16 compute with float32 master weights: the sampler holds bfloat16 matrices of
  its own (1-D norm scales and biases stay float32), so deleting the learner's float32
  buffers (a donating train step) leaves its matrices alive; float32 compute shares the
  learner's arrays, no copy."""
  params = jax.tree.map(jnp.asarray, varied_params(get_config("tiny-qwen2")))
  shared = Sampler(get_config("tiny-qwen2"), params)
  assert shared.params["lm_head"].unsafe_buffer_pointer() == (
      params["lm_head"].unsafe_buffer_pointer()
  )
  sampler = Sampler(get_config("tiny-qwen2", dtype="bfloat16"), params)
  for path, x in jax.tree_util.tree_leaves_with_path(sampler.params):
    assert x.dtype == (jnp.bfloat16 if x.ndim >= 2 else jnp.float32), path
  for x in jax.tree.leaves(params):
    x.delete()
  matrices = [x for x in jax.tree.leaves(sampler.params) if x.ndim >= 2]
  assert matrices and not any(x.is_deleted() for x in matrices)


def test_bad_arguments_raise_clear_errors(gemma):
  config, params, _ = gemma
  sampler = Sampler(config, params)  # no tokenizer
  with pytest.raises(ValueError, match="max_new_tokens"):
    sampler.generate([[1]], max_new_tokens=0)
  with pytest.raises(ValueError, match="top_k"):
    sampler.generate([[1]], max_new_tokens=2, top_k=10_000)
  with pytest.raises(ValueError, match="top_p"):
    sampler.generate([[1]], max_new_tokens=2, top_p=0.0)
  with pytest.raises(ValueError, match="empty"):
    sampler.generate([[]], max_new_tokens=2)
  with pytest.raises(ValueError, match="outside"):
    sampler.generate([[10_000]], max_new_tokens=2)
  with pytest.raises(ValueError, match="tokenizer"):
    sampler.generate(["text"], max_new_tokens=2)
  with pytest.raises(TypeError):
    sampler.generate("text", max_new_tokens=2)


def test_buckets():
  assert [length_bucket(n) for n in (1, 16, 17, 100, 320, 321, 1000)] == [
      16,
      16,
      32,
      112,
      320,
      384,
      1024,
  ]
  assert [batch_bucket(n) for n in (1, 3, 4, 5, 32, 33)] == [1, 4, 4, 8, 32, 64]
  assert batch_bucket(3, shards=4) == 4 and batch_bucket(5, shards=4) == 8
  tokens, positions, valid, lengths = left_pad([[5, 6], [7, 8, 9]], 3, 4, pad_id=0)
  np.testing.assert_array_equal(tokens, [[0, 0, 5, 6], [0, 7, 8, 9], [0, 0, 5, 6]])
  np.testing.assert_array_equal(positions, [[0, 0, 0, 1], [0, 0, 1, 2], [0, 0, 0, 1]])
  np.testing.assert_array_equal(valid[1], [False, True, True, True])
  np.testing.assert_array_equal(lengths, [2, 3, 2])


class _ShortTokenizer:
  """Knows ids 0..9 only (as a tokenizer smaller than a padded embedding)."""

  vocab_size = 10

  def decode(self, ids):
    assert all(0 <= i < self.vocab_size for i in ids), ids
    return "".join(chr(ord("a") + i) for i in ids)


def test_ids_past_the_tokenizer_vocabulary_have_no_text(gemma):
  # A model whose embedding has more rows than its tokenizer can sample those ids at T > 0;
  # the text leaves them out instead of failing the whole generate call.
  config, params, _ = gemma
  sampler = Sampler(config, params, _ShortTokenizer())
  assert sampler._decode_text([0, 2, 11, 3, 40]) == "acd"
