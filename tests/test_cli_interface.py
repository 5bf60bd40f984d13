"""The interface every command shares, checked by walking all parsers (nothing is run)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import mm_core.cli as cli
from mm_core.cli import COMMANDS, build_parser

EXAMPLES: dict[str, str] = getattr(cli, "EXAMPLES", {})

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, p: argparse.ArgumentParser) -> None:
        out[prefix] = p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(f"{prefix} {name}", child)

    for name, p in sub.choices.items():
        walk(name, p)
    return out


PARSERS = _commands()


def test_every_command_is_walked_and_has_an_example() -> None:
    assert set(COMMANDS) <= set(PARSERS)
    assert set(PARSERS) <= set(EXAMPLES)  # nested subcommands too


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help_and_shows_its_default(name: str) -> None:
    p = PARSERS[name]
    text = p.format_help()
    for a in p._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert a.help and a.help.strip(), f"mm {name} {a.option_strings or a.dest}: no help"
        if a.option_strings and a.default not in (None, False, [], argparse.SUPPRESS):
            formatter = p._get_formatter()
            shown = formatter._expand_help(a) if hasattr(formatter, "_expand_help") else a.help
            assert "default" in shown.lower(), f"mm {name} {a.option_strings[0]}: default {a.default!r} not shown"
    assert "example:" in text, f"mm {name}: no example in --help"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_parses(name: str) -> None:
    words = shlex.split(EXAMPLES[name])
    assert words[:1 + len(name.split())] == ["mm", *name.split()]
    args = build_parser(name.split()[0]).parse_args(words[1:])
    assert getattr(args, "func", None) is not None or name == "incidents"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0 and "mm_core 0.1.0" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["qa", "analyze", "gate", "daily", "replay", "backtest", "sweep", "calibrate",
                                  "research"])
def test_data_path_is_positional_everywhere(name: str) -> None:
    p = PARSERS[name]
    positionals = [a for a in p._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    assert positionals, f"mm {name} takes its data path positionally"


@pytest.mark.parametrize("name", ["qa", "analyze"])
def test_file_flag_kept_and_positional_accepted(name: str, tmp_path: Path) -> None:
    from mm_core.arg_types import data_path

    p = PARSERS[name]
    assert data_path(p.parse_args(["x.csv"]), name) == "x.csv"
    assert data_path(p.parse_args(["--file", "x.csv"]), name) == "x.csv"
    with pytest.raises(ValueError):
        data_path(p.parse_args(["a.csv", "--file", "b.csv"]), name)


def test_users_own_scripts_keep_file_flag(tmp_path: Path) -> None:
    """The user's commands: ``python mm_core/data_quality_check.py --file F --strict`` still parses."""
    for script in ("data_quality_check.py", "analyze.py"):
        r = subprocess.run([sys.executable, str(ROOT / "mm_core" / script), "--file", str(tmp_path / "none.csv"),
                            *(["--strict"] if script.startswith("data") else [])],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr and "none.csv" in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "mm_core" / "collector.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--max-seconds" in r.stdout


@pytest.mark.parametrize("name", ["research", "backtest", "sweep"])
def test_same_predictive_switch(name: str) -> None:
    p = PARSERS[name]
    data = ["--sim-seconds", "10"] if name == "research" else []
    assert p.parse_args([*data, "--predictive"]).predictive is True
    assert p.parse_args([*data, "--no-predictive"]).predictive is False


@pytest.mark.parametrize("name", ["collect", "demo", "analyze", "gate", "daily", "backtest", "sweep",
                                  "tca", "rollout-check", "qa"])
def test_config_where_it_matters(name: str) -> None:
    assert "--config" in PARSERS[name]._option_string_actions


def test_research_takes_run_directories_positionally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mm_core.cli import main as mm_main

    args = build_parser("research").parse_args(["research", "runs/day1", "runs/day2"])
    assert [str(p) for p in args.run_dirs] == ["runs/day1", "runs/day2"]
    assert mm_main(["research", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert "nope" in capsys.readouterr().err
    assert mm_main(["research", "x", "--sim-seconds", "10"]) == 2


def test_qa_reads_its_gap_bar_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mm qa --config`` uses the config's [gate] max_gap_s, the bar the gate itself applies."""
    from mm_core.cli import main as mm_main
    from mm_core.config import default_config_path

    csv = tmp_path / "F.csv"
    csv.write_text("exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty\n"
                   "kraken,BTC/EUR,1700000000000000000,1700000000005000000,5.0,1.0,1.0,1.1,1.0\n"
                   "kraken,BTC/EUR,1700000030000000000,1700000030005000000,5.0,1.0,1.0,1.1,1.0\n", encoding="utf-8")
    text = default_config_path().read_text(encoding="utf-8").replace("max_gap_s = 60.0", "max_gap_s = 10.0")
    cfg = tmp_path / "c.toml"
    cfg.write_text(text, encoding="utf-8")
    mm_main(["qa", str(csv), "--config", str(cfg), "--json"])
    doc = json.loads(capsys.readouterr().out)
    gap = next(c for c in doc["checks"] if "gap" in c["name"])
    assert gap["status"] == "FAIL", gap  # a 30 s gap breaks the config's 10 s bar (the default 60 s would pass)
