"""Benchmarks for any model: CRUXEval-O/I, HumanEval, and math sets (GSM8K, MATH-500, ...).

`runner.run_evaluation(sampler, pool, benchmarks, ...)` generates with the project's
sampler, grades (code in the sandbox, CRUXEval through the self-play solver's own grader,
math by answer equivalence) and returns the JSON report described in `report.py`.
Import submodules directly; the data and math modules import without JAX.
"""
