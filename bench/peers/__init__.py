"""Peer runs: the fraud scenario's work done by another stream-processing library.

`python -m bench --peers quix` runs the same six rules on Quix Streams (`bench.peers.quix`, its
own process) on the same data set and broker, measured the way the fraud scenario measures a
Vigil worker (`bench.peers.scenario`). The peers' libraries are benchmark-only dependencies
(`pip install -e '.[bench]'`): this module imports none of them, so the benchmark and CI run
without them as long as no peer is asked for.
"""

from __future__ import annotations

import importlib.util

#: Peer name -> (the module its library is imported as, how to install it).
PEERS: dict[str, tuple[str, str]] = {
    "quix": ("quixstreams", ".venv/bin/pip install -e '.[bench]'"),
}


def parse_peers(text: str | None) -> list[str]:
    """The peers named in `--peers` (comma-separated, in order, once each); ValueError if one
    is unknown. None or blank: no peer."""
    names: list[str] = []
    for part in (text or "").split(","):
        name = part.strip().lower()
        if not name or name in names:
            continue
        if name not in PEERS:
            raise ValueError(f"unknown peer {name!r}; known: {', '.join(sorted(PEERS))}")
        names.append(name)
    return names


def missing(names: list[str]) -> list[str]:
    """One line per requested peer whose library is not installed, saying how to install it."""
    lines = []
    for name in names:
        module, install = PEERS[name]
        if importlib.util.find_spec(module) is None:
            lines.append(f"bench: --peers {name} needs {module}: {install}")
    return lines
