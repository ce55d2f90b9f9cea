"""One Settings object: every variable declared once, read once, checked at start-up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import cli
from yaml_workflow.settings import Settings, get_settings, load_settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "yaml_workflow"


def test_the_docs_table_is_the_one_generated_from_the_class() -> None:
    doc = (ROOT / "docs" / "settings.md").read_text()
    assert settings_table() in doc, "docs/settings.md is stale: run scripts/settings-doc"


def test_every_variable_the_docs_table_lists_is_a_field() -> None:
    listed = set(re.findall(r"`(YAML_WORKFLOW_[A-Z_]+)`", settings_table()))
    assert listed == {f"YAML_WORKFLOW_{name.upper()}" for name in Settings.model_fields}


def test_only_the_settings_module_and_the_step_environment_modules_read_os_environ() -> None:
    readers = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                     if re.search(r"os\.environ|getenv", p.read_text()))
    assert "yaml_workflow/settings.py" in readers
    # settings_defaults.py is the pydantic-free half of the settings module
    readers = [r for r in readers if r != "yaml_workflow/settings_defaults.py"]
    assert len(readers) <= 3, readers


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("YAML_WORKFLOW_STEP_TIMEOUT", "soon", "YAML_WORKFLOW_STEP_TIMEOUT='soon'"),
    ("YAML_WORKFLOW_WORKER_POOL", "gevent", "YAML_WORKFLOW_WORKER_POOL='gevent'"),
    ("YAML_WORKFLOW_BROKER_URL", "http://example.com/0", "YAML_WORKFLOW_BROKER_URL="),
    ("YAML_WORKFLOW_STATE_URL", "redis://host:notaport/0", "YAML_WORKFLOW_STATE_URL="),
    ("YAML_WORKFLOW_CLAIM_TTL", "-3", "YAML_WORKFLOW_CLAIM_TTL='-3'"),
    ("YAML_WORKFLOW_FSYNC", "perhaps", "YAML_WORKFLOW_FSYNC='perhaps'"),
])
def test_a_bad_value_is_one_line_naming_the_variable_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, says: str) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("steps:\n  - name: a\n    task: noop\n")
    monkeypatch.setenv(variable, value)
    res = cli("run", str(wf), "--base-dir", str(tmp_path / "runs"))
    code, err = res.code, res.err
    assert code == 2
    assert err.count("\n") == 1 and says in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists(), "nothing may run before the settings are checked"


def test_durations_take_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YAML_WORKFLOW_FINISHED_TTL", "7d")
    monkeypatch.setenv("YAML_WORKFLOW_STEP_TIMEOUT", "90")
    settings = load_settings()
    assert settings.finished_ttl == 7 * 86400
    assert settings.step_timeout == 90


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", "changed")
    assert get_settings() is first
    assert load_settings().key_prefix == "changed"


def test_config_lists_every_setting_with_its_source_and_masks_passwords(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YAML_WORKFLOW_BROKER_URL", "redis://user:s3cr3t-pw@redis.internal:6379/0")
    monkeypatch.setenv("YAML_WORKFLOW_STEP_TIMEOUT", "120")
    res = cli("config", "--format", "json")
    code, out, err = res.code, res.out, res.err
    assert code == 0, err
    rows = {row["variable"]: row for row in json.loads(out)}
    assert set(rows) == {f"YAML_WORKFLOW_{name.upper()}" for name in Settings.model_fields}
    assert rows["YAML_WORKFLOW_STEP_TIMEOUT"] == {**rows["YAML_WORKFLOW_STEP_TIMEOUT"],
                                                  "value": 120.0, "source": "environment"}
    assert rows["YAML_WORKFLOW_KEY_PREFIX"]["source"] == "default"
    assert "s3cr3t-pw" not in out
    assert rows["YAML_WORKFLOW_BROKER_URL"]["value"] == "redis://user:***@redis.internal:6379/0"
    res = cli("config")
    code, text, _ = res.code, res.out, res.err
    assert code == 0 and "s3cr3t-pw" not in text and "YAML_WORKFLOW_STEP_TIMEOUT" in text


def test_the_built_in_default_broker_alone_does_not_make_commands_consult_redis(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YAML_WORKFLOW_BROKER_URL", raising=False)
    assert load_settings().redis_state_url is None
    monkeypatch.setenv("YAML_WORKFLOW_BROKER_URL", "redis://fleet:6379/0")
    assert load_settings().redis_state_url == "redis://fleet:6379/0"
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", "file:///tmp/x")
    assert load_settings().redis_state_url is None


def test_a_bad_setting_stops_a_real_process_with_exit_2(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "YAML_WORKFLOW_VISIBILITY_TIMEOUT": "an hour"}
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "config"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: YAML_WORKFLOW_VISIBILITY_TIMEOUT='an hour'")


def _without_settings_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("YAML_WORKFLOW_"):
            monkeypatch.delenv(key)


def test_without_variables_the_plain_defaults_equal_the_declared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_settings_variables(monkeypatch)
    plain = load_settings()
    declared = Settings()
    assert type(plain) is not Settings
    for name in Settings.model_fields:
        assert getattr(plain, name) == getattr(declared, name), name
        assert type(getattr(plain, name)) is type(getattr(declared, name)), name
    assert plain.model_fields_set == declared.model_fields_set == set()
    for prop in ("effective_state_url", "redis_state_url", "effective_stall_after"):
        assert getattr(plain, prop) == getattr(declared, prop), prop


def test_the_plain_defaults_are_frozen_and_copy_like_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_settings_variables(monkeypatch)
    plain = load_settings()
    with pytest.raises(TypeError):
        plain.debug = True  # type: ignore[misc]
    copy = plain.model_copy(update={"worker_pool": "solo"})
    assert (copy.worker_pool, plain.worker_pool) == ("solo", "prefork")
    assert copy.model_fields_set == {"worker_pool"}


def test_a_lowercase_variable_still_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_settings_variables(monkeypatch)
    monkeypatch.setenv("yaml_workflow_step_timeout", "5m")
    assert load_settings().step_timeout == 300


def test_a_command_without_variables_does_not_import_pydantic_settings(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("YAML_WORKFLOW_")}
    probe = ("import sys; from yaml_workflow.cli.main import run_cli; run_cli(['list', '--tasks']);"
             "print('pydantic_settings' in sys.modules, 'celery' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout + out.stderr
