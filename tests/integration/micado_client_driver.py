"""Drives micado-client 0.12.13 exactly as its README does; runs inside the client's own
virtualenv (micado_client_venv.py), never in the test process, whose `micado` is ours.

Reads {"endpoint", "version", "verify", "auth", "steps": [{"op": ..., ...}]} as JSON on stdin
and writes one {"ok": result} or {"error": exception class, "message": str(exception)} per
step: what a user of the library would see.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from micado.exceptions import detailed_raise_for_status
from micado.types import ApplicationInfo

from micado import MicadoClient


def run(client: MicadoClient, step: dict[str, Any]) -> Any:
    op = step["op"]
    if op == "create":
        return client.applications.create(app_id=step.get("app_id"), adt=step["adt"],
                                          params=step.get("params"))
    if op == "create_file":
        # what `micado start ADT` of micado-client's CLI does
        with open(step["path"], "rb") as adt:
            return client.applications.create(app_id="MICADO-APP", file=adt)
    if op == "list":
        return [{"id": app.id, "info": app.info} for app in client.applications.list()]
    if op == "get":
        app = client.applications.get(step["app_id"])
        return {"id": app.id, "info": app.info}
    if op == "update":
        # 0.12.13 has no applications.update(): its own session, as its create_app, with PUT
        api = client.api
        response = api.put(api._url(f"/applications/{step['app_id']}/"),
                           json=ApplicationInfo(step["adt"], None, step.get("params")))
        detailed_raise_for_status(response)
        return response.json()
    if op == "delete":
        return client.applications.delete(step["app_id"])
    raise ValueError(f"unknown step {op!r}")


def main() -> None:
    request = json.load(sys.stdin)
    client = MicadoClient(endpoint=request["endpoint"], version=request.get("version", "v2.0"),
                          verify=request["verify"], auth=tuple(request["auth"]))
    results = []
    for step in request["steps"]:
        try:
            results.append({"ok": run(client, step)})
        except Exception as exc:  # reported to the test, which asserts the class and message
            results.append({"error": type(exc).__name__, "message": str(exc)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
