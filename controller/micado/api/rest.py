"""The controller's REST API (FastAPI; OpenAPI at /docs), plus MiCADO's submitter routes.

Built by `create_api` around an `AppManager`, so nothing here is global. Authentication and
body-size limits are enforced by one ASGI guard in front of the routes: it runs before FastAPI
reads a body, so an unauthenticated client cannot make the controller parse (or buffer) a large
request, and it turns any unexpected exception into a 500 whose body never carries a traceback.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from fastapi import APIRouter, FastAPI, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from micado import __version__
from micado.adt.errors import format_path
from micado.adt.yamlio import MAX_DEPTH, too_deep
from micado.api.auth import check_bearer
from micado.control.apps import (
    ActuatorFailed,
    AppError,
    AppExists,
    AppNotFound,
    InvalidAdt,
    InvalidRequest,
)

if TYPE_CHECKING:
    from micado.control.apps import AppManager
    from micado.control.telemetry import Telemetry

log = logging.getLogger(__name__)

MAX_ADT_CHARS = 1024 * 1024
MAX_PARAMS = 200
MAX_BODY_BYTES = 4 * 1024 * 1024  # an ADT at its limit, JSON-escaped, with room to spare
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
COMPAT_PREFIX = "/toscasubmitter/v2.0"
MAX_MESSAGE_ERRORS = 20  # located errors spelled out in a compatibility route's `message`
INTERNAL_ERROR = "internal error, see the controller log"
URL_REFUSED = "fetching ADTs from a URL is not supported; send the ADT itself"

AppIdField = Annotated[str | None, Field(default=None, max_length=63)]


class UpdateBody(BaseModel):
    """A new version of an app: the ADT text and how to compile and run it."""

    model_config = ConfigDict(extra="forbid")

    adt: str = Field(max_length=MAX_ADT_CHARS, description="The ADT as YAML text")
    params: dict[str, Any] = Field(default_factory=dict, max_length=MAX_PARAMS,
                                   description="Values for the ADT's inputs: text, numbers, "
                                               "true/false")
    tick_seconds: float | None = Field(default=None, allow_inf_nan=False,
                                       description="Seconds between the app's evaluations")
    dry_run: bool = Field(default=False, description="Only show what would change")

    @field_validator("params")
    @classmethod
    def _scalar_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """One clear message per bad value, rather than one per member of a type union."""
        for name, value in params.items():
            if not name or len(name) > 200:
                raise ValueError(f"{name!r} is not an input name")
            if not isinstance(value, str | int | float | bool) or (
                    isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"{name}: must be text, a number or true/false")
        return params


class SubmitBody(UpdateBody):
    """A new app; without `app_id` the controller picks one."""

    app_id: AppIdField


_STATUS_OF: tuple[tuple[type[AppError], int], ...] = (
    (AppNotFound, 404),
    (AppExists, 409),
    (InvalidAdt, 422),
    (InvalidRequest, 422),
    (ActuatorFailed, 502),
)


def _error_body(request_path: str, detail: dict[str, Any]) -> dict[str, Any]:
    """MiCADO's clients read a top-level `message`; ours read `detail`."""
    if request_path.startswith(COMPAT_PREFIX):
        return {"message": _compat_message(detail), "detail": detail}
    return {"detail": detail}


def _compat_message(detail: dict[str, Any]) -> str:
    """The message plus each located error: all that micado-client shows of an error answer."""
    message = str(detail.get("message") or "")
    errors = detail.get("errors") or []
    if not errors:
        return message
    lines = [f"  {e.get('path')}: {e.get('message')}" for e in errors[:MAX_MESSAGE_ERRORS]]
    if len(errors) > MAX_MESSAGE_ERRORS:
        lines.append(f"  ... and {len(errors) - MAX_MESSAGE_ERRORS} more (detail.errors)")
    return message + ":\n" + "\n".join(lines)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(request)"


class _Guard:
    """Bearer auth, body-size limit and the last-resort 500, in front of the whole app."""

    def __init__(self, app: ASGIApp, token: str, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if path not in PUBLIC_PATHS:
            header = headers.get("authorization")
            if not check_bearer(header, self.token):
                message = ("invalid bearer token" if header else
                           "missing bearer token: send 'Authorization: Bearer <token>' (the "
                           "token is in the controller's token_file)")
                await _send_json(send, 401, _error_body(path, {"message": message}),
                                 {"www-authenticate": "Bearer"})
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await _send_json(send, 413, _error_body(path, {"message": self._too_large()}))
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, detail=self._too_large())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            log.exception("internal error in %s %s", scope.get("method"), path)
            if started:
                raise
            await _send_json(send, 500, _error_body(path, {"message": INTERNAL_ERROR}))

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body // (1024 * 1024)} MiB"


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     extra_headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(data)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1"))
                for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def create_api(manager: AppManager, telemetry: Telemetry, token: str) -> FastAPI:
    """The API around one manager; every route but /healthz and the docs needs the token."""
    if not token:
        raise ValueError("the API token must not be empty")
    api = FastAPI(title="micado controller", version=__version__, docs_url="/docs",
                  redoc_url=None, openapi_url="/openapi.json",
                  description="Deploy MiCADO applications (TOSCA ADTs) and scale them.")
    api.add_middleware(_Guard, token=token)
    # Only documents the scheme in OpenAPI (the lock in /docs); `_Guard` enforces it.
    bearer = Security(HTTPBearer(auto_error=False, description="The controller's API token"))
    _install_error_handlers(api)

    @api.get("/healthz", tags=["controller"])
    def healthz() -> dict[str, str]:
        """Liveness: the API answers (no token needed)."""
        return {"status": "ok"}

    @api.get("/metrics", tags=["controller"], dependencies=[bearer],
             response_class=Response)
    def metrics() -> Response:
        """The controller's own metrics in the Prometheus text format."""
        return Response(telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)

    v1 = APIRouter(prefix="/v1", tags=["apps"], dependencies=[bearer])

    @v1.post("/apps", status_code=201)
    def submit_app(body: SubmitBody, response: Response) -> dict[str, Any]:
        """Deploy a new app (201), or with `dry_run` only show what it would change (200)."""
        result = manager.submit(body.adt, params=body.params, app_id=body.app_id,
                                tick_seconds=body.tick_seconds, dry_run=body.dry_run)
        if body.dry_run:
            response.status_code = 200
        else:
            response.headers["Location"] = f"/v1/apps/{result['app_id']}"
        return result

    @v1.get("/apps")
    def list_apps() -> dict[str, Any]:
        return {"apps": manager.list_apps()}

    @v1.get("/apps/{app_id}")
    def get_app(app_id: str) -> dict[str, Any]:
        """The app's summary, its ADT, parameters and compiled plan."""
        return manager.get_app(app_id)

    @v1.put("/apps/{app_id}")
    def update_app(app_id: str, body: UpdateBody) -> dict[str, Any]:
        """Apply a new version of the app (or, with `dry_run`, show what would change)."""
        return manager.update(app_id, body.adt, params=body.params,
                              tick_seconds=body.tick_seconds, dry_run=body.dry_run)

    @v1.delete("/apps/{app_id}")
    def delete_app(app_id: str) -> dict[str, Any]:
        return manager.delete(app_id)

    @v1.get("/apps/{app_id}/status")
    def app_status(app_id: str) -> dict[str, Any]:
        """Targets (current, desired, why), inputs and node-group operations in flight."""
        return manager.status(app_id)

    @v1.post("/apps/{app_id}/pause")
    def pause_app(app_id: str) -> dict[str, Any]:
        """Stop scaling the app; it keeps running at its current size."""
        return manager.pause(app_id)

    @v1.post("/apps/{app_id}/resume")
    def resume_app(app_id: str) -> dict[str, Any]:
        return manager.resume(app_id)

    @v1.get("/events", tags=["events"])
    def events(app_id: Annotated[str | None, Query(max_length=63)] = None,
               since: Annotated[int | None, Query(ge=0)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Events, oldest first: the latest `limit`, or the first `limit` after id `since`."""
        return {"events": manager.events(app_id, since, limit)}

    api.include_router(v1)
    _add_compat_routes(api, manager, bearer)
    return api


def _install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        status = next((code for cls, code in _STATUS_OF if isinstance(exc, cls)), 400)
        detail: dict[str, Any] = {"message": exc.message}
        if isinstance(exc, InvalidAdt):
            detail["errors"] = exc.errors
            detail["warnings"] = exc.warnings
        return JSONResponse(_error_body(request.url.path, detail), status_code=status)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back (a whole ADT, or secrets); name the field.
        errors = [{"path": _loc(e.get("loc", ())),
                   "message": str(e.get("msg", "invalid")).removeprefix("Value error, ")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"path": "(request)", "message": "invalid"}
        message = f"invalid request: {first['path']}: {first['message']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return JSONResponse(_error_body(request.url.path,
                                        {"message": message, "errors": errors}),
                            status_code=422)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return JSONResponse(_error_body(request.url.path, detail), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


# --- MiCADO's TOSCASubmitter v2.0 routes ------------------------------------------------------


@dataclass(frozen=True)
class _CompatSubmission:
    adt: str
    params: dict[str, Any]
    dry_run: bool
    app_id: str | None


_COMPAT_KEYS = ("adt", "url", "params", "dryrun", "id")


async def _compat_submission(request: Request) -> _CompatSubmission:
    """MiCADO's body shapes: JSON {adt: mapping or text, params, dryrun} or a multipart form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("the body is not valid JSON") from None
        except RecursionError:  # Python's JSON parser gives up near 1000 levels
            raise InvalidRequest(f"the body nests more than {MAX_DEPTH} levels deep") from None
        if not isinstance(data, dict):
            raise InvalidRequest("the JSON body must be an object with 'adt'")
        fields = data
    elif content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=1, max_fields=len(_COMPAT_KEYS),
                                  max_part_size=MAX_ADT_CHARS)
        fields = {}
        for key, value in form.multi_items():
            if key in fields:
                raise InvalidRequest(f"{key}: given more than once")
            fields[key] = await _form_value(key, value)
    else:
        raise InvalidRequest("send the ADT as JSON {\"adt\": ...} or as the multipart file "
                             "field 'adt'")
    unknown = sorted(str(k) for k in fields if k not in _COMPAT_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown field{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)} (known: {', '.join(_COMPAT_KEYS)})")
    if fields.get("url"):
        raise InvalidRequest(URL_REFUSED)
    return _CompatSubmission(adt=_compat_adt(fields.get("adt")),
                             params=_compat_params(fields.get("params")),
                             dry_run=_compat_bool("dryrun", fields.get("dryrun", False)),
                             app_id=_compat_id(fields.get("id")))


async def _form_value(key: str, value: str | UploadFile) -> str:
    if isinstance(value, str):
        return value
    data = await value.read(MAX_ADT_CHARS + 1)
    if len(data) > MAX_ADT_CHARS:
        raise InvalidRequest(f"{key}: the file is larger than 1 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{key}: the file is not UTF-8 text") from None


def _compat_adt(value: Any) -> str:
    if value is None or value == "" or value == {}:
        raise InvalidRequest("adt: required (the ADT as a mapping or as YAML text)")
    if isinstance(value, dict):
        deep = too_deep(value)
        if deep is not None:  # dumping it would recurse as deep as it nests
            raise InvalidRequest(f"adt.{format_path(deep)}: values nested more than "
                                 f"{MAX_DEPTH} levels deep (an ADT never needs that many)")
        text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidRequest("adt: must be the ADT as a mapping or as YAML text")
    if len(text) > MAX_ADT_CHARS:
        raise InvalidRequest("adt: larger than 1 MiB")
    return text


def _compat_params(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidRequest("params: not a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidRequest("params: must be an object of input name to value")
    if len(value) > MAX_PARAMS:
        raise InvalidRequest(f"params: at most {MAX_PARAMS} values")
    return value


def _compat_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise InvalidRequest(f"{key}: must be true or false")


def _compat_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest("id: must be text")
    return _fold_id(value)


def _fold_id(app_id: str) -> str:
    """MiCADO's ids are case-insensitive here (its CLI uses "MICADO-APP"); ours are lowercase
    because they name Kubernetes objects."""
    return app_id.lower()


def _add_compat_routes(api: FastAPI, manager: AppManager, bearer: Any) -> None:
    """/toscasubmitter/v2.0/applications[/id][/]: what MiCADO's client and demo scripts call."""
    async def list_applications() -> dict[str, Any]:
        apps = await run_in_threadpool(manager.list_apps)
        ids = [a["app_id"] for a in apps]
        return {"message": f"{len(ids)} application{'s' if len(ids) != 1 else ''}",
                "applications": ids}

    async def create(request: Request, app_id: str | None) -> dict[str, Any]:
        body = await _compat_submission(request)
        app_id = None if app_id is None else _fold_id(app_id)
        if app_id is not None and body.app_id not in (None, app_id):
            raise InvalidRequest(f"id: {body.app_id!r} differs from the id in the path")
        result = await run_in_threadpool(
            lambda: manager.submit(body.adt, params=body.params, app_id=app_id or body.app_id,
                                   dry_run=body.dry_run))
        what = "validated (dry run)" if body.dry_run else "deployed"
        return {"message": f"application {result['app_id']} {what}", "id": result["app_id"],
                **result}

    async def create_application(request: Request) -> dict[str, Any]:
        return await create(request, None)

    async def create_named_application(request: Request, app_id: str) -> dict[str, Any]:
        return await create(request, app_id)

    async def get_application(app_id: str) -> dict[str, Any]:
        app_id = _fold_id(app_id)
        status = await run_in_threadpool(manager.status, app_id)
        return {"message": f"application {app_id} is {status['status']}", **status}

    async def update_application(request: Request, app_id: str) -> dict[str, Any]:
        body = await _compat_submission(request)
        app_id = _fold_id(app_id)
        if body.app_id not in (None, app_id):
            raise InvalidRequest(f"id: {body.app_id!r} differs from the id in the path")
        result = await run_in_threadpool(
            lambda: manager.update(app_id, body.adt, params=body.params, dry_run=body.dry_run))
        what = "validated (dry run)" if body.dry_run else "updated"
        return {"message": f"application {app_id} {what}", "id": app_id, **result}

    async def delete_application(app_id: str) -> dict[str, Any]:
        # MiCADO's `force` form field is accepted and ignored: deletion is always retried.
        app_id = _fold_id(app_id)
        result = await run_in_threadpool(manager.delete, app_id)
        return {"message": f"application {app_id} {result['status']}", **result}

    base = f"{COMPAT_PREFIX}/applications"
    routes: list[tuple[str, Callable[..., Awaitable[dict[str, Any]]], str]] = [
        ("", list_applications, "GET"),
        ("", create_application, "POST"),
        ("/{app_id}", get_application, "GET"),
        ("/{app_id}", create_named_application, "POST"),
        ("/{app_id}", update_application, "PUT"),
        ("/{app_id}", delete_application, "DELETE"),
    ]
    for suffix, endpoint, method in routes:
        for slash in ("/", ""):
            api.add_api_route(base + suffix + slash, endpoint, methods=[method],
                              tags=["MiCADO compatibility"], dependencies=[bearer],
                              include_in_schema=bool(slash),
                              name=f"{endpoint.__name__}{'_slash' if slash else ''}",
                              summary=f"MiCADO v2.0: {endpoint.__name__.replace('_', ' ')}")

