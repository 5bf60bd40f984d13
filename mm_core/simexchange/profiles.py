"""Simulator profiles: the market model's parameters as TOML files, loaded with strict validation.

Why files: a profile says what market the simulator imitates and where each number comes from
(``default`` is fitted to real Kraken depth-10 traffic, ``busy`` to a busier session's figures,
``mm fit-sim`` writes one from the user's own capture). Comments in the file carry the reasoning;
the loader keeps only the numbers.

Layout: a ``[profile]`` table of free-text strings (name, description, source ...) and one table
per group of :class:`~mm_core.simexchange.market.MarketParams` fields (:data:`SECTIONS`). Every key
must be known and of the right type, every value in range (the model's own validation), and an
error names the file, the key and what is wrong. Keys left out take the ``default`` profile's
value, so a profile can state only what differs.

Where profiles live: ``config/sim-profiles/NAME.toml`` of the checkout; ``--profile`` also takes a
path to any ``.toml`` file. ``default`` needs no file: it is :class:`MarketParams`'s defaults (a
test pins ``config/sim-profiles/default.toml`` to them).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from mm_core.simexchange.market import MarketParams

DEFAULT_PROFILE = "default"

SECTIONS: dict[str, tuple[str, ...]] = {
    "arrivals": ("updates_per_second", "burst_branching", "burst_decay_per_s", "deep_updates_per_second"),
    "mix": ("top_qty_share", "level_qty_share", "insert_share", "delete_share", "move_share", "close_share",
            "close_to_one_tick", "double_change_share", "busy_side_share", "qty_rank_weights",
            "delete_rank_weights"),
    "book": ("levels_per_side", "min_levels_per_side", "level_gap_ticks"),
    "sizes": ("small_qty_median", "small_qty_sigma", "large_qty_median", "large_qty_sigma", "large_qty_share",
              "top_large_share", "requote_sigma"),
    "trades": ("trades_per_second", "trade_qty_median", "trade_qty_sigma", "sweep_share", "sweep_levels_mean"),
    "spells": ("spells_per_hour", "spell_mean_s", "spell_rate_factor", "spell_move_share", "spell_close_share",
               "spell_sweep_levels_mean"),
    "jumps": ("jumps_per_hour", "jump_bp", "jump_branching", "jump_decay_s"),
    "direction": ("imbalance_weight",),
    "price": ("start_price", "price_floor", "price_cap"),
}
META_SECTION = "profile"


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Profile:
    name: str
    params: MarketParams
    path: Optional[Path] = None
    meta: dict[str, str] = field(default_factory=dict)


def profile_dir() -> Path:
    """``config/sim-profiles`` of the checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "config" / "sim-profiles"


def profile_names() -> list[str]:
    """Names of the shipped profiles (``default`` always among them)."""
    d = profile_dir()
    names = {p.stem for p in d.glob("*.toml")} if d.is_dir() else set()
    return sorted(names | {DEFAULT_PROFILE})


def _field_types() -> dict[str, Any]:
    return get_type_hints(MarketParams)


def _check_value(key: str, value: Any, hint: Any, where: str) -> Any:
    """The value as MarketParams wants it, or a ProfileError naming the key."""
    origin = get_origin(hint)
    if origin is Union:  # Optional[float]
        hint = next(a for a in get_args(hint) if a is not type(None))
        origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not value or not all(_is_number(v) for v in value):
            raise ProfileError(f"{where}: {key} must be a non-empty array of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if not _is_number(value):
            raise ProfileError(f"{where}: {key} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ProfileError(f"{where}: {key} must be finite, got {value!r}")
        return float(value)
    raise ProfileError(f"{where}: {key}: unsupported field type {hint!r}")  # pragma: no cover


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def params_from_tables(tables: dict[str, Any], where: str, base: Optional[MarketParams] = None) -> tuple[MarketParams, dict[str, str]]:
    """MarketParams (and the ``[profile]`` strings) from parsed TOML tables, strictly checked."""
    hints = _field_types()
    values: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for section, body in tables.items():
        if section == META_SECTION:
            if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
                raise ProfileError(f"{where}: [{META_SECTION}] holds text only (name, description, source ...)")
            meta = dict(body)
            continue
        if section not in SECTIONS:
            raise ProfileError(f"{where}: unknown table [{section}]; known: {', '.join([META_SECTION, *SECTIONS])}")
        if not isinstance(body, dict):
            raise ProfileError(f"{where}: {section} must be a table ([{section}])")
        for key, value in body.items():
            if key not in SECTIONS[section]:
                raise ProfileError(f"{where}: unknown key {section}.{key}; known in [{section}]: "
                                   f"{', '.join(SECTIONS[section])}")
            values[key] = _check_value(f"{section}.{key}", value, hints[key], where)
    try:
        params = dataclasses.replace(base or MarketParams(), **values)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    return params, meta


def load_profile(name_or_path: Union[str, Path]) -> Profile:
    """A shipped profile by name (``default``, ``busy`` ...) or any profile file by path."""
    text = str(name_or_path)
    path: Optional[Path] = None
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
    elif text == DEFAULT_PROFILE and not (profile_dir() / f"{text}.toml").is_file():
        return Profile(DEFAULT_PROFILE, MarketParams(), None, {"name": DEFAULT_PROFILE})
    else:
        path = profile_dir() / f"{text}.toml"
        if not path.is_file():
            raise ProfileError(f"unknown simulator profile {text!r}; known: {', '.join(profile_names())} "
                               "(or give a path to a .toml file)")
    if not path.is_file():
        raise ProfileError(f"{path}: no such profile file")
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    params, meta = params_from_tables(tables, str(path))
    return Profile(meta.get("name", path.stem), params, path, meta)


# ----------------------------------------------------------------------------- writing


def _toml_value(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_toml_number(x) for x in v) + "]"
    return _toml_number(v)


def _toml_number(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    text = f"{float(v):.6g}"
    if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    return text


def _toml_text(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def profile_toml(params: MarketParams, meta: dict[str, str], notes: Optional[dict[str, str]] = None) -> str:
    """A complete profile file (every key written), ``notes`` as comments beside keys."""
    notes = notes or {}
    lines = [f"[{META_SECTION}]"]
    lines += [f"{k} = {_toml_text(v)}" for k, v in meta.items()]
    for section, keys in SECTIONS.items():
        lines += ["", f"[{section}]"]
        for key in keys:
            value = getattr(params, key)
            if value is None:
                lines.append(f"# {key} unset: drawn from the seed")
                continue
            note = notes.get(key)
            lines.append(f"{key} = {_toml_value(value)}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"
