"""Registries: the methods, augmentations and backbones a run can choose, each registered once by name.

An :class:`Entry` is plain data: the name, the words the CLI shows, the builder as a ``"module:function"`` string
(imported only when a run is built, so the table sits below the packages it names, as edm2 names its classes by
string), the config fields it reads (``uses``) and, for a method, the fields it sets (``preset``). The tables
themselves live in :mod:`fakeclr.config` next to the options they fill; ``fakeclr train``'s choices and help come
from them, and the training loop builds what a config names through :meth:`Registry.build`. docs/architecture.md
shows what adding one touches.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .errors import UserError


@dataclass(frozen=True)
class Entry:
    """One registered choice.

    Attributes:
        name: what the config and the flag say (``ada-linear``).
        label: a few words shown after the name in ``--help`` (``adaptive p``); empty for none.
        build: ``"package.module:function"``, the builder the training loop calls.
        uses: the fields of the choice's config section it reads; a flag of that section that it does not read
            is refused when given (``--aug none --p 0.5``). A backbone lists the config paths that only it reads
            (``loss.r1_gamma``), since its options live in several sections.
        preset: fields of the section that the choice sets (a method's composition of parts).
    """
    name: str
    label: str
    build: str
    uses: tuple[str, ...] = ()
    preset: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """Named :class:`Entry` objects of one kind (``augmentation``, set by ``--aug``)."""

    def __init__(self, kind: str, flag: str, entries: Iterable[Entry]):
        self.kind, self.flag = kind, flag
        self._entries = {e.name: e for e in entries}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries.values())

    def get(self, name: str) -> Entry:
        """The entry called ``name``; one sentence naming the flag and the choices if there is none."""
        if name not in self._entries:
            raise UserError(f"Unknown {self.kind} '{name}' ({self.flag}); choose one of: {', '.join(self.names)}.")
        return self._entries[name]

    def describe(self) -> str:
        """The choices as ``--help`` lists them: ``ada (adaptive p), ada-linear, fixed (needs --p)``."""
        return ", ".join(e.name + (f" ({e.label})" if e.label else "") for e in self._entries.values())

    def builder(self, name: str) -> Callable[..., Any]:
        """The builder function of ``name``, imported from its module."""
        module, _, attr = self.get(name).build.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, name: str, *args, **kwargs) -> Any:
        return self.builder(name)(*args, **kwargs)
