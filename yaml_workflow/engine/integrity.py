"""Stored workflows and params are data, not code: each run carries a keyed digest of both.

A run stores its compiled workflow and its params with itself (the state file, the
journals, Redis), so that `resume`, `retry` and `skip` need no file.  Anyone who can
write the workspace (a shared volume) could otherwise edit them and make the next resume
run commands the author never wrote.  So each run records an HMAC-SHA256 of its workflow
and one of its params, keyed with a secret the writer of the workspace does not have:

- ``YAML_WORKFLOW_FLEET_KEY`` when set (give every submitter and worker of a fleet the
  same one);
- else a per-user key file, ``$XDG_CONFIG_HOME/yaml-workflow/key`` (``~/.config/...``),
  created (mode 0600) the first time it is needed.

A resume whose stored workflow does not match its digest is refused (exit 2, naming the
file) unless the workflow file is given again and matches the recorded step
fingerprints; stored params that do not match are refused unless new ones are given
with ``--override-params``.  A run recorded before digests resumes only with its file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from ..settings import get_settings

WORKFLOW_DIGEST = "workflow_digest"
PARAMS_DIGEST = "params_digest"
SECRET_REFS = "param_secrets"  # written by engine.secrets.Masker


def key_file() -> Path:
    """Where the per-user key lives."""
    return Path(get_settings().key_file)


def signing_key() -> bytes:
    """The fleet key when set, else this user's key (made once, readable by this user only)."""
    configured = get_settings().fleet_key
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value().encode()
    path = key_file()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_hex(32).encode()
    # Written whole under a private name, then linked into place: a process that starts
    # at the same moment never reads a half-written key, and the first link wins.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        os.link(tmp, path)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _digest(run_id: str, kind: str, value: Any) -> str:
    text = json.dumps({"run": run_id, kind: value}, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(signing_key(), text.encode(), hashlib.sha256).hexdigest()


def workflow_digest(run_id: str, workflow: Any) -> str:
    """The digest of a run's stored workflow (its JSON form)."""
    return _digest(run_id, "workflow", workflow)


def params_digest(run_id: str, params: Any, secret_refs: Any = None) -> str:
    """The digest of a run's params, and of the references to secrets some are stored as
    (engine.secrets: editing a reference could hand a param another secret's value)."""
    return _digest(run_id, "params", {"params": params, "secret_refs": secret_refs} if secret_refs else params)


def _matches(expected: Any, actual: str) -> bool:
    return isinstance(expected, str) and hmac.compare_digest(expected, actual)


def workflow_is_intact(doc: dict[str, Any]) -> bool | None:
    """True when the stored workflow matches its digest, False when not, None when the run
    was recorded before digests."""
    if WORKFLOW_DIGEST not in doc:
        return None
    return _matches(doc.get(WORKFLOW_DIGEST), workflow_digest(str(doc.get("workflow_id")), doc.get("workflow")))


def params_are_intact(doc: dict[str, Any]) -> bool | None:
    """True when the stored params match their digest, False when not, None before digests."""
    if PARAMS_DIGEST not in doc:
        return None
    return _matches(doc.get(PARAMS_DIGEST), params_digest(str(doc.get("workflow_id")), doc.get("params") or {},
                                                          doc.get(SECRET_REFS)))


def sign(header: dict[str, Any]) -> dict[str, Any]:
    """A ``run`` header with the digests of its workflow and params, as they are stored."""
    run_id = str(header["workflow_id"])
    return {**header, WORKFLOW_DIGEST: workflow_digest(run_id, header.get("workflow")),
            PARAMS_DIGEST: params_digest(run_id, header.get("params") or {}, header.get(SECRET_REFS))}


def signed_params(run_id: str, params: dict[str, Any],
                  secret_refs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The transition that gives a run new params (a resume with --override-params), as
    stored: masked, with their references to secrets."""
    return {"t": "params", "params": params, SECRET_REFS: list(secret_refs or []),
            PARAMS_DIGEST: params_digest(run_id, params, secret_refs)}
