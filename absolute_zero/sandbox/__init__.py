"""Sandbox: run model-written Python safely and fast, with Absolute Zero semantics."""

from absolute_zero.sandbox.job_types import STATUSES, Job, JobResult, SandboxLimits
from absolute_zero.sandbox.pool import SandboxError, SandboxPool
