"""Turn parsed proposals into valid triplets and induction tasks via the sandbox (spec §2).

Every function takes a whole batch and makes one sandbox call
(``absolute_zero.sandbox.azr.validate_proposals``), so the pool works on all programs at
once. Each result records why a proposal was rejected: the parse failure kind, or the
sandbox status (``error``, ``timeout``, ``memory``, ``banned``, ``nondeterministic``,
``output_too_large``) and its reason.

Induction: the ``N`` proposed inputs run through the buffer program. Inputs that fail
are dropped (recorded in ``dropped``), repeated inputs are dropped, and the proposal is
valid if at least ``min_pairs`` remain; the first half (``len // 2``) is shown to the
solver and the rest is held out, as in the reference. The reference instead rejects the
whole proposal if any input fails: ``require_all_inputs=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from absolute_zero.tasks.parsers import ParsedInductionProposal, ParsedTripletProposal, ParseFailure
from absolute_zero.tasks.types import InductionTask, IOPair, Triplet


def _azr():
    """The sandbox's Absolute Zero API, imported at first use (it starts no process)."""
    from absolute_zero.sandbox import azr

    return azr


@dataclass(frozen=True)
class ValidatorConfig:
    min_pairs: int = 2  # induction: at least one shown and one held-out pair
    require_all_inputs: bool = False  # reference: any failing input rejects the proposal
    dedup_inputs: bool = True  # induction: repeated inputs add nothing

    def __post_init__(self) -> None:
        if self.min_pairs < 2:
            raise ValueError(f"min_pairs must be >= 2 (one shown, one held out), got {self.min_pairs}")


@dataclass(frozen=True)
class ProposalResult:
    """Outcome of one deduction/abduction proposal."""

    triplet: Optional[Triplet]
    well_formed: bool  # the parser accepted it (format rule)
    status: str  # 'ok', a parse failure kind, or a sandbox status
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.triplet is not None


@dataclass(frozen=True)
class InductionProposalResult:
    """Outcome of one induction proposal; ``dropped`` lists (input, why) left out."""

    task: Optional[InductionTask]
    well_formed: bool
    status: str
    reason: str = ""
    dropped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def valid(self) -> bool:
        return self.task is not None


def _parse_rejection(failure: ParseFailure) -> tuple[bool, str, str]:
    return (not failure.broken_format, failure.kind.value, failure.detail)


def validate_triplet_proposals(
    pool: Any, parsed: Sequence[Union[ParsedTripletProposal, ParseFailure]]
) -> list[ProposalResult]:
    """Run every parsed proposal in the sandbox (one batch); valid ones become triplets."""
    jobs = [(p.program, p.input) for p in parsed if isinstance(p, ParsedTripletProposal)]
    validations = iter(_azr().validate_proposals(pool, jobs) if jobs else [])
    results = []
    for item in parsed:
        if isinstance(item, ParseFailure):
            well_formed, status, reason = _parse_rejection(item)
            results.append(ProposalResult(None, well_formed, status, reason))
            continue
        if not isinstance(item, ParsedTripletProposal):
            raise TypeError(f"expected ParsedTripletProposal or ParseFailure, got {type(item).__name__}")
        v = next(validations)
        if v.valid:
            results.append(ProposalResult(Triplet(item.program, item.input, v.output), True, "ok"))
        else:
            results.append(ProposalResult(None, True, v.status, v.reason))
    return results


def build_induction_task(
    program: str,
    proposal: ParsedInductionProposal,
    validations: Sequence[Any],
    config: ValidatorConfig = ValidatorConfig(),
) -> InductionProposalResult:
    """Pure: combine one proposal's per-input sandbox validations into a task or a rejection.

    ``validations[i]`` (with ``.valid``, ``.status``, ``.output``, ``.reason``) belongs to
    ``proposal.inputs[i]``.
    """
    if len(validations) != len(proposal.inputs):
        raise ValueError(f"{len(validations)} validations for {len(proposal.inputs)} inputs")
    pairs: list[IOPair] = []
    dropped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for literal, v in zip(proposal.inputs, validations):
        if not v.valid:
            dropped.append((literal, f"{v.status}: {v.reason}" if v.reason else v.status))
            continue
        key = literal.strip()
        if config.dedup_inputs and key in seen:
            dropped.append((literal, "duplicate input"))
            continue
        seen.add(key)
        pairs.append(IOPair(literal, v.output))
    failed = [d for d in dropped if d[1] != "duplicate input"]
    if config.require_all_inputs and failed:
        return InductionProposalResult(
            None, True, "input_failed", f"{len(failed)} of {len(proposal.inputs)} inputs failed", tuple(dropped)
        )
    if len(pairs) < config.min_pairs:
        return InductionProposalResult(
            None, True, "too_few_valid_inputs",
            f"{len(pairs)} usable inputs < {config.min_pairs}", tuple(dropped),
        )
    half = len(pairs) // 2
    task = InductionTask(program, tuple(pairs[:half]), tuple(pairs[half:]), proposal.message)
    return InductionProposalResult(task, True, "ok", "", tuple(dropped))


def validate_induction_proposals(
    pool: Any,
    items: Sequence[tuple[str, Union[ParsedInductionProposal, ParseFailure]]],
    config: ValidatorConfig = ValidatorConfig(),
) -> list[InductionProposalResult]:
    """``items[i] = (buffer program shown to the proposer, its parsed proposal)``.

    All inputs of all proposals run in one sandbox batch."""
    jobs = []
    for program, item in items:
        if isinstance(item, ParsedInductionProposal):
            jobs.extend((program, literal) for literal in item.inputs)
        elif not isinstance(item, ParseFailure):
            raise TypeError(f"expected ParsedInductionProposal or ParseFailure, got {type(item).__name__}")
    validations = _azr().validate_proposals(pool, jobs) if jobs else []
    results, at = [], 0
    for program, item in items:
        if isinstance(item, ParseFailure):
            well_formed, status, reason = _parse_rejection(item)
            results.append(InductionProposalResult(None, well_formed, status, reason))
            continue
        n = len(item.inputs)
        results.append(build_induction_task(program, item, validations[at: at + n], config))
        at += n
    return results
