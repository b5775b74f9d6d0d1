"""The patches seam against the installed Faust and aiokafka: every private name Vigil relies
on still exists, and every method Vigil replaces is still there to replace.

An upgrade that renames one fails here, naming it, instead of failing in a running worker.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from app import faust_patches


def _attribute_exists(cls: type, name: str) -> bool:
    if hasattr(cls, name) or any(name in vars(k).get("__annotations__", {}) for k in cls.__mro__):
        return True
    # Instance attributes set in __init__ (Faust's consumer bookkeeping).
    for klass in cls.__mro__:
        for method in (
            klass.__dict__.get("__init__"),
            klass.__dict__.get("__post_init__"),
            klass.__dict__.get("_reset_state"),
        ):
            try:
                source = inspect.getsource(method) if method is not None else ""
            except (TypeError, OSError):  # a C-level __init__ (object's): no source
                continue
            if f"self.{name}" in source:
                return True
    return False


@pytest.mark.parametrize(("module", "cls", "name"), faust_patches.PRIVATE_NAMES)
def test_private_name_still_exists(module, cls, name):
    klass = getattr(importlib.import_module(module), cls)
    assert _attribute_exists(klass, name), f"{module}.{cls}.{name} is gone: check the seam"


@pytest.mark.parametrize(("module", "cls", "name"), faust_patches.PATCHED)
def test_patched_method_still_exists(module, cls, name):
    owner = importlib.import_module(module)
    if cls:  # a method of a class; else an attribute of the module itself
        owner = getattr(owner, cls)
        assert callable(getattr(owner, name, None)), f"{module}.{cls}.{name} is gone"
    assert hasattr(owner, name), f"{module}.{name} is gone"


def test_install_is_idempotent_and_patches_every_method():
    def current(module: str, cls: str, name: str):
        owner = importlib.import_module(module)
        return getattr(getattr(owner, cls) if cls else owner, name)

    faust_patches.install(None, {})
    patched = {key: current(*key) for key in faust_patches.PATCHED}
    faust_patches.install(None, {})
    for (m, c, n), fn in patched.items():
        again = current(m, c, n)
        assert again is fn, f"{c}.{n} patched twice"
        assert getattr(fn, "__vigil__", False), f"{c}.{n} not patched"


def test_an_assignment_during_shutdown_does_not_close_the_consumer_across_loops():
    """Faust closed aiokafka's client from the app's loop while the consumer ran on its own
    thread's loop (a SIGTERMed worker died of SIGSEGV under uvloop); the patched callback
    leaves the consumer to Faust's stop."""
    from types import SimpleNamespace

    from faust.app.base import App

    faust_patches.install(None, {})

    def close() -> None:
        raise AssertionError("closed from the wrong loop")

    App._on_rebalance_when_stopped(SimpleNamespace(consumer=SimpleNamespace(close=close)))
