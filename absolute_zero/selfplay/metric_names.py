"""The names of the metrics a self-play run writes, defined once.

`absolute_zero/selfplay/run.py` writes its metrics under these names and
`experiments/plot_run.py` orders and titles its subplots by them, so a plot cannot ask for a
name the run does not write. Key layout (flat, '/'-separated; see absolute_zero/metrics.py):

  `{task}/{role}/{metric}`  per (task type, role): `metric` is one of GROUP_METRICS, e.g.
                            `deduction/solve/reward_mean`, `abduction/propose/validity_rate`;
  `{namespace}/{name}`      `buffer/{task}` sizes, `time/{phase}_s` seconds,
                            `throughput/...`, `learner/...` (loss, grad norm, ...),
                            `seed/...` (the seeding rounds, at step 0), `solver/...`,
                            `eval/{benchmark}/score` (held-out evaluation during training,
                            experiments/azr.py --eval_every; `evaluation.runner.eval_metrics`).

No heavy imports here: plot_run reads this without JAX.
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
GROUP_METRICS = (COUNT, REWARD_MEAN, FORMAT_FAILURE_RATE, RESPONSE_TOKENS_MEAN,
                 VALIDITY_RATE, SOLVE_RATE_OF_VALID, SOLVE_RATE, ADVANTAGE_MEAN,
                 ADVANTAGE_STD)

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
PLOT_ORDER = (EVAL, REWARD_MEAN, VALIDITY_RATE, SOLVE_RATE, SOLVE_RATE_OF_VALID,
              FORMAT_FAILURE_RATE, ADVANTAGE_MEAN, ADVANTAGE_STD, RESPONSE_TOKENS_MEAN,
              COUNT, BUFFER, THROUGHPUT, TIME, LEARNER, SEED, SOLVER)
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
    BUFFER: "buffer sizes",
    THROUGHPUT: "throughput",
    TIME: "phase times (s)",
    LEARNER: "learner",
    SEED: "seeding (step 0)",
    SOLVER: "solver",
    EVAL: "held-out evaluation",
}
