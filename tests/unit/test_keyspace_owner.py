"""One owner of the fleet's Redis keyspace (#12), measured on the package's source.

``state/stores/redis`` names every key and holds every script; no other module builds a
key, makes a raw client or registers a script.  (How many modules read the environment
is measured in test_settings.py.)  Comments and docstrings count: a key written in a
comment is a key someone will copy.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "yaml_workflow"
OWNER = PACKAGE / "state" / "stores" / "redis"
SOURCES = sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.lua"), *(ROOT / "workers").rglob("*.py")])


def modules_matching(pattern: str) -> list[str]:
    """The package's files whose text matches ``pattern``, relative to the repository."""
    return [str(p.relative_to(ROOT)) for p in SOURCES if re.search(pattern, p.read_text())]


def outside_owner(files: list[str]) -> list[str]:
    owner = str(OWNER.relative_to(ROOT)) + "/"
    return [f for f in files if not f.startswith(owner)]


def test_the_fleet_key_pattern_is_written_in_at_most_two_modules_of_the_owner() -> None:
    found = modules_matching(r":run:")
    assert found, "the measure no longer finds the keys module: is the pattern still right?"
    assert len(found) <= 2, found
    assert outside_owner(found) == [], found


def test_only_the_owner_makes_raw_redis_clients() -> None:
    found = modules_matching(r"\bRedis\(|StrictRedis\(|\.from_url\(")
    assert found, "the measure no longer finds the owner's connection: is the pattern still right?"
    assert outside_owner(found) == [], found


def test_only_the_owner_registers_or_sends_scripts() -> None:
    found = modules_matching(r"register_script|\.evalsha\(|\.eval\(|script_load")
    assert found and outside_owner(found) == [], found


def test_every_script_lives_in_the_owner_s_lua_folder() -> None:
    # Lua sent from a Python string would be a script with no owner.
    found = modules_matching(r"redis\.call\(")
    assert found and all(f.endswith(".lua") and f.startswith(str(OWNER.relative_to(ROOT))) for f in found), found


def test_the_default_key_prefix_is_written_once() -> None:
    assert modules_matching(r"[\"']ywf[\"']") == ["yaml_workflow/settings_defaults.py"]
