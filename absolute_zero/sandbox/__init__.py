"""Sandbox: run untrusted Python safely and fast (a general executor).

The rules of the method (banned names, run-twice validity, grading) live in
``absolute_zero.tasks.validators`` and ``absolute_zero.tasks.grading``.
"""

from absolute_zero.sandbox.job_types import STATUSES, Job, JobResult, SandboxLimits
from absolute_zero.sandbox.pool import SandboxError, SandboxPool
from absolute_zero.sandbox.literals import LiteralError, literals_equal, parse_arguments, parse_literal
