"""A store the bulk restore brought to the changelog's end records the offset before the end,
so that the commit marker left there does not send Faust into its recovery wait."""

from __future__ import annotations

from faust.types import TP

from app.faust_patches.recovery import _at_end

CARDS_0 = TP("app-cards-changelog", 0)


class Store:
    def __init__(self, persisted: int | None) -> None:
        self.persisted = persisted

    def persisted_offset(self, tp: TP) -> int | None:
        return self.persisted

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted = offset


def test_the_offset_moves_over_the_trailing_commit_marker():
    store = Store(persisted=41)  # the last record; 42 is its transaction's commit marker
    _at_end(store, CARDS_0, end=43)
    assert store.persisted == 42


def test_an_empty_store_at_the_end_of_a_changelog_of_markers_only():
    store = Store(persisted=None)
    _at_end(store, CARDS_0, end=2)
    assert store.persisted == 1


def test_never_moves_back():
    store = Store(persisted=50)
    _at_end(store, CARDS_0, end=43)
    assert store.persisted == 50
