"""The names of the metrics a self-play run writes, defined once.

`absolute_zero/selfplay/run.py` writes its metrics under these names and
`absolute_zero/metrics_plot.py` orders and titles its subplots by them, so a plot cannot
ask for a name the run does not write. Key layout (flat, '/'-separated; see
absolute_zero/metrics.py):

  `{task}/{role}/{metric}`  per (task type, role): `metric` is one of GROUP_METRICS, e.g.
                            `deduction/solve/reward_mean`, `abduction/propose/validity_rate`;
                            proposers also get DIVERSITY_METRICS, e.g.
                            `deduction/propose/distinct_programs`;
  `{namespace}/{name}`      `buffer/{task}` sizes (and `buffer/{task}/distinct_programs`),
                            `time/{phase}_s` seconds,
                            `throughput/...`, `learner/...` (loss, grad norm, ...),
                            `seed/...` (the seeding rounds, at step 0), `solver/...`,
                            `eval/{benchmark}/score` (held-out evaluation during training,
                            experiments/azr.py --eval_every; `evaluation.runner.eval_metrics`);
  `types/{task}/{side}/{t}` DISTRIBUTIONS: the share of value type `t` (VALUE_TYPES) among
                            the inputs or outputs (`side`) of the step's valid proposals;
                            one subplot per (task, side), one line per type.

No heavy imports here: metrics_plot reads this without JAX.
"""

from __future__ import annotations

# Per (task type, role), written as `{task}/{role}/{name}`.
COUNT = "count"  # rollouts in the group this step
REWARD_MEAN = "reward_mean"  # mean reward
FORMAT_FAILURE_RATE = "format_failure_rate"  # share of responses the parser rejected
RESPONSE_TOKENS_MEAN = "response_tokens_mean"  # mean completion length in tokens
VALIDITY_RATE = "validity_rate"  # proposers: share the sandbox accepted
SOLVE_RATE_OF_VALID = "solve_rate_of_valid"  # proposers: mean solver score of valid ones
SOLVE_RATE = "solve_rate"  # solvers: share answered correctly
ADVANTAGE_MEAN = "advantage_mean"  # of the rows trained on this step
ADVANTAGE_STD = "advantage_std"
GROUP_METRICS = (
    COUNT,
    REWARD_MEAN,
    FORMAT_FAILURE_RATE,
    RESPONSE_TOKENS_MEAN,
    VALIDITY_RATE,
    SOLVE_RATE_OF_VALID,
    SOLVE_RATE,
    ADVANTAGE_MEAN,
    ADVANTAGE_STD,
)

# Per task type, proposers only (absolute_zero/selfplay/step_diversity.py; the measures are
# defined in absolute_zero/tasks/diversity.py), over the step's valid proposals.
DISTINCT_PROGRAMS = "distinct_programs"  # distinct canonical programs (renamed copies: one)
NOVEL_SHARE = "novel_share"  # share whose canonical program is not in the buffer yet
NN_DISTANCE_MEAN = "nn_distance_mean"  # mean distance to the nearest buffer program
AST_NODES_MEAN = "ast_nodes_mean"  # mean AST node count
CYCLOMATIC_MEAN = "cyclomatic_mean"  # mean McCabe cyclomatic complexity
DISTINCT_MESSAGES = "distinct_messages"  # induction: distinct normalised messages
INTRINSIC_REWARD_MEAN = "intrinsic_reward_mean"  # with intrinsic rewards on: mean bonus
DIVERSITY_METRICS = (
    DISTINCT_PROGRAMS,
    NOVEL_SHARE,
    NN_DISTANCE_MEAN,
    AST_NODES_MEAN,
    CYCLOMATIC_MEAN,
    DISTINCT_MESSAGES,
    INTRINSIC_REWARD_MEAN,
)
# `buffer/{task}/distinct_programs`: distinct canonical programs in the buffer.

# Distributions, written as `{namespace}/{task}/{side}/{value}`.
TYPES = "types"
TYPE_SIDES = ("input", "output")
DISTRIBUTIONS = (TYPES,)
TASK_NAMES = ("deduction", "abduction", "induction")  # TaskType values (no import here)


def distribution_group(task: str, side: str) -> str:
  """The subplot of one value-type distribution, e.g. 'types/deduction/input'."""
  return f"{TYPES}/{task}/{side}"


# Namespaces, written as `{namespace}/{name}`.
BUFFER = "buffer"
TIME = "time"
THROUGHPUT = "throughput"
LEARNER = "learner"
SEED = "seed"
SOLVER = "solver"
EVAL = "eval"
NAMESPACES = (BUFFER, TIME, THROUGHPUT, LEARNER, SEED, SOLVER, EVAL)

# The run's plot: subplots in this order (the rest alphabetically after them), and titles.
PLOT_ORDER = (
    EVAL,
    REWARD_MEAN,
    VALIDITY_RATE,
    SOLVE_RATE,
    SOLVE_RATE_OF_VALID,
    FORMAT_FAILURE_RATE,
    ADVANTAGE_MEAN,
    ADVANTAGE_STD,
    RESPONSE_TOKENS_MEAN,
    COUNT,
    DISTINCT_PROGRAMS,
    NOVEL_SHARE,
    NN_DISTANCE_MEAN,
    AST_NODES_MEAN,
    CYCLOMATIC_MEAN,
    DISTINCT_MESSAGES,
    INTRINSIC_REWARD_MEAN,
    *(distribution_group(t, s) for t in TASK_NAMES for s in TYPE_SIDES),
    BUFFER,
    THROUGHPUT,
    TIME,
    LEARNER,
    SEED,
    SOLVER,
)
TITLES = {
    REWARD_MEAN: "mean reward",
    VALIDITY_RATE: "validity rate of proposals",
    SOLVE_RATE: "solve rate",
    SOLVE_RATE_OF_VALID: "solve rate of valid proposals",
    FORMAT_FAILURE_RATE: "format-failure rate",
    ADVANTAGE_MEAN: "advantage mean",
    ADVANTAGE_STD: "advantage std",
    RESPONSE_TOKENS_MEAN: "response length (tokens)",
    COUNT: "rollouts per group",
    DISTINCT_PROGRAMS: "distinct programs among valid proposals",
    NOVEL_SHARE: "share of valid proposals new to the buffer",
    NN_DISTANCE_MEAN: "distance to the nearest buffer program (mean)",
    AST_NODES_MEAN: "AST nodes per valid proposal (mean)",
    CYCLOMATIC_MEAN: "cyclomatic complexity (mean)",
    DISTINCT_MESSAGES: "distinct induction messages",
    INTRINSIC_REWARD_MEAN: "intrinsic reward of valid proposals (mean)",
    **{
        distribution_group(t, s): f"{t} {s} value types (share)"
        for t in TASK_NAMES
        for s in TYPE_SIDES
    },
    BUFFER: "buffer sizes and distinct programs",
    THROUGHPUT: "throughput",
    TIME: "phase times (s)",
    LEARNER: "learner",
    SEED: "seeding (step 0)",
    SOLVER: "solver",
    EVAL: "held-out evaluation",
}
