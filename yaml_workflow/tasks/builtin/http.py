"""The ``http.request`` task, on the standard library's urllib (no extra dependency)."""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...exceptions import TaskError
from ..context import TaskContext
from ..registry import builtin_task


# The builtin bases make `retry.on_error: [ConnectionError]` / `[TimeoutError]` match.
class HttpConnectionError(TaskError, ConnectionError):
    """The server could not be reached or dropped the connection."""


class HttpTimeoutError(TaskError, TimeoutError):
    """The server did not answer within the timeout."""


class HttpStatusError(TaskError):
    """The server answered with status >= 400 and ``raise_for_status`` was set."""


class HttpAuth(BaseModel):
    """Basic (``username``/``password``) or bearer (``token``) authentication."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    username: str | None = None
    password: str | None = None
    token: str | None = None


class HttpRequestInputs(BaseModel):
    """Inputs of ``http.request``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    url: str
    method: str = "GET"
    headers: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    timeout: float = 30.0
    auth: HttpAuth | None = None
    raise_for_status: bool = False


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, (dict, list)):
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return json.dumps(body).encode("utf-8")
    if isinstance(body, bytes):
        return body
    return str(body).encode("utf-8")


def _auth_header(auth: HttpAuth) -> str:
    if auth.token is not None:
        return f"Bearer {auth.token}"
    pair = f"{auth.username or ''}:{auth.password or ''}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def send(
    step: str,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], str]:
    """One HTTP exchange: (status, headers, text body); network failures raise our errors."""
    # urllib pulls in http.client and email (~25 ms): imported only when a request is made.
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        # urllib would also open file:// and ftp:// URLs, reaching past the workspace.
        raise TaskError(f"step '{step}': only http and https URLs are allowed, got '{url}'")
    headers = dict(headers or {})
    data = _encode_body(body, headers)
    request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), _text(response.read())
    except urllib.error.HTTPError as err:
        # A 4xx/5xx is an answer, not a network failure: the caller decides.
        with err:
            return err.code, dict(err.headers.items()), _text(err.read())
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise HttpTimeoutError(
                f"step '{step}': {method} {url} timed out after {timeout:g}s"
            ) from None
        raise HttpConnectionError(f"step '{step}': {method} {url} failed: {err.reason}") from None
    except TimeoutError:
        raise HttpTimeoutError(
            f"step '{step}': {method} {url} timed out after {timeout:g}s"
        ) from None
    except (OSError, http.client.HTTPException) as err:
        raise HttpConnectionError(f"step '{step}': {method} {url} failed: {err}") from None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


@builtin_task("http.request", inputs=HttpRequestInputs, aliases=("http_request",))
def http_request(inputs: HttpRequestInputs, ctx: TaskContext) -> dict[str, Any]:
    """Make an HTTP request; result ``{status_code, headers, body, json}``."""
    headers = {str(k): str(v) for k, v in inputs.headers.items()}
    if inputs.auth is not None:
        headers["Authorization"] = _auth_header(inputs.auth)
    remaining = ctx.remaining()
    timeout = inputs.timeout if remaining is None else min(inputs.timeout, remaining)
    status, response_headers, text = send(
        ctx.step,
        inputs.url,
        method=inputs.method,
        headers=headers,
        body=inputs.body,
        timeout=timeout,
    )
    if inputs.raise_for_status and status >= 400:
        raise HttpStatusError(
            f"step '{ctx.step}': {inputs.method.upper()} {inputs.url} returned {status}"
        )
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    return {"status_code": status, "headers": response_headers, "body": text, "json": parsed}
