"""Talking to Label Studio through its SDK: the address and token checked, the SDK's
errors turned into clear ones (a short message, never a server's whole HTML page)."""

from __future__ import annotations

import re

__all__ = ["LabelStudioError", "LabelStudioConnectionError", "LabelStudioAuthError",
           "base_url", "call_sdk", "connect", "field"]

#: Longest server detail quoted in an error message.
MAX_DETAIL = 300


class LabelStudioError(Exception):
    """Label Studio answered with an error (the message has its status and detail)."""


class LabelStudioConnectionError(LabelStudioError, ConnectionError):
    """No Label Studio server answered at the URL."""


class LabelStudioAuthError(LabelStudioError, PermissionError):
    """Label Studio refused the access token."""


def field(obj, name, default=None):
    """A field of an SDK object or of the plain dict the SDK hands back for annotations."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def base_url(url):
    """The server's root address: ``http(s)://host[:port][/prefix]``, without a trailing
    ``/`` or ``/api`` (the SDK adds ``/api/...`` itself)."""
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url.strip()):
        raise ValueError(f"url must be the Label Studio server's address, e.g. "
                         f"http://localhost:8080; got {url!r}")
    url = url.strip().rstrip("/")
    return url[:-len("/api")] if url.endswith("/api") else url


def check_api_key(api_key):
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError(f"api_key is empty ({api_key!r}): pass a personal access token "
                         "(Label Studio: Account & Settings > Personal Access Token)")
    return api_key.strip()


def _detail(exc, url):
    """What the server said, short: an HTML page (not the API: a wrong address) is named
    as such, a long text cut."""
    body = exc.body if exc.body is not None else ""
    text = str(field(body, "detail", body))
    if re.search(r"<(!doctype|html|head|body)\b", text[:2000], re.I):
        return (f"an HTML page of {len(text):,} characters instead of the API's answer: is "
                f"{url} the server's root address (e.g. http://localhost:8080)?")
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + " ..."


def call_sdk(url, what, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, with the SDK's errors turned into clear ones."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn(*args, **kwargs)
    except httpx.TransportError as exc:
        raise LabelStudioConnectionError(
            f"cannot reach Label Studio at {url} while {what} "
            f"({type(exc).__name__}: {exc}): is the server running at that address?"
        ) from exc
    except ApiError as exc:
        detail = _detail(exc, url)
        if exc.status_code in (401, 403):
            raise LabelStudioAuthError(
                f"Label Studio at {url} refused the access token while {what} "
                f"({exc.status_code}: {detail}). Pass a personal access token (Account & "
                "Settings > Personal Access Token) as api_key: Label Studio 1.23 and "
                "later refuse legacy API tokens by default") from exc
        raise LabelStudioError(f"Label Studio at {url} answered {exc.status_code} "
                               f"while {what}: {detail}") from exc


def connect(url, api_key, *, check=True):
    """A ``label_studio_sdk.LabelStudio`` client for ``url``, the token checked.

    Parameters
    ----------
    url : str
        The server's address (``http://localhost:8080``; a trailing ``/api`` is dropped).
    api_key : str
        A personal access token.
    check : bool, default True
        Ask the server who the token belongs to, so that a wrong address or token fails
        here, with a clear error, rather than at the first real request.

    Returns
    -------
    label_studio_sdk.LabelStudio
    """
    url, api_key = base_url(url), check_api_key(api_key)
    from label_studio_sdk import LabelStudio

    client = call_sdk(url, "checking the access token", LabelStudio, base_url=url,
                      api_key=api_key)
    if check:
        call_sdk(url, "checking the access token", client.users.whoami)
    return client
