"""A pytest plugin for kernel developers: explore a locking scheme from a test, fail with the report.

Installed with apactors (entry point ``pytest11``), it provides the fixture ``apactors``::

    def test_my_scheme(apactors):
        result = apactors.explore(scheme="my-latest", scenario="storm", schedules=500)
        assert not result.deadlocks

``apactors.explore(scheme=..., scenario=..., schedules=500, **kw)`` takes the arguments of
:func:`apactors.api.explore` (``seed``, ``strategy``, ``max_steps``, ``witness_attempts`` ...) and
keeps the traces of failing schedules in the test's temporary directory (or ``--apactors-out DIR``).
The result has the run's findings as lists by kind — ``deadlocks`` (actual and potential),
``potential_deadlocks``, ``hangs``, ``crashes``, ``races``, ``stale_reads``, ``invariants``,
``findings`` (all) — and everything else of :class:`apactors.api.RunResult`.

When an assertion fails in a test that tested such a list, the failure message ends with the findings
of the lists the test tested: each one's summary, the trace to replay (``apactors replay TRACE``) and
its lockdep-style report, so a CI log is enough to start debugging.  The lists' own repr is a one-line
summary with the trace paths (pytest shortens reprs in assertion messages).  ``result.report()`` gives
the same text, and ``result.assert_no("deadlocks", "crashes")`` fails with it explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

KIND_LISTS = {
    "deadlocks": ("deadlock", "potential-deadlock"),
    "potential_deadlocks": ("potential-deadlock",),
    "actual_deadlocks": ("deadlock",),
    "hangs": ("hang",),
    "crashes": ("crash",),
    "races": ("race",),
    "stale_reads": ("stale-read",),
    "invariants": ("invariant",),
}


def format_finding(f: dict[str, Any]) -> str:
    """One finding as a plain block: header, summary, trace and (if any) the lockdep-style report."""
    extra = ""
    if f.get("kind") == "potential-deadlock":
        extra = f", {f.get('checker', 'lockdep')}, " + ("confirmed" if f.get("confirmed") else "not confirmed")
    lines = [f"[{f.get('signature')}] {f.get('kind')} x{f.get('count', 1)} (first in schedule "
             f"{f.get('first_schedule', '?')}{extra})", f"  {f.get('summary', '')}"]
    if f.get("trace"):
        lines.append(f"  trace: {f['trace']}")
        lines.append(f"  replay: apactors replay {f['trace']} --steps")
    else:
        lines.append("  trace: (not kept)")
    if f.get("report"):
        lines += ["", f["report"].rstrip("\n")]
    return "\n".join(lines)


class FindingList(list):  # type: ignore[type-arg]
    """The findings of one kind: a list of finding dicts that knows how to explain itself.

    ``repr`` is one line (a count, the signatures and trace paths), ``report()`` the full text.
    Testing its truth value (``assert not result.deadlocks``) tells the plugin which findings to print
    if the test fails.
    """

    def __init__(self, items: Any = (), name: str = "findings", owner: "PluginResult | None" = None) -> None:
        super().__init__(items)
        self.name = name
        self._owner = owner

    def __bool__(self) -> bool:
        if self._owner is not None:
            self._owner._tested(self)  # noqa: SLF001
        return len(self) > 0

    def report(self) -> str:
        if not list.__len__(self):
            return f"no {self.name}"
        head = f"{len(self)} {self.name}"
        if self._owner is not None:
            head += f" ({self._owner.describe()})"
        return head + ":\n\n" + "\n\n".join(format_finding(f) for f in self)

    def __repr__(self) -> str:
        if not list.__len__(self):
            return f"<no {self.name}>"
        parts = [f"{f.get('signature')} (trace {f.get('trace') or 'not kept'})" for f in self]
        return f"<{len(self)} {self.name}: " + "; ".join(parts) + ">"

    __str__ = report


class PluginResult:
    """A :class:`apactors.api.RunResult` with its findings as :class:`FindingList` attributes."""

    def __init__(self, run: Any, session: "Apactors") -> None:
        self.run = run
        self._session = session
        self._json = run.findings_json()

    def __getattr__(self, name: str) -> Any:
        kinds = KIND_LISTS.get(name)
        if kinds is not None:
            return FindingList([f for f in self._json if f["kind"] in kinds], name.replace("_", " "), self)
        if name == "findings":
            return FindingList(list(self._json), "findings", self)
        return getattr(self.run, name)

    def describe(self) -> str:
        r = self.run
        return f"scheme {r.scheme}, scenario {r.scenario}, {r.schedules} schedules, seed {r.seed}"

    def _tested(self, lst: FindingList) -> None:
        self._session.tested.append(lst)

    def report(self, *names: str) -> str:
        """The report of the given lists (default: every finding)."""
        lists = [getattr(self, n) for n in names] if names else [self.findings]
        return "\n\n".join(lst.report() for lst in lists)

    def assert_no(self, *names: str) -> None:
        """Fail with the full report if any of the named lists (default: all findings) is not empty."""
        lists = [getattr(self, n) for n in names] if names else [self.findings]
        bad = [lst for lst in lists if list.__len__(lst)]
        if bad:
            raise AssertionError("\n\n".join(lst.report() for lst in bad))

    def __repr__(self) -> str:
        return f"<apactors result: {self.describe()}, {len(self._json)} finding(s)>"


class Apactors:
    """The ``apactors`` fixture: explore schemes from a test; remembers what the test looked at."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.results: list[PluginResult] = []
        self.tested: list[FindingList] = []

    def explore(self, scheme: Any, scenario: Any, schedules: int = 500, **kw: Any) -> PluginResult:
        """Run :func:`apactors.api.explore` (traces of failing schedules kept under the fixture's ``out``)."""
        from apactors.api import explore

        kw.setdefault("out", self.out)
        res = PluginResult(explore(scheme, scenario, schedules=schedules, **kw), self)
        self.results.append(res)
        return res

    def failure_text(self) -> str:
        """The report appended to a failing assertion: the non-empty lists the test tested (or, if it
        tested none, every finding of its runs)."""
        seen: set[int] = set()
        lists = []
        for lst in self.tested:
            if list.__len__(lst) and id(lst) not in seen:
                seen.add(id(lst))
                lists.append(lst)
        if not lists:
            lists = [r.findings for r in self.results if r._json]  # noqa: SLF001
        if not lists:
            return ""
        return "apactors findings:\n\n" + "\n\n".join(lst.report() for lst in lists)


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("apactors")
    group.addoption("--apactors-out", default=None, metavar="DIR",
                    help="keep the traces of the apactors fixture's runs in DIR (default: the test's tmp_path)")


@pytest.fixture
def apactors(request: Any, tmp_path: Path) -> Iterator[Apactors]:
    """Explore locking schemes from a test: ``apactors.explore(scheme=..., scenario=..., schedules=500)``."""
    base = request.config.getoption("--apactors-out", default=None)
    out = Path(base) / request.node.name if base else tmp_path / "apactors-out"
    session = Apactors(out)
    request.node.stash[_KEY] = session
    yield session


_KEY = pytest.StashKey[Apactors]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: Any) -> Iterator[None]:
    """Append the findings the test looked at to a failing assertion's message."""
    try:
        return (yield)
    except AssertionError as e:
        session = item.stash.get(_KEY, None)
        text = session.failure_text() if session is not None else ""
        if text:
            first = str(e.args[0]) if e.args else ""
            e.args = (f"{first}\n\n{text}" if first else text,) + tuple(e.args[1:])
        raise


__all__ = ["Apactors", "FindingList", "KIND_LISTS", "PluginResult", "apactors", "format_finding"]
