"""Loads the Workbench server extension into a Jupyter server.

Enabled by ``etc/jupyter/jupyter_server_config.d/workbench.json`` (shipped in
the wheel from ``jupyter-config/``), which names ``workbench.jupyter``; its
``_jupyter_server_extension_points`` points here.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from workbench.jupyter.handlers import (
    EvaluationsHandler,
    FeatureSetsHandler,
    PromoteHandler,
    ReviewHandler,
    StreamsHandler,
)
from workbench.jupyter.review_apps import ReviewApps
from workbench.jupyter.sampler import StreamSampler

API_PREFIX = ("workbench", "api")


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers; a bad setting is logged, not fatal, so Lab still starts."""
    from workbench.config import settings

    try:
        s = settings()
    except Exception as exc:  # SettingsError or ValidationError: JupyterLab must still come up
        serverapp.log.error("workbench: settings are invalid, sidebar disabled: %s", exc)
        return
    # A daemon thread that stops itself when no sidebar has asked for a while; a
    # function-style extension gets no shutdown hook, and the thread holds no state.
    sampler = StreamSampler(s)
    serverapp.web_app.settings["workbench_sampler"] = sampler
    base = serverapp.web_app.settings["base_url"]
    # Review apps are child processes of this server; none outlives it.
    import atexit

    apps = ReviewApps(s.home / "logs")
    atexit.register(apps.stop_all)
    serverapp.web_app.settings["workbench_review_apps"] = apps

    def route(name: str) -> str:
        return url_path_join(base, *API_PREFIX, name)

    serverapp.web_app.add_handlers(".*$", [
        (route("streams"), StreamsHandler, {"sampler": sampler}),
        (route("feature-sets"), FeatureSetsHandler),
        (route("evaluations"), EvaluationsHandler),
        (route("review"), ReviewHandler, {"apps": apps}),
        (route("promote"), PromoteHandler),
    ])  # fmt: skip
    serverapp.log.info("workbench: server extension loaded (broker %s)", s.bootstrap)
