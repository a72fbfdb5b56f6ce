"""`study ui`'s server: MLflow's own app, opening on training runs instead of MLflow's GenAI pages.

MLflow 3.17's UI decides where an experiment opens by its sidebar switch (GenAI /
Model training), kept in the browser and GenAI until a person changes it; the
experiment's `mlflow.experimentKind` tag (which we set too) is no longer read while
that switch exists. A browser that never chose therefore opened a study's experiment
on an empty GenAI "Overview" (traces, tokens) with the assistant pop-up on top. This
app is MLflow's, unchanged, except that its page sets two of the UI's own browser
defaults when the browser has none yet: the switch on "Model training" and the
assistant not opened by itself. A person's own choice (either switch) is kept.

Registered as the MLflow app plugin `study-ui` (pyproject.toml's `mlflow.app` entry
point), which `study ui` starts with `mlflow ui --app-name study-ui`.
"""

from __future__ import annotations

from typing import Any

from study.tracking.server import mlflow_app

APP_NAME = "study-ui"
# The UI keeps its settings as localStorage["<key>_v<version>"] = JSON (MLflow 3.17's useLocalStorage).
BROWSER_DEFAULTS = {"mlflow.workflowType_v1": '"machine_learning"',
                    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
SCRIPT = ("<script>/* hparam-study: open on training runs unless this browser chose otherwise */try{"
          + "".join(f"if(localStorage.getItem('{key}')===null)localStorage.setItem('{key}','{value}');"
                    for key, value in BROWSER_DEFAULTS.items())
          + "}catch(e){}</script>").encode()


def create_app() -> Any:
    """The ASGI app uvicorn serves (a factory, so MLflow's app is built in each server worker)."""
    return TrainingRunsFirst(mlflow_app())


class TrainingRunsFirst:
    """ASGI middleware: adds SCRIPT to the HTML page the UI is served from; every other response passes."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or not scope.get("path", "").endswith("/"):
            await self.app(scope, receive, send)
            return
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            kinds = {k.lower(): v for k, v in headers}
            if (start.get("status") == 200 and b"text/html" in kinds.get(b"content-type", b"")
                    and b"content-encoding" not in kinds and b"<head>" in body):
                body = body.replace(b"<head>", b"<head>" + SCRIPT, 1)
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
