"""Findings: what a checker reports, and their aggregation over many schedules."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

KINDS = ("deadlock", "hang", "potential-deadlock", "race", "stale-read", "invariant", "crash")


def make_signature(kind: str, key: str) -> str:
    """A stable, short id for a defect: the same ``key`` gives the same signature in every run."""
    digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
    return f"{kind}-{digest}"


def canonical_rotation(items: list[str]) -> list[str]:
    """Rotate a cycle so it starts at its smallest element (a cycle has no natural start)."""
    if not items:
        return items
    i = min(range(len(items)), key=lambda j: (items[j], j))
    return items[i:] + items[:i]


@dataclass
class Finding:
    """One finding in one schedule.  ``details`` holds the kind-specific fields of the JSON finding."""

    kind: str
    key: str  #: what makes two findings the same defect (hashed into the signature)
    summary: str
    locks: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    step: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    report: str = ""  #: a human-readable multi-line report

    @property
    def signature(self) -> str:
        return make_signature(self.kind, self.key)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "signature": self.signature,
            "summary": self.summary,
            "locks": list(self.locks),
            "paths": list(self.paths),
            "actors": list(self.actors),
            "step": self.step,
        }
        d.update(self.details)
        if self.report:
            d["report"] = self.report
        return d


@dataclass
class AggregatedFinding:
    """A defect seen in one or more schedules: the first occurrence plus a count."""

    first: Finding
    first_schedule: int
    first_seed: int
    count: int = 1
    trace: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = self.first.to_json()
        d["first_schedule"] = self.first_schedule
        d["seed"] = self.first_seed
        d["count"] = self.count
        d["trace"] = self.trace
        return d


class FindingSet:
    """Dedupes findings by signature across schedules, in order of first appearance."""

    def __init__(self) -> None:
        self.by_sig: dict[str, AggregatedFinding] = {}

    def add(self, f: Finding, schedule: int, seed: int, trace: str | None) -> None:
        sig = f.signature
        agg = self.by_sig.get(sig)
        if agg is None:
            self.by_sig[sig] = AggregatedFinding(f, schedule, seed, 1, trace)
        else:
            agg.count += 1
            if agg.trace is None and trace is not None:
                agg.trace = trace

    def __len__(self) -> int:
        return len(self.by_sig)

    def to_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.by_sig.values()]
