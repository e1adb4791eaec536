"""A small client for the controller's REST API, used by the `micado` commands.

Every failure becomes an `ApiClientError` with a message a user can act on: the controller's
own message (and the ADT's errors with their paths), or why the controller could not be reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests


@dataclass
class ApiClientError(Exception):
    """`status` is the HTTP status, or None when no answer came back."""

    status: int | None
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @property
    def is_client_error(self) -> bool:
        """A request the user can fix (4xx), as opposed to a server or connection problem."""
        return self.status is not None and 400 <= self.status < 500


class ApiClient:
    def __init__(self, endpoint: str, token: str | None, timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    @property
    def has_token(self) -> bool:
        return "Authorization" in self._session.headers

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- apps --------------------------------------------------------------------------
    def submit(self, adt: str, *, app_id: str | None = None,
               params: dict[str, Any] | None = None, tick_seconds: float | None = None,
               dry_run: bool = False) -> dict[str, Any]:
        return self._json("POST", "/v1/apps", body={
            "adt": adt, "app_id": app_id, "params": params or {},
            "tick_seconds": tick_seconds, "dry_run": dry_run})

    def update(self, app_id: str, adt: str, *, params: dict[str, Any] | None = None,
               tick_seconds: float | None = None, dry_run: bool = False) -> dict[str, Any]:
        return self._json("PUT", f"/v1/apps/{_seg(app_id)}", body={
            "adt": adt, "params": params or {}, "tick_seconds": tick_seconds,
            "dry_run": dry_run})

    def delete(self, app_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/apps/{_seg(app_id)}")

    def pause(self, app_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/apps/{_seg(app_id)}/pause")

    def resume(self, app_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/apps/{_seg(app_id)}/resume")

    def list_apps(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/apps").get("apps", []))

    def get_app(self, app_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/apps/{_seg(app_id)}")

    def status(self, app_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/apps/{_seg(app_id)}/status")

    def events(self, app_id: str | None = None, since: int | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"limit": limit}
        if app_id is not None:
            query["app_id"] = app_id
        if since is not None:
            query["since"] = since
        return list(self._json("GET", "/v1/events", params=query).get("events", []))

    # --- the controller ----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    # --- plumbing ----------------------------------------------------------------------
    def _json(self, method: str, path: str, *, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._request(method, path, body=body, params=params)
        try:
            data = response.json()
        except ValueError:
            raise ApiClientError(response.status_code, f"{self.endpoint}{path} answered "
                                 "with something that is not JSON: is it a micado "
                                 "controller?") from None
        if not isinstance(data, dict):
            raise ApiClientError(response.status_code,
                                 f"{self.endpoint}{path} answered with unexpected JSON")
        return data

    def _request(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> requests.Response:
        url = self.endpoint + path
        try:
            response = self._session.request(method, url, json=body, params=params,
                                             timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise ApiClientError(None, f"the controller at {self.endpoint} did not answer "
                                       f"within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise ApiClientError(None, f"cannot reach the controller at {self.endpoint}: "
                                       f"{_reason(exc)}") from None
        except requests.RequestException as exc:
            raise ApiClientError(None, f"request to {self.endpoint} failed: "
                                       f"{type(exc).__name__}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response


def _seg(value: str) -> str:
    """An app id as one path segment, whatever it contains."""
    return quote(value, safe="")


def _reason(exc: requests.ConnectionError) -> str:
    """The innermost cause (e.g. 'Connection refused'), not urllib3's nested repr."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known",
                   "No route to host", "Temporary failure in name resolution",
                   "Network is unreachable", "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            return marker.lower() if marker != "CERTIFICATE_VERIFY_FAILED" else \
                "its TLS certificate is not trusted"
    return "connection failed"


def _error_from(response: requests.Response) -> ApiClientError:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = None
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return ApiClientError(status, detail["message"],
                              [e for e in detail.get("errors") or [] if isinstance(e, dict)],
                              [w for w in detail.get("warnings") or [] if isinstance(w, dict)])
    if isinstance(detail, str):
        return ApiClientError(status, detail)
    if isinstance(detail, list):  # a FastAPI-style validation list
        errors = [{"path": ".".join(str(p) for p in e.get("loc", [])),
                   "message": str(e.get("msg", ""))} for e in detail if isinstance(e, dict)]
        return ApiClientError(status, "invalid request", errors)
    reason = response.reason or "error"
    return ApiClientError(status, f"the controller answered {status} {reason}")
