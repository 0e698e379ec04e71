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
(title, service, kind), with the records' own strings. A computed signature
hashes the normalised title, service and kind, so its incidents differ at most
by numbers and ids in their titles: a label costs a look-up of those few
variants (usually one), whatever the number of incidents.
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


def name_of(variants: Mapping[Variant, int]) -> Name:
    """Most common normalised title, service and kind among the variants (each on its
    own)."""
    parts: list[dict[str, int]] = [{}, {}, {}]
    for (title, service, kind), count in variants.items():
        for part, value in zip(parts, (_normalised(title), service, kind), strict=True):
            part[value] = part.get(value, 0) + count
    title, service, kind = (_most_common(part) for part in parts)
    return Name(title, service, kind)


class SignatureNames:
    """Per signature, how many of the kept incidents carry each variant.

    The variant's strings are the record's own (interned), so the index adds no
    text; a signature with one variant, the usual case, is kept as one tuple."""

    __slots__ = ("_variants",)

    def __init__(self) -> None:
        self._variants: dict[str, Single | dict[Variant, int]] = {}

    def add(self, record: Record) -> None:
        variant = variant_of(record)
        kept = self._variants.get(record.signature)
        if kept is None:
            self._variants[record.signature] = (*variant, 1)
        elif isinstance(kept, tuple):
            if kept[:3] == variant:
                self._variants[record.signature] = (*variant, kept[3] + 1)
            else:
                self._variants[record.signature] = {kept[:3]: kept[3], variant: 1}
        else:
            kept[variant] = kept.get(variant, 0) + 1

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
        left = kept.get(variant, 0) - 1
        if left > 0:
            kept[variant] = left
            return
        kept.pop(variant, None)
        if len(kept) == 1:
            ((last, count),) = kept.items()
            self._variants[record.signature] = (*last, count)

    def name(self, signature: str) -> Name | None:
        """The signature's label parts; None when no kept incident carries it."""
        kept = self._variants.get(signature)
        if kept is None:
            return None
        return name_of({kept[:3]: kept[3]} if isinstance(kept, tuple) else kept)

    def name_if(self, signature: str, *, without: Record | None,
                with_: Record | None) -> Name | None:
        """The signature's label parts were ``without`` not counted and ``with_`` counted
        (each only if it carries the signature): its name before a change, asked after."""
        kept = self._variants.get(signature)
        counts: dict[Variant, int] = ({} if kept is None else {kept[:3]: kept[3]}
                                      if isinstance(kept, tuple) else dict(kept))
        if without is not None and without.signature == signature:
            variant = variant_of(without)
            left = counts.get(variant, 0) - 1
            if left > 0:
                counts[variant] = left
            else:
                counts.pop(variant, None)
        if with_ is not None and with_.signature == signature:
            variant = variant_of(with_)
            counts[variant] = counts.get(variant, 0) + 1
        return name_of(counts) if counts else None


def key_label(key_type: KeyType, key: str, names: SignatureNames, template: str) -> str:
    """The label of a recurrence key: a signature's rendered name (the key itself when
    no kept incident carries it), a kind's or a service's own name."""
    if key_type != "signature":
        return key
    name = names.name(key)
    return key if name is None else name.render(template)


__all__ = ["UNTITLED", "Name", "SignatureNames", "Variant", "key_label",
           "name_of", "variant_of"]
