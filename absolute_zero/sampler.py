"""Batched generation for the policy: `Sampler.generate(prompts, ...) -> list[Completion]`.

Host side of the rollout engine. It tokenises, groups and left-pads prompts into shape
buckets, runs the jitted prefill once per distinct prompt, replicates the cache to `n`
samples, runs the `lax.while_loop` decode (`absolute_zero.sampling.decode`) over the
donated cache, and turns the result into per-sample `Completion`s.

Everything that varies between calls is either a bucketed shape (prompt length, batch rows,
new-token budget) or a traced value (temperature, top-p, top-k, max new tokens, stop ids,
PRNG key), so a training loop calling `generate` repeatedly compiles a handful of programs
once (`TRACE_COUNTS` counts them). `update_params` swaps in new weights without recompiling.

Stop strings are matched on the host: with stop strings the decode runs in segments of
`stop_check_interval` steps, and rows whose text contains a stop string are finished
between segments, so generation still ends early.

Multi-process (one process per host, same program everywhere): batch inputs are placed
with `distributed.put_global` and every array fetched to the host goes through
`distributed.to_host`, which gathers rows held by other hosts, so every process gets the
whole batch of completions (identical everywhere) and makes the same host-side decisions.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any, Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from absolute_zero import distributed, sharding
from absolute_zero.models import hf_layout
from absolute_zero.models.config import ModelConfig
from absolute_zero.buckets import batch_bucket, length_bucket
from absolute_zero.models.transformer import ring_slots
from absolute_zero.sampling import decode as dec
from absolute_zero.sampling.padding import left_pad
from absolute_zero.sampling.token_sampling import SamplingKnobs

FinishReason = Literal["eos", "stop", "length"]

# How many times each device program was traced (= compiled), over all samplers. The
# jitted functions are module-level with the config as a static argument, so samplers of
# the same model (e.g. one rebuilt after training) share compiled programs.
TRACE_COUNTS: collections.Counter[str] = collections.Counter()


def _counted(name: str, fn):
  """fn, counting each trace in TRACE_COUNTS (side effects run only while tracing)."""

  @functools.wraps(fn)
  def traced(*args, **kwargs):
    TRACE_COUNTS[name] += 1
    return fn(*args, **kwargs)

  return traced


def _load_malloc_trim():
  """glibc's `malloc_trim`, or None (another C library, or no ctypes)."""
  try:
    import ctypes

    trim = ctypes.CDLL("libc.so.6").malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
  except (OSError, AttributeError, ImportError):
    return None


_MALLOC_TRIM = _load_malloc_trim()


def _release_freed_host_memory() -> None:
  """Hands the memory a generate call freed back to the OS (glibc `malloc_trim(0)`).

  On CPU the device buffers are host memory, and the one-device decode cache is one
  array per layer (18 MiB each for Gemma 3 270M at batch 32 x 576 slots): below glibc's
  mmap threshold (32 MiB), so once freed they stay in glibc's heap instead of going back
  to the OS. Measured with the bench_sampler shapes: 1,057 MiB sat free in glibc after the
  compile call; trimming after it took the resident size from 2,486 to 1,498 MiB and the
  next call's peak to 2,562 MiB. A no-op where glibc is absent.
  """
  if _MALLOC_TRIM is not None and jax.default_backend() == "cpu":
    _MALLOC_TRIM(0)


_STATIC = ("config", "mesh", "rules")
_prefill_jit = jax.jit(_counted("prefill", dec.prefill), static_argnames=_STATIC)
_replicate_jit = jax.jit(
    _counted("replicate_slots", dec.replicate_slots),
    static_argnames=("new_slots", "mesh", "rules", "layer_slots"),
)
_start_jit = jax.jit(  # k and v (replicated already) become the state's cache in place
    _counted("start_decode", dec.start_decode),
    donate_argnums=(0, 1),
    static_argnames=("new_slots", "mesh", "rules"),
)
_decode_jit = jax.jit(
    _counted("decode", dec.decode),
    donate_argnums=(1,),
    static_argnames=_STATIC + ("num_candidates", "block_size"),
)
_FINISH_NAMES = {dec.FINISH_EOS: "eos", dec.FINISH_STOP: "stop", dec.FINISH_LENGTH: "length"}


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """Fixed (compile-time) choices of a sampler; per-call knobs go to `generate`."""

  max_rows: int = 256  # decode rows per device program; more prompts run in groups
  num_candidates: int = 256  # top-k/top-p candidate set; top_k must be <= this
  block_size: int | None = None  # two-level sampler block; None: ~sqrt(vocab)
  max_stop_ids: int = 8  # room for EOS ids and stop ids (each), padded with -1
  min_length_bucket: int = 16
  # Fixed new-token buckets (the smallest >= max_new_tokens is used); empty: automatic.
  # A training loop can pin one value so every call shares one decode program.
  new_token_buckets: tuple[int, ...] = ()
  stop_check_interval: int = 16  # decode steps between host stop-string checks


@dataclasses.dataclass(frozen=True)
class Completion:
  """One sample for one prompt.

  token_ids/logprobs run through the token that ended the sample (the EOS or stop id, or
  the token that completed a stop string); `text` is their decoding without that EOS/stop
  token and cut just before a stop string. logprobs[i] = log_softmax(logits / T)[token_ids[i]]
  (T = 1 for greedy), the quantity the learner recomputes.
  """

  prompt_index: int
  sample_index: int
  prompt_token_ids: tuple[int, ...]
  token_ids: np.ndarray  # [n] int32
  logprobs: np.ndarray  # [n] float32
  text: str
  finish_reason: FinishReason


@functools.partial(jax.jit, static_argnums=1)
def _cast_matrices(params: Any, dtype) -> Any:
  return jax.tree.map(lambda x: x.astype(dtype) if x.ndim >= 2 else x, params)


def _to_compute_dtype(params: Any, dtype) -> Any:
  """Weight matrices (ndim >= 2) in the compute dtype, cast once per update.

  The model casts every matrix to the compute dtype where it uses it, so decoding with
  pre-cast matrices computes the same thing, without re-reading float32 master weights
  (twice the bytes) at every decode step. Norm scales and biases (1-D) keep their dtype
  (RMSNorm works in float32). With bfloat16 compute the sampler so holds a bfloat16 copy
  of its own (half the learner's float32 weights; the learner's buffers may be donated);
  when the dtypes already agree nothing is cast and the learner's arrays are shared.
  """
  leaves = jax.tree.leaves(params)
  if all(np.ndim(x) < 2 or x.dtype == dtype for x in leaves):
    return params
  return _cast_matrices(params, dtype)


def _adopted_layer_views(host_layers: Any, device_layers: Any) -> list | None:
  """Each layer's weights as device arrays that are views of the stacked host buffers.

  host_layers: the stacked layer tree a caller gave `update_params` (leaves [L, ...]);
  device_layers: the same placed on the device. Where every device leaf is the host
  buffer itself (the CPU client adopted a 64-byte-aligned numpy array: the loaders'
  `hf_layout.aligned_empty`), slice l of each leaf is a numpy view at an aligned offset,
  and the device adopts it too: a list of L per-layer trees (`split_layer_params`' layout)
  that costs no memory. None otherwise (jax.Arrays, e.g. a learner's, which donates them;
  a copy on placement; an accelerator), and the decode program slices its own copy per
  call (Gemma 3 270M in float32: 400 MB for the length of each call).

  Safe against donation: a device array that adopted host memory is never written by a
  program it is donated to (XLA allocates the outputs elsewhere; tests/test_sampler_memory.py
  donates such params and checks both sides).
  """
  host, treedef = jax.tree.flatten(host_layers)
  device = jax.tree.leaves(device_layers)
  if not all(
      isinstance(h, np.ndarray)
      and h.ndim >= 1
      and hf_layout.is_host_aligned(h)
      and h.strides[0] % hf_layout.HOST_ALIGNMENT == 0
      and d.is_fully_addressable
      and len(d.devices()) == 1
      and d.unsafe_buffer_pointer() == h.ctypes.data
      for h, d in zip(host, device)
  ):
    return None
  layers = []
  for i in range(host[0].shape[0]):
    views = [h[i] for h in host]
    placed = [jax.device_put(v, next(iter(d.devices()))) for v, d in zip(views, device)]
    if any(p.unsafe_buffer_pointer() != v.ctypes.data for p, v in zip(placed, views)):
      return None  # copied, not adopted: keep the per-call slice instead of a held copy
    layers.append(jax.tree.unflatten(treedef, placed))
  return layers


class Sampler:
  """Jitted, bucketed, optionally sharded generation for one model.

  Args:
    config: the model config.
    params: the model parameters (host or device arrays).
    tokenizer: an `absolute_zero.tokenizers.Tokenizer` (needed for str prompts, text output
      and default EOS ids); None is allowed for token-id prompts.
    mesh: a ('data','fsdp','tensor') mesh; params are placed with `rules` and the batch is
      split over data x fsdp. None: one device (`sharding.single_device_mesh`), through
      the same code.
    rules: logical-axis rules (default `SAMPLE_RULES`).
    sampler_config: fixed choices (buckets, candidate count, ...).
  """

  def __init__(
      self,
      config: ModelConfig,
      params: Any,
      tokenizer=None,
      mesh=None,
      rules=None,
      sampler_config: SamplerConfig | None = None,
  ):
    self.config = config
    self.tokenizer = tokenizer
    self.mesh = mesh = mesh if mesh is not None else sharding.single_device_mesh()
    self.rules = tuple(rules if rules is not None else sharding.SAMPLE_RULES)
    self.options = sampler_config or SamplerConfig()
    self._param_shardings = sharding.param_shardings(config, mesh, self.rules)
    self._batch_shards = sharding.data_parallel_size(mesh, self.rules)
    self._params_treedef = None
    self.params = None
    self.update_params(params)
    self._auto_key = jax.random.key(0)
    # Shapes, steps and seconds (compilation included on a first call) of the last group.
    self.last_stats: dict[str, float] = {}

    self._static = dict(config=config, mesh=mesh, rules=self.rules)
    self._decode_static = dict(
        num_candidates=self.options.num_candidates,
        block_size=self.options.block_size,
        **self._static,
    )

  # ------------------------------------------------------------------ params

  def update_params(self, params: Any) -> None:
    """Uses new weights from now on (same structure and shapes: no recompilation)."""
    treedef = jax.tree.structure(params)
    shapes = [tuple(x.shape) for x in jax.tree.leaves(params)]
    if self._params_treedef is not None:
      if treedef != self._params_treedef or shapes != self._params_shapes:
        raise ValueError(
            "update_params: new params differ in structure or shapes from the "
            "sampler's (a different model needs a new Sampler)"
        )
    self._params_treedef, self._params_shapes = treedef, shapes
    params = _to_compute_dtype(params, jnp.dtype(self.config.dtype))
    self.params = jax.tree.map(distributed.put_global, params, self._param_shardings)
    # What the decode loop takes: on one device, each layer's weights as separate arrays.
    # Where the stacked weights are host buffers the device adopted, these are views of
    # them (no copy); else the stacked weights, which the decode program slices (a copy)
    # once per call.
    self._decode_params = self.params
    if dec._per_layer(self.mesh):
      layers = _adopted_layer_views(params["layers"], self.params["layers"])
      if layers is not None:
        self._decode_params = dict(self.params, layers=layers)

  # ------------------------------------------------------------------ helpers

  def _batch_sharded(self, x: np.ndarray):
    return distributed.put_global(x, sharding.batch_sharding(self.mesh, self.rules, x.ndim))

  def _encode(self, prompts) -> list[list[int]]:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
      raise TypeError("prompts must be a list of str or a list of token-id lists")
    out = []
    for i, p in enumerate(prompts):
      if isinstance(p, str):
        if self.tokenizer is None:
          raise ValueError("str prompts need a tokenizer; pass token ids or a tokenizer")
        # Plain text: control-token texts in a prompt (from programs, model output, data)
        # stay characters. Only a chat template's TemplateText markers become control ids.
        ids = self.tokenizer.encode(p)
      else:
        ids = [int(t) for t in p]
      if not ids:
        raise ValueError(f"prompt {i} is empty (a prompt needs at least one token, e.g. BOS)")
      bad = [t for t in ids if not 0 <= t < self.config.vocab_size]
      if bad:
        raise ValueError(
            f"prompt {i} has token ids outside [0, {self.config.vocab_size}): " f"{bad[:5]}"
        )
      out.append(ids)
    return out

  def _id_array(self, ids: Sequence[int], what: str) -> jax.Array:
    ids = sorted({int(i) for i in ids})
    if len(ids) > self.options.max_stop_ids:
      raise ValueError(
          f"{len(ids)} {what} given; the sampler has room for "
          f"{self.options.max_stop_ids} (SamplerConfig.max_stop_ids)"
      )
    arr = np.full((self.options.max_stop_ids,), -1, np.int32)
    arr[: len(ids)] = ids
    return jnp.asarray(arr)

  def _new_token_bucket(self, max_new_tokens: int) -> int:
    fixed = [b for b in sorted(self.options.new_token_buckets) if b >= max_new_tokens]
    if fixed:
      return fixed[0]
    return length_bucket(max_new_tokens, self.options.min_length_bucket)

  def _decode_text(self, ids: Sequence[int]) -> str:
    """Text of sampled ids. Ids past the tokenizer's vocabulary (an embedding padded beyond
    it, e.g. Qwen2.5's 151,936 rows for 151,665 tokens) can be drawn at T > 0; they have
    no text and are left out of it (they stay in `token_ids` for the learner)."""
    if self.tokenizer is None:
      return ""
    vocab = self.tokenizer.vocab_size
    return self.tokenizer.decode([i for i in ids if 0 <= int(i) < vocab])

  # ------------------------------------------------------------------ generate

  def generate(
      self,
      prompts: Sequence[str] | Sequence[Sequence[int]],
      *,
      max_new_tokens: int,
      temperature: float = 1.0,
      top_p: float = 1.0,
      top_k: int = 0,
      n: int = 1,
      stop: Sequence[str] = (),
      stop_token_ids: Sequence[int] = (),
      eos_token_ids: Sequence[int] | None = None,
      seed: int | None = None,
      rng: jax.Array | None = None,
      on_finished: Callable[[list[Completion]], None] | None = None,
  ) -> list[Completion]:
    """Samples `n` completions per prompt; returns them prompt-major (prompt 0's n first).

    temperature 0 is greedy. top_k 0 and top_p 1 are off. `stop` are strings (matched on
    the decoded text), `stop_token_ids` end a sample with reason "stop"; `eos_token_ids`
    (default: the tokenizer's stop ids, e.g. EOS and end-of-turn) end it with "eos".
    Randomness: `rng` (a JAX key), else `seed`, else an internal key advanced every call.

    `on_finished(completions)`: called on this thread with the completions that became
    final, as soon as the host learns it (with stop strings: at the segment boundary where
    they finished, while later segments decode; the rest at the end of their group), each
    completion exactly once and before `generate` returns. The returned list holds the same
    objects, so a caller can start host work on early finishers (e.g. sandbox work) while
    the device decodes the others. It changes nothing in what is generated.
    """
    if max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if n < 1:
      raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < top_p <= 1.0:
      raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if not 0 <= top_k <= self.options.num_candidates:
      raise ValueError(
          f"top_k must be in [0, {self.options.num_candidates}] "
          f"(SamplerConfig.num_candidates), got {top_k}"
      )
    if temperature < 0:
      raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if isinstance(stop, str):
      stop = (stop,)
    if any(not isinstance(s, str) or not s for s in stop):
      raise ValueError(f"stop strings must be non-empty str, got {stop!r}")
    if stop and self.tokenizer is None:
      raise ValueError("stop strings need a tokenizer to decode text")
    if eos_token_ids is None:
      eos_token_ids = self.tokenizer.stop_ids if self.tokenizer is not None else ()
    encoded = self._encode(prompts)
    longest = max(len(p) for p in encoded)
    if longest + max_new_tokens > self.config.max_position:
      raise ValueError(
          f"prompt ({longest}) + max_new_tokens ({max_new_tokens}) exceeds the "
          f"model's max_position {self.config.max_position}"
      )
    if rng is None:
      if seed is not None:
        rng = jax.random.key(seed)
      else:
        self._auto_key, rng = jax.random.split(self._auto_key)

    settings = dec.DecodeSettings(
        knobs=SamplingKnobs.make(temperature, top_p, top_k),
        max_new_tokens=jnp.int32(max_new_tokens),
        eos_ids=self._id_array(eos_token_ids, "EOS ids"),
        stop_ids=self._id_array(stop_token_ids, "stop token ids"),
    )

    # Group prompts (sorted by length, so each group pads little) to <= max_rows rows.
    per_group = max(1, self.options.max_rows // n)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: dict[tuple[int, int], Completion] = {}
    for g, start in enumerate(range(0, len(order), per_group)):
      members = order[start : start + per_group]
      group_rng = jax.random.fold_in(rng, g)
      for c in self._generate_group(
          [encoded[i] for i in members],
          members,
          n,
          max_new_tokens,
          settings,
          tuple(stop),
          group_rng,
          on_finished,
      ):
        results[(c.prompt_index, c.sample_index)] = c
    return [results[(i, j)] for i in range(len(encoded)) for j in range(n)]

  def _generate_group(
      self,
      prompts: list[list[int]],
      indices: list[int],
      n: int,
      max_new_tokens: int,
      settings: dec.DecodeSettings,
      stop: tuple[str, ...],
      rng: jax.Array,
      on_finished: Callable[[list[Completion]], None] | None = None,
  ) -> list[Completion]:
    prompt_len = length_bucket(max(len(p) for p in prompts), self.options.min_length_bucket)
    new_slots = self._new_token_bucket(max_new_tokens)
    prompt_rows = batch_bucket(len(prompts), self._batch_shards)
    decode_rows = batch_bucket(len(prompts) * n, self._batch_shards)
    pad_id = 0
    if self.tokenizer is not None and self.tokenizer.pad_id is not None:
      pad_id = self.tokenizer.pad_id

    tokens, positions, valid, lengths = left_pad(prompts, prompt_rows, prompt_len, pad_id)
    start_time = time.perf_counter()
    last_hidden, cache = _prefill_jit(
        self.params,
        self._batch_sharded(tokens),
        self._batch_sharded(positions),
        self._batch_sharded(valid),
        **self._static,
    )
    last_hidden.block_until_ready()  # only for the timing: decode needs it anyway
    prefill_time = time.perf_counter() - start_time

    real = len(prompts) * n
    row_prompt = np.zeros((decode_rows,), np.int32)
    row_prompt[:real] = np.repeat(np.arange(len(prompts)), n)
    row_is_real = np.arange(decode_rows) < real
    row_prompt_device = jnp.asarray(row_prompt)

    def replicate(kv: jax.Array):
      out = _replicate_jit(
          kv,
          row_prompt_device,
          new_slots=new_slots,
          mesh=self.mesh,
          rules=self.rules,
          layer_slots=ring_slots(self.config, prompt_len + new_slots),
      )
      return jax.block_until_ready(out)

    # Keys, then values, replicated to the decode rows: each prefill array is freed (last
    # reference dropped, its copy waited for) before the next copy is allocated, so the
    # prefill cache and the decode cache never exist whole side by side (Gemma 3 270M at
    # 32 rows x (320 + 256) slots: 180 MiB off the peak). start_decode takes k and v
    # donated: they become the decode state's cache without another copy.
    k, cache = replicate(cache.k), cache._replace(k=None)
    v, cache = replicate(cache.v), cache._replace(v=None)
    state = _start_jit(
        k,
        v,
        cache.positions,
        cache.valid,
        last_hidden,
        row_prompt_device,
        jnp.asarray(lengths[row_prompt]),
        jnp.asarray(row_is_real),
        rng,
        new_slots=new_slots,
        mesh=self.mesh,
        rules=self.rules,
    )
    del cache, last_hidden, k, v

    stop_cut: dict[int, int] = {}  # row -> number of tokens through the stop string's end
    real_rows = np.arange(decode_rows) < real
    eos_set = {int(i) for i in np.asarray(settings.eos_ids) if i >= 0}
    stop_id_set = {int(i) for i in np.asarray(settings.stop_ids) if i >= 0}

    def completion(r: int, tokens, logprobs, generated, finish) -> Completion:
      p = r // n
      count = int(generated[r])
      code = int(finish[r])
      if code == dec.RUNNING:  # cannot happen after the loop; be explicit if it does
        raise RuntimeError(f"decode row {r} did not finish")
      ids = tokens[r, :count]
      text_ids = ids
      if r in stop_cut:
        ids = ids[: stop_cut[r]]
        text_ids = ids
      elif (
          code in (dec.FINISH_EOS, dec.FINISH_STOP)
          and count
          and (int(ids[-1]) in eos_set or int(ids[-1]) in stop_id_set)
      ):
        text_ids = ids[:-1]
      text = self._decode_text(text_ids) if self.tokenizer is not None else ""
      if r in stop_cut:
        text = _cut_at_stop(text, stop)
      return Completion(
          prompt_index=indices[p],
          sample_index=r % n,
          prompt_token_ids=tuple(prompts[p]),
          token_ids=ids.astype(np.int32).copy(),
          logprobs=logprobs[r, : len(ids)].astype(np.float32).copy(),
          text=text,
          finish_reason=_FINISH_NAMES[code],
      )

    early: dict[int, Completion] = {}  # row -> completion reported between segments
    if not stop:
      state = _decode_jit(
          self._decode_params, state, settings, jnp.int32(max_new_tokens), **self._decode_static
      )
    else:
      step = 0
      # Host fetches go through distributed.to_host: with several processes the rows are
      # spread over hosts and are gathered first (every process then sees every row and
      # makes the same stop-string decisions).
      unchecked = distributed.to_host(state.finish) != dec.PADDING_ROW  # end unknown
      while step < max_new_tokens:
        step = min(step + self.options.stop_check_interval, max_new_tokens)
        state = _decode_jit(
            self._decode_params, state, settings, jnp.int32(step), **self._decode_static
        )
        tokens, generated, finish = distributed.to_host(
            (state.tokens, state.num_generated, state.finish)
        )
        # Rows still running, and rows that ended (EOS, stop id, length) in this segment:
        # a stop string before their end wins.
        newly = self._match_stop_strings(tokens, generated, unchecked, stop, stop_cut)
        unchecked = finish == dec.RUNNING
        if newly:
          finish = finish.copy()
          finish[newly] = dec.FINISH_STOP
          unchecked[newly] = False
          state = state._replace(finish=distributed.put_global(finish, state.finish.sharding))
        if not np.any(finish == dec.RUNNING):
          break
        # Rows final now (finished, stop strings checked), reported while the rest decode.
        final = np.nonzero(real_rows & (finish != dec.RUNNING))[0]
        done = [int(r) for r in final if int(r) not in early]
        if on_finished is not None and done:
          logprobs = distributed.to_host(state.logprobs)
          batch = [completion(r, tokens, logprobs, generated, finish) for r in done]
          early.update(zip(done, batch))
          on_finished(batch)

    decode_steps = int(distributed.to_host(state.step))  # waits for the decode
    self.last_stats = dict(
        prompt_bucket=prompt_len,
        prompt_rows=prompt_rows,
        decode_rows=decode_rows,
        new_token_bucket=new_slots,
        decode_steps=decode_steps,
        prefill_seconds=prefill_time,
        decode_seconds=time.perf_counter() - start_time - prefill_time,
    )
    out_tokens, out_logprobs, generated, finish = distributed.to_host(
        (state.tokens, state.logprobs, state.num_generated, state.finish)
    )
    del state
    _release_freed_host_memory()
    completions = [
        early[r] if r in early else completion(r, out_tokens, out_logprobs, generated, finish)
        for r in range(real)
    ]
    if on_finished is not None:
      rest = [c for r, c in enumerate(completions) if r not in early]
      if rest:
        on_finished(rest)
    return completions

  def _match_stop_strings(
      self,
      tokens: np.ndarray,
      generated: np.ndarray,
      rows: np.ndarray,
      stop: tuple[str, ...],
      stop_cut: dict[int, int],
  ) -> list[int]:
    """Rows (a [B] mask) whose text contains a stop string; records where to cut them."""
    newly = []
    for r in np.nonzero(rows)[0]:
      count = int(generated[r])
      text = self._decode_text(tokens[r, :count])
      if not any(s in text for s in stop):
        continue
      # The shortest token prefix whose text contains a stop string.
      cut = count
      for j in range(1, count + 1):
        if any(s in self._decode_text(tokens[r, :j]) for s in stop):
          cut = j
          break
      stop_cut[int(r)] = cut
      newly.append(int(r))
    return newly


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
  """text up to (not including) the earliest stop string."""
  cuts = [text.find(s) for s in stop if s in text]
  return text[: min(cuts)] if cuts else text
