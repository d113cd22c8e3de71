"""A small keyword table exercising every schema mode, for engine tests."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyvrrpd.config import convert as cv
from pyvrrpd.config.schema import BlockSpec, Kw, Located, Mode


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Item(Located):
    name: str = ""
    size: int = 1
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Server(Located):
    address: str = ""
    port: int = 0
    weight: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Root(Located):
    count: int = 3
    color: Color = Color.RED
    label: str | None = None
    enabled: bool = True
    items: tuple[Item, ...] = ()
    servers: tuple[Server, ...] = ()
    addresses: tuple[str, ...] = ()
    notes: tuple[tuple[str, ...], ...] = ()
    opts: Item = field(default_factory=Item)


def _server_head_parse(args: Sequence[str]) -> dict[str, Any]:
    if len(args) != 2:
        raise cv.Invalid("expected ADDRESS PORT")
    return {"address": args[0], "port": cv.integer(1, 65535).parse([args[1]])}


def _server_head_fmt(v: dict[str, Any]) -> tuple[str, ...]:
    return (str(v["address"]), str(v["port"]))


ITEM = BlockSpec(
    "item",
    Item,
    [
        Kw("size", "size", cv.integer(1, 10)),
        Kw("tag", "tags", cv.text(), mode=Mode.APPEND),
    ],
    head=cv.Conv(lambda a: {"name": cv.text("a name").parse(a)}, lambda v: (v["name"],), "name"),
    head_fields=("name",),
)
OPTS = BlockSpec("opts", Item, [Kw("size", "size", cv.integer(1, 10))])
SERVER = BlockSpec(
    "server",
    Server,
    [Kw("weight", "weight", cv.integer(0, 100))],
    head=cv.Conv(_server_head_parse, _server_head_fmt, "ADDRESS PORT", nargs=2),
    head_fields=("address", "port"),
)
ROOT = BlockSpec(
    "",
    Root,
    [
        Kw("count", "count", cv.integer(0, 255)),
        Kw("color", "color", cv.choice(Color), aliases=("colour",)),
        Kw("label", "label", cv.text()),
        Kw("disabled", "enabled", mode=Mode.FLAG, const=False),
        Kw("item", "items", mode=Mode.BLOCK, spec=ITEM, repeat=True),
        Kw("server", "servers", mode=Mode.BLOCK, spec=SERVER, repeat=True),
        Kw(
            "addresses",
            "addresses",
            mode=Mode.LINES,
            conv=cv.Conv(lambda w: " ".join(w), lambda v: tuple(v.split()), "line", None),
        ),
        Kw("note", "notes", cv.words(), mode=Mode.APPEND),
        Kw("opts", "opts", mode=Mode.BLOCK, spec=OPTS),
        Kw("fancy", mode=Mode.RECOGNISED, note="later"),
        Kw("old_count", "count", cv.integer(0, 255), deprecated_by="count"),
    ],
)
