"""Labels: what a person reads for a recurrence key instead of a 64-hex hash.

A signature is named by the most common normalised title of its incidents,
with their most common service and kind (each tie broken by the smallest
text), rendered by the policy's ``recurrence.label_template``; a kind or a
service is named by itself. The label belongs to the signature, not to a
window: it is taken over every incident the engine keeps, so the 7- and 30-day
``recurrence`` answers, the ``intel.recurrence`` record and the dashboard name
a signature the same way, and the label changes only when one of its
incidents changes (which also moves the signature's keyed record).

:class:`SignatureNames` keeps, per signature, how many incidents carry each
(title, service, kind), with the records' own strings, and beside them how many
carry each normalised title, service and kind. A computed signature hashes the
normalised title, service and kind, so those are one value each (a given
signature may carry a few): a label costs a look at them, whatever the number
of incidents or of raw titles, which matters because every incident change asks
whether it renamed its signature (:meth:`IntelEngine.relabels`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from app.contracts import KeyType
from app.intel.incidents import Record
from app.intel.signature import normalise_title

Variant = tuple[str, str, str]
"""(title, service, kind) of one incident, as its record holds them."""
Single = tuple[str, str, str, int]
"""A signature all of whose kept incidents share one variant: the variant and the count."""

UNTITLED = "untitled"
"""The title of a label whose incidents all have an empty title."""


@functools.lru_cache(maxsize=1 << 14)
def _normalised(title: str) -> str:
    """Titles repeat (they are interned in the records): normalise each once."""
    return normalise_title(title)


def variant_of(record: Record) -> Variant:
    return (record.title, record.service, record.kind)


@dataclass(frozen=True, slots=True)
class Name:
    """The parts of a signature's label."""

    title: str
    service: str
    kind: str

    def render(self, template: str) -> str:
        return template.format(title=self.title or UNTITLED, service=self.service,
                               kind=self.kind)


def _most_common(counts: Mapping[str, int]) -> str:
    return min(counts, key=lambda value: (-counts[value], value))


Parts = tuple[str, str, str]
"""(normalised title, service, kind): what a label is chosen from."""


def parts_of(variant: Variant) -> Parts:
    title, service, kind = variant
    return (_normalised(title), service, kind)


def name_of(variants: Mapping[Variant, int]) -> Name:
    """Most common normalised title, service and kind among the variants (each on its
    own)."""
    tally = _Tally()
    for variant, count in variants.items():
        tally.add(parts_of(variant), count)
    return tally.name()


class _Tally:
    """Per part (normalised title, service, kind), how many incidents carry each value:
    a label is read from these few values, however many variants a signature has."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})

    def add(self, parts: Parts, count: int) -> None:
        for counts, value in zip(self.counts, parts, strict=True):
            left = counts.get(value, 0) + count
            if left > 0:
                counts[value] = left
            else:
                counts.pop(value, None)

    def copy(self) -> _Tally:
        other = _Tally()
        other.counts = (dict(self.counts[0]), dict(self.counts[1]), dict(self.counts[2]))
        return other

    def name(self) -> Name:
        title, service, kind = (_most_common(counts) for counts in self.counts)
        return Name(title, service, kind)


class _Many:
    """A signature whose kept incidents carry several variants."""

    __slots__ = ("tally", "variants")

    def __init__(self) -> None:
        self.variants: dict[Variant, int] = {}
        self.tally = _Tally()

    def add(self, variant: Variant, count: int) -> None:
        left = self.variants.get(variant, 0) + count
        if left > 0:
            self.variants[variant] = left
        else:
            self.variants.pop(variant, None)
        self.tally.add(parts_of(variant), count)


class SignatureNames:
    """Per signature, how many of the kept incidents carry each variant.

    The variant's strings are the record's own (interned), so the index adds no
    text; a signature with one variant, the usual case, is kept as one tuple, and
    one with several keeps the counts of each label part beside them, so a name
    costs a look at a few values whatever the number of incidents."""

    __slots__ = ("_variants",)

    def __init__(self) -> None:
        self._variants: dict[str, Single | _Many] = {}

    def add(self, record: Record) -> None:
        variant = variant_of(record)
        kept = self._variants.get(record.signature)
        if kept is None:
            self._variants[record.signature] = (*variant, 1)
        elif isinstance(kept, tuple):
            if kept[:3] == variant:
                self._variants[record.signature] = (*variant, kept[3] + 1)
            else:
                many = _Many()
                many.add(kept[:3], kept[3])
                many.add(variant, 1)
                self._variants[record.signature] = many
        else:
            kept.add(variant, 1)

    def remove(self, record: Record) -> None:
        variant = variant_of(record)
        kept = self._variants.get(record.signature)
        if kept is None:
            return
        if isinstance(kept, tuple):
            if kept[:3] != variant:
                return
            if kept[3] > 1:
                self._variants[record.signature] = (*variant, kept[3] - 1)
            else:
                del self._variants[record.signature]
            return
        if variant not in kept.variants:
            return
        kept.add(variant, -1)
        if len(kept.variants) == 1:
            ((last, count),) = kept.variants.items()
            self._variants[record.signature] = (*last, count)

    def single(self, signature: str) -> bool:
        """Every kept incident of the signature carries the same variant."""
        return isinstance(self._variants.get(signature), tuple)

    def _tally(self, signature: str) -> _Tally | None:
        kept = self._variants.get(signature)
        if kept is None:
            return None
        if isinstance(kept, tuple):
            tally = _Tally()
            tally.add(parts_of(kept[:3]), kept[3])
            return tally
        return kept.tally

    def name(self, signature: str) -> Name | None:
        """The signature's label parts; None when no kept incident carries it."""
        kept = self._variants.get(signature)
        if kept is None:
            return None
        if isinstance(kept, tuple):
            return Name(*parts_of(kept[:3]))
        return kept.tally.name()

    def name_if(self, signature: str, *, without: Record | None,
                with_: Record | None) -> Name | None:
        """The signature's label parts were ``without`` not counted and ``with_`` counted
        (each only if it carries the signature): its name before a change, asked after."""
        kept = self._tally(signature)
        tally = _Tally() if kept is None else kept.copy()
        if without is not None and without.signature == signature:
            tally.add(parts_of(variant_of(without)), -1)
        if with_ is not None and with_.signature == signature:
            tally.add(parts_of(variant_of(with_)), 1)
        return tally.name() if tally.counts[0] else None


def key_label(key_type: KeyType, key: str, names: SignatureNames, template: str) -> str:
    """The label of a recurrence key: a signature's rendered name (the key itself when
    no kept incident carries it), a kind's or a service's own name."""
    if key_type != "signature":
        return key
    name = names.name(key)
    return key if name is None else name.render(template)


__all__ = ["UNTITLED", "Name", "SignatureNames", "Variant", "key_label",
           "name_of", "variant_of"]
