"""Sandbox: run model-written Python safely and fast, with Absolute Zero semantics."""

from absolute_zero.sandbox.job_types import STATUSES, Job, JobResult, SandboxLimits
from absolute_zero.sandbox.pool import SandboxError, SandboxPool
from absolute_zero.sandbox.literals import LiteralError, literals_equal, parse_arguments, parse_literal
from absolute_zero.sandbox.azr import (
    BANNED_MODULES,
    BANNED_NAMES,
    EXPRESSION_BANNED,
    DYNAMIC_ACCESS_NAMES,
    REFERENCE_BANNED,
    Validation,
    check_input_expression,
    check_program,
    execute,
    grade_abduction,
    grade_deduction,
    grade_induction,
    validate_proposals,
)
