"""MLflow's own tracking server and UI, as `study ui` serves them (study.cli.ui_app wraps the app)."""

from __future__ import annotations

from typing import Any


def mlflow_app() -> Any:
    """MLflow's ASGI app (its UI and REST API), imported only when a server builds it: it is heavy."""
    from mlflow.server.fastapi_app import app

    return app
