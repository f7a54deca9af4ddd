"""Every knob of a self-play run's config dataclasses as an absl flag, from one table.

`KNOBS` lists (flag, config section, field, help, demo default). `define_flags()` defines
the flags, grouped for `--helpfull` (absl lists flags by defining module; the group names
below sort before absl's own); `build_configs()` turns parsed flags back into the frozen
dataclasses. A field that has no flag is listed in `NOT_FLAGS` with the reason, and
`tests/test_cli_azr.py` checks that every field of every section is one or the other, so
a knob added to a config without a flag fails a test.

Defaults: the dataclasses hold the reference's values (spec §5–6); where the command
line's small CPU demonstration uses another value, the table gives it and the help names
the reference value.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from absl import flags

from absolute_zero.learner import LearnerConfig
from absolute_zero.sandbox import SandboxLimits
from absolute_zero.selfplay.selfplay_config import SelfPlayConfig, parse_task_types
from absolute_zero.tasks.parsers import ParseConfig
from absolute_zero.tasks.prompts import PromptConfig
from absolute_zero.tasks.rewards import RewardConfig
from absolute_zero.tasks.validators import ValidatorConfig

FLAGS = flags.FLAGS

SECTIONS = {
    "selfplay": SelfPlayConfig,
    "learner": LearnerConfig,
    "prompts": PromptConfig,
    "parsing": ParseConfig,
    "validation": ValidatorConfig,
    "rewards": RewardConfig,
    "sandbox": SandboxLimits,
}

# --helpfull groups (absl sorts group names; digits sort before absl's own modules).
G_RUN = "1 run (key flags)"
G_ROLLOUT = "2 rollouts and prompts"
G_LEARNER = "3 learner"
G_REWARD = "4 rewards, parsing and validation"
G_SANDBOX = "5 sandbox"

_FIELD_DEFAULT = object()


@dataclasses.dataclass(frozen=True)
class Knob:
  flag: str
  section: str
  field: str
  help: str
  group: str
  default: Any = _FIELD_DEFAULT  # the command line's default if not the dataclass's
  choices: tuple[str, ...] | None = None  # enum flags


def _k(flag, section, field, group, help, default=_FIELD_DEFAULT, choices=None) -> Knob:
  return Knob(flag, section, field, help, group, default, choices)


KNOBS: tuple[Knob, ...] = (
    # ---- run: what is trained, batch sizes, seeds
    _k(
        "task_types",
        "selfplay",
        "task_types",
        G_RUN,
        "Task types to propose and solve (ablation): any of deduction, abduction, induction "
        "(reference names code_o, code_i, code_f also work).",
    ),
    _k(
        "train_proposer",
        "selfplay",
        "train_proposer",
        G_RUN,
        "Train the proposer role too (false: solver only).",
    ),
    _k(
        "batch_size",
        "selfplay",
        "batch_size",
        G_RUN,
        "Tasks per (task type, role) per step; a group needs >= 2 rows for a nonzero "
        "task-relative advantage (reference 64).",
        default=5,
    ),
    _k(
        "seed",
        "selfplay",
        "seed",
        G_RUN,
        "Run seed: sampling keys and buffer draws derive from (seed, step).",
    ),
    _k(
        "learning_rate",
        "learner",
        "learning_rate",
        G_RUN,
        "AdamW learning rate (constant); "
        "0 freezes the policy (no gradients: the control arm of experiments.learning_check).",
    ),
    # ---- rollouts and prompts
    _k(
        "n_solver_samples",
        "selfplay",
        "n_solver_samples",
        G_ROLLOUT,
        "Solver samples per new valid proposal to estimate its solve rate (reference 8).",
        default=2,
    ),
    _k(
        "num_references",
        "selfplay",
        "num_references",
        G_ROLLOUT,
        "Reference triplets shown to deduction/abduction proposers (reference 6).",
        default=1,
    ),
    _k(
        "num_induction_inputs",
        "selfplay",
        "num_induction_inputs",
        G_ROLLOUT,
        "Inputs asked of the induction proposer; the prompt asks for this many and the "
        "parser requires them (reference 10).",
        default=4,
    ),
    _k(
        "seed_batch_factor",
        "selfplay",
        "seed_batch_factor",
        G_ROLLOUT,
        "Seeding from the zero triplet fills every buffer to batch_size x this (reference "
        "4; the built-in seed dataset already fills batch_size x 1).",
        default=1,
    ),
    _k(
        "max_seed_rounds",
        "selfplay",
        "max_seed_rounds",
        G_ROLLOUT,
        "Stop seeding from the zero triplet after this many proposer rounds (reference: "
        "until full; 0 skips it, e.g. with --seed_dataset).",
        default=2,
    ),
    _k(
        "max_prompt_tokens",
        "selfplay",
        "max_prompt_tokens",
        G_ROLLOUT,
        "Prompt budget in tokens; proposer references shrink to fit (reference 6144).",
        default=2048,
    ),
    _k(
        "max_proposer_tokens",
        "selfplay",
        "max_proposer_tokens",
        G_ROLLOUT,
        "New tokens per proposal (reference 8096).",
        default=64,
    ),
    _k(
        "max_solver_tokens",
        "selfplay",
        "max_solver_tokens",
        G_ROLLOUT,
        "New tokens per answer (reference 8096).",
        default=48,
    ),
    _k(
        "temperature",
        "selfplay",
        "temperature",
        G_ROLLOUT,
        "Sampling temperature; the learner's log-probs use the same.",
    ),
    _k("top_p", "selfplay", "top_p", G_ROLLOUT, "Nucleus sampling threshold (1: off)."),
    _k(
        "solver_task_strategy",
        "selfplay",
        "solver_task_strategy",
        G_ROLLOUT,
        "How solver tasks are drawn from a buffer: newest first, or uniformly.",
        choices=("max_new", "uniform"),
    ),
    _k(
        "open_answer",
        "prompts",
        "open_answer",
        G_ROLLOUT,
        "End every prompt with an opened answer block, so the model writes the payload "
        "directly (small base models rarely open it themselves; skips reasoning before the "
        "answer). Reference: false.",
        default=True,
    ),
    _k(
        "single_line_answers",
        "prompts",
        "single_line_answers",
        G_ROLLOUT,
        "With --open_answer: solver answers are template fields: a deduction/abduction "
        "literal ends at the first newline; the induction program's ```python block is "
        "opened for it and ends at its closing fence. Reference: false.",
        default=True,
    ),
    # ---- learner
    _k("max_grad_norm", "learner", "max_grad_norm", G_LEARNER, "Gradient clipping by global norm."),
    _k("weight_decay", "learner", "weight_decay", G_LEARNER, "AdamW weight decay."),
    _k("adam_b1", "learner", "b1", G_LEARNER, "AdamW beta1."),
    _k("adam_b2", "learner", "b2", G_LEARNER, "AdamW beta2."),
    _k("adam_eps", "learner", "adam_eps", G_LEARNER, "AdamW epsilon."),
    _k(
        "clip_low",
        "learner",
        "clip_low",
        G_LEARNER,
        "Clipped surrogate: ratio floor 1 - clip_low (negative advantages).",
    ),
    _k(
        "clip_high",
        "learner",
        "clip_high",
        G_LEARNER,
        "Clipped surrogate: ratio ceiling 1 + clip_high (positive advantages).",
    ),
    _k(
        "log_ratio_clip",
        "learner",
        "log_ratio_clip",
        G_LEARNER,
        "Bound on |log ratio| before exponentiating (numerical safety).",
    ),
    _k(
        "entropy_coef",
        "learner",
        "entropy_coef",
        G_LEARNER,
        "> 0 adds -coef x token-mean entropy to the loss (maximum-entropy bonus).",
    ),
    _k(
        "kl_coef",
        "learner",
        "kl_coef",
        G_LEARNER,
        "KL penalty to a reference policy; self-play keeps no reference policy, so only 0 is "
        "accepted (the reference trains without KL).",
    ),
    _k(
        "kl_estimator",
        "learner",
        "kl_estimator",
        G_LEARNER,
        "KL estimator (with kl_coef).",
        choices=("k1", "k3"),
    ),
    _k(
        "advantage_mode",
        "learner",
        "advantage_mode",
        G_LEARNER,
        "Per-(task, role) normalisation, or one global baseline (ablation).",
        choices=("task_relative", "global"),
    ),
    _k(
        "advantage_eps",
        "learner",
        "advantage_eps",
        G_LEARNER,
        "Added to the group standard deviation when normalising advantages.",
    ),
    _k(
        "micro_batch_size",
        "learner",
        "micro_batch_size",
        G_LEARNER,
        "Rows per micro-batch (gradients accumulate, weighted by tokens); bounds activation "
        "memory. 0: the whole batch at once.",
        default=2,
    ),
    _k(
        "fused_head",
        "learner",
        "fused_head",
        G_LEARNER,
        "Form the LM head's gradient while each logits chunk exists (entropy_coef 0 only; "
        "chunks of --logprob_row_chunk_size rows). Otherwise the autodiff head, in chunks of "
        "--logprob_vocab_chunk_size vocabulary columns.",
    ),
    _k(
        "logprob_row_chunk_size",
        "learner",
        "logprob_row_chunk_size",
        G_LEARNER,
        "Fused head: rows of [rows, vocab] logits formed at a time. 0: all rows at once.",
    ),
    _k(
        "logprob_vocab_chunk_size",
        "learner",
        "logprob_vocab_chunk_size",
        G_LEARNER,
        "Autodiff head (--nofused_head, or entropy_coef > 0): vocabulary columns of "
        "[rows, columns] logits formed at a time. 0: the whole vocabulary at once.",
    ),
    # ---- rewards, parsing, validation
    _k(
        "wrong_reward",
        "rewards",
        "wrong_reward",
        G_REWARD,
        "Reward of a well-formed answer that is wrong (or a proposal that is invalid or not "
        "learnable).",
    ),
    _k(
        "format_error_reward",
        "rewards",
        "format_error_reward",
        G_REWARD,
        "Reward of a response whose format is broken.",
    ),
    _k(
        "use_format_rule",
        "rewards",
        "use_format_rule",
        G_REWARD,
        "Apply the format rule (wrong/format-error rewards); false: plain 0/1 rewards.",
    ),
    _k(
        "learnability",
        "rewards",
        "learnability",
        G_REWARD,
        "Proposer reward: one_minus = 1 - s if 0 < s < 1 else 0; inverse = 1 - s always.",
        choices=("one_minus", "inverse"),
    ),
    _k(
        "invalid_proposal_is_format_error",
        "rewards",
        "invalid_proposal_is_format_error",
        G_REWARD,
        "Score a well-formed proposal that fails in the sandbox as a format error "
        "(the reference code's choice) instead of wrong (the paper's).",
    ),
    _k(
        "induction_reward",
        "rewards",
        "induction_reward",
        G_REWARD,
        "Induction solver reward: binary (all held-out pairs right), accuracy, or "
        "if_one_correct.",
        choices=("binary", "accuracy", "if_one_correct"),
    ),
    _k(
        "complexity_reward_weight",
        "rewards",
        "complexity_reward_weight",
        G_REWARD,
        "Ablation, off at 0: weight w_c of an intrinsic bonus for valid deduction/abduction "
        "proposals, w_c x min((cyclomatic complexity - 1) / 10, 1), summed with the "
        "diversity bonus and capped at 1 / (2 x n_solver_samples) so learnability stays "
        "dominant (docs/method.md; the reference's complexity_reward).",
    ),
    _k(
        "diversity_reward_weight",
        "rewards",
        "diversity_reward_weight",
        G_REWARD,
        "Ablation, off at 0: weight w_d of an intrinsic bonus for valid deduction/abduction "
        "proposals, w_d x the program's distance to the nearest program of its buffer "
        "(canonical AST bigram Jaccard distance, in [0, 1]), summed with the complexity "
        "bonus and capped at 1 / (2 x n_solver_samples) (docs/method.md; the reference's "
        "mean_edit_distance_reward).",
    ),
    _k(
        "max_completion_chars",
        "parsing",
        "max_completion_chars",
        G_REWARD,
        "Longest response text parsed (longer: format error).",
    ),
    _k(
        "max_program_chars",
        "parsing",
        "max_program_chars",
        G_REWARD,
        "Longest program accepted from a proposer or solver.",
    ),
    _k(
        "max_literal_chars",
        "parsing",
        "max_literal_chars",
        G_REWARD,
        "Longest input/output literal accepted.",
    ),
    _k(
        "max_message_chars",
        "parsing",
        "max_message_chars",
        G_REWARD,
        "Longest induction message accepted.",
    ),
    _k(
        "require_think",
        "parsing",
        "require_think",
        G_REWARD,
        "Demand </think> before the answer block (reference format check for chat models).",
    ),
    _k(
        "allow_multiple_answers",
        "parsing",
        "allow_multiple_answers",
        G_REWARD,
        "Take the last of several answer blocks (the reference) instead of a format error.",
    ),
    _k(
        "reject_multiple_functions",
        "parsing",
        "reject_multiple_functions",
        G_REWARD,
        "Reject proposals that define more than one top-level function.",
    ),
    _k(
        "rename_single_function_to_f",
        "parsing",
        "rename_single_function_to_f",
        G_REWARD,
        "A proposal whose one function is not named f gets it renamed (the reference).",
    ),
    _k(
        "induction_min_pairs",
        "validation",
        "min_pairs",
        G_REWARD,
        "Induction: usable input/output pairs a proposal needs (half shown, half held out).",
    ),
    _k(
        "induction_require_all_inputs",
        "validation",
        "require_all_inputs",
        G_REWARD,
        "Induction: any failing input rejects the proposal (the reference).",
    ),
    _k(
        "induction_dedup_inputs",
        "validation",
        "dedup_inputs",
        G_REWARD,
        "Induction: repeated inputs are dropped.",
    ),
    # ---- sandbox
    _k(
        "sandbox_timeout",
        "selfplay",
        "sandbox_timeout_s",
        G_SANDBOX,
        "Wall-clock seconds per sandboxed job; the proposer prompt states the same limit "
        "(reference 10).",
        default=5.0,
    ),
    _k(
        "overlap_sandbox",
        "selfplay",
        "overlap_sandbox",
        G_SANDBOX,
        "Validate proposals and grade answers in the sandbox on a background thread as "
        "their rows finish, while the device goes on generating (same results as false, "
        "the serial order; false: for timing comparisons).",
    ),
    _k(
        "sandbox_memory_mb",
        "sandbox",
        "memory_bytes",
        G_SANDBOX,
        "Address-space limit of one job, MiB.",
    ),
    _k(
        "sandbox_max_output_chars",
        "sandbox",
        "max_output_chars",
        G_SANDBOX,
        "Captured stdout + stderr kept per job.",
    ),
    _k(
        "sandbox_max_processes",
        "sandbox",
        "max_processes",
        G_SANDBOX,
        "Processes a job may run (RLIMIT_NPROC and the worker's pids cgroup).",
    ),
    _k(
        "sandbox_worker_memory_mb",
        "sandbox",
        "worker_memory_bytes",
        G_SANDBOX,
        "Memory cgroup of one worker and all its jobs, MiB.",
    ),
)

# Fields with no flag of their own, and why.
NOT_FLAGS = {
    ("learner", "temperature"): "the sampling temperature (--temperature)",
    ("prompts", "num_inputs"): "copied from --num_induction_inputs",
    ("prompts", "time_limit_s"): "copied from --sandbox_timeout",
    ("prompts", "wrap"): "a Python callable (chat template), set in code",
    ("prompts", "banned_words"): "the reference list shown to proposers; the sandbox's "
    "own check is the rule",
    ("parsing", "num_inputs"): "copied from --num_induction_inputs",
    ("rewards", "n_samples"): "copied from --n_solver_samples",
    ("sandbox", "timeout_s"): "--sandbox_timeout",
    ("sandbox", "cpu_s"): "equal to --sandbox_timeout",
    ("sandbox", "file_bytes"): "fixed safety limit",
    ("sandbox", "open_files"): "fixed safety limit",
    ("sandbox", "max_repr_chars"): "fixed safety limit",
    ("sandbox", "kill_grace_s"): "fixed safety limit",
    ("sandbox", "tmpfs_bytes"): "fixed safety limit",
    ("selfplay", "prompts"): "section (its fields have flags)",
    ("selfplay", "parsing"): "section (its fields have flags)",
    ("selfplay", "validation"): "section (its fields have flags)",
    ("selfplay", "rewards"): "section (its fields have flags)",
}

_MIB_FIELDS = {("sandbox", "memory_bytes"), ("sandbox", "worker_memory_bytes")}
# Optional ints whose flag spells None as 0.
_ZERO_IS_NONE = {
    ("learner", "micro_batch_size"),
    ("learner", "logprob_row_chunk_size"),
    ("learner", "logprob_vocab_chunk_size"),
}


def _field(knob: Knob) -> dataclasses.Field:
  for f in dataclasses.fields(SECTIONS[knob.section]):
    if f.name == knob.field:
      return f
  raise KeyError(f"{knob.section} has no field {knob.field!r}")


def _field_default(knob: Knob) -> Any:
  f = _field(knob)
  value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
  if knob.field == "task_types":
    return [t.value for t in value]
  if (knob.section, knob.field) in _MIB_FIELDS:
    return value >> 20
  if (knob.section, knob.field) in _ZERO_IS_NONE and value is None:
    return 0
  return value


def default_of(knob: Knob) -> Any:
  """The command line's default for `knob`."""
  return _field_default(knob) if knob.default is _FIELD_DEFAULT else knob.default


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defines one flag per knob (type from the default), grouped by `knob.group`."""
  for knob in KNOBS:
    default = default_of(knob)
    reference = _field_default(knob)
    help_text = knob.help
    if knob.default is not _FIELD_DEFAULT and "reference" not in help_text.lower():
      help_text += f" (dataclass default {reference})"
    kwargs = dict(flag_values=flag_values, module_name=knob.group)
    if knob.choices:
      flags.DEFINE_enum(knob.flag, default, list(knob.choices), help_text, **kwargs)
    elif isinstance(default, bool):
      flags.DEFINE_bool(knob.flag, default, help_text, **kwargs)
    elif isinstance(default, int):
      flags.DEFINE_integer(knob.flag, default, help_text, **kwargs)
    elif isinstance(default, float) or default is None:
      flags.DEFINE_float(knob.flag, default, help_text, **kwargs)
    elif isinstance(default, list):
      flags.DEFINE_list(knob.flag, default, help_text, **kwargs)
    elif isinstance(default, str):
      flags.DEFINE_string(knob.flag, default, help_text, **kwargs)
    else:
      raise TypeError(f"no flag type for {knob.flag}={default!r}")


def _value(knob: Knob, flag_values: flags.FlagValues) -> Any:
  value = flag_values[knob.flag].value
  key = (knob.section, knob.field)
  if key in _MIB_FIELDS:
    return int(value) << 20
  if key in _ZERO_IS_NONE:
    return None if value == 0 else value
  if knob.field == "task_types":
    return parse_task_types(value)
  return value


def section_values(flag_values: flags.FlagValues = FLAGS) -> dict[str, dict[str, Any]]:
  """{section: {field: value}} from parsed flags."""
  out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
  for knob in KNOBS:
    out[knob.section][knob.field] = _value(knob, flag_values)
  return out


def build_configs(
    flag_values: flags.FlagValues = FLAGS,
) -> tuple[SelfPlayConfig, LearnerConfig, SandboxLimits]:
  """Parsed flags -> (SelfPlayConfig, LearnerConfig, SandboxLimits).

  Raises:
    ValueError: a value the configs reject (the message names the field).
  """
  v = section_values(flag_values)
  if v["learner"]["kl_coef"] != 0:
    raise ValueError(
        "--kl_coef must be 0: a self-play run keeps no reference policy to "
        "measure KL against (the reference AZR trains without a KL term)"
    )
  selfplay = SelfPlayConfig(
      **v["selfplay"],
      prompts=PromptConfig(**v["prompts"]),
      parsing=ParseConfig(**v["parsing"]),
      validation=ValidatorConfig(**v["validation"]),
      rewards=RewardConfig(**v["rewards"]),
  )
  learner = LearnerConfig(**v["learner"], temperature=selfplay.temperature)
  timeout = selfplay.sandbox_timeout_s
  sandbox = SandboxLimits(**v["sandbox"], timeout_s=timeout, cpu_s=timeout)
  return selfplay, learner, sandbox


def name_flags(message: str) -> str:
  """A config error message prefixed with the flags whose fields it names (the configs
  speak of fields, users typed flags): 'batch_size must be >= 1' -> '--batch_size: ...'."""
  named = [
      k.flag
      for k in KNOBS
      if re.search(rf"(?<![\w.]){re.escape(k.field)}\b|\.{re.escape(k.field)}\b", message)
  ]
  if "task type" in message:
    named.append("task_types")
  named = list(dict.fromkeys(named))
  return (", ".join(f"--{n}" for n in named) + ": " + message) if named else message


def unflagged_fields() -> list[tuple[str, str]]:
  """(section, field) pairs with neither a flag nor a NOT_FLAGS reason (should be [])."""
  flagged = {(k.section, k.field) for k in KNOBS}
  return [
      (name, f.name)
      for name, cls in SECTIONS.items()
      for f in dataclasses.fields(cls)
      if (name, f.name) not in flagged and (name, f.name) not in NOT_FLAGS
  ]
