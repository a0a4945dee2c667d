"""The dependency graph of a formation: which conditions a process type waits for, and the shutdown stages.

Only the process types in the formation count: a dependency on a type that has no instances is not waited
for. Shutdown runs in reverse dependency order: a type that nothing depends on stops in the first stage, a
type stops one stage after the last of its dependents.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from procman.processconfig import ProcessConfig


def waits_for(name: str, config: ProcessConfig, present: Collection[str]) -> dict[str, str]:
    """The dependencies of ``name`` that are in the formation: type -> condition."""
    return {other: condition for other, condition in config.of(name).depends_on.items() if other in present}


def stop_stages(names: list[str], config: ProcessConfig) -> list[list[str]]:
    """The process types in shutdown order, stage by stage (one stage when nothing depends on anything)."""
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for dependency in waits_for(name, config, dependents):
            dependents[dependency].append(name)
    levels: dict[str, int] = {}

    def level(name: str) -> int:  # the graph has no cycle: processconfig refuses them
        if name not in levels:
            levels[name] = 1 + max((level(other) for other in dependents[name]), default=-1)
        return levels[name]

    stages: list[list[str]] = [[] for _ in range(1 + max((level(name) for name in names), default=0))]
    for name in names:
        stages[level(name)].append(name)
    return stages


def one_off_types(names: Collection[str], config: ProcessConfig) -> frozenset[str]:
    """The types another type waits for with ``"exited"``: their successful exit stops nothing."""
    return frozenset(other for name in names for other, condition in waits_for(name, config, names).items()
                     if condition == "exited")


def missing(names: Collection[str], config: ProcessConfig) -> Mapping[str, list[str]]:
    """Dependencies that are not in the formation (so not waited for): type -> those names."""
    found = {name: [other for other in config.of(name).depends_on if other not in names] for name in names}
    return {name: others for name, others in found.items() if others}
