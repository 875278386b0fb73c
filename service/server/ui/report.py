"""``nnserve report``: one version's page as a single self-contained HTML file.

The same version section and charts as the dashboard, with the stylesheet
inlined (a file opened from disk has no server to fetch it from) and no script
or external URL at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.server.ui.pages import version_view
from service.store import ModelStore, NotFoundError
from service.version import __version__

HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))


def render_report(store: ModelStore, name: str, version: int | None = None) -> str:
    """The report of ``version`` of ``name`` (the active one when None); NotFoundError if there is none."""
    if version is None:
        version = store.active_version(name)
        if version is None:
            raise NotFoundError(f"model {name!r} has no active version; pass --version")
    infos = [i for i in store.version_info(name) if i.version == version]
    if not infos:
        raise NotFoundError(f"model {name!r} has no version {version}")
    return _env.get_template("ui/report.html").render(
        name=name,
        versions=[version_view(infos[0])],
        with_private=True,  # a local file of someone with the store: the dataset hash and hyperparameters too
        css=(HERE / "static" / "ui.css").read_text(),
        nnserve_version=__version__,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
