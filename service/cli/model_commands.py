"""``nnserve train``, ``models``, ``activate`` and ``predict``: the commands over the catalog and the store.

Each is a few plain steps over ``catalog``, ``training`` and the ``store``;
what gets printed lives in ``console``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from service.cli import console
from service.cli.options import (
    UserError,
    audited,
    existing_store,
    models_dir_option,
    naming_store,
    store_at,
    store_exists,
    store_option,
)
from service.server.dataplane import Call, DataPlane, InputError, Route
from service.store import CorruptVersionError, ModelStore
from service.training.catalog import SpecError, catalog_specs, estimator_params, load_spec
from service.training.csvdata import CSVError, read_csv_features
from service.training.fitting import publish, train_spec


@click.command(short_help="Train, score, publish and activate models from specs.")
@click.argument("specs", nargs=-1, metavar="[SPEC]...")
@click.option("--all", "train_all", is_flag=True, help="Train every spec in the models directory.")
@models_dir_option
@store_option
@click.option("--epochs", type=click.IntRange(min=1), help="Override the spec's epoch limit (e.g. 5 for a smoke test).")
@click.option("--seed", type=click.IntRange(min=0), help="Override the spec's network seed (the held-out rows stay).")
@click.option("--activate/--no-activate", default=True, show_default=True, help="Make the new version active.")
def train(
    specs: tuple[str, ...],
    train_all: bool,
    models_dir: Path,
    store_root: Path,
    epochs: int | None,
    seed: int | None,
    activate: bool,
) -> None:
    """Train models from specs, score them on held-out rows, publish and activate them.

    SPEC is a spec file (models/iris.toml) or the name of one in the models
    directory (iris). Every spec is checked before anything is trained. Each
    model shows its epochs (a bar on a terminal, log lines otherwise), then
    its new version and its held-out metrics.

    \b
    Examples:
      nnserve train models/iris.toml
      nnserve train iris wine --store /tmp/store
      nnserve train --all
      nnserve train iris --epochs 5 --no-activate   quick check, keep the active version
    """
    if train_all and specs:
        raise click.UsageError("give SPEC files or --all, not both")
    if not train_all and not specs:
        raise click.UsageError("give one or more SPEC files (e.g. models/iris.toml), or --all")
    loaded = catalog_specs(models_dir) if train_all else [load_spec(_spec_path(s, models_dir)) for s in specs]
    if not loaded:
        raise UserError(f"{models_dir}: no *.toml specs to train")
    overrides = {k: v for k, v in {"epochs": epochs, "seed": seed}.items() if v is not None}
    for spec in loaded:
        estimator_params(spec, overrides)  # every override checked before the first model trains
    store = store_at(store_root)
    for spec in loaded:
        progress = console.TrainingProgress(spec.name, estimator_params(spec, overrides)["max_iter"])
        try:
            _, result = train_spec(spec, overrides, callbacks=[progress])
        except (SpecError, CSVError):
            raise
        except ValueError as exc:  # nn refuses the data (one class, too few rows, ...)
            raise UserError(f"{spec.path}: {exc}") from None
        finally:
            progress.close()
        version = publish(
            store,
            spec.name,
            result,
            description=spec.description,
            target=spec.target,
            activate=False,
            spec_sections=spec.stored_sections(),
        )
        if activate:
            activate_version(store, store_root, spec.name, version)
        state = "active" if activate else "not activated"
        click.echo(
            f"{spec.name}: version {version} ({state})  {console.format_metrics(result.metrics, result.primary_metric)}"
            f"  [{result.n_test} held-out rows, {result.epochs} epochs, {result.seconds:.1f} s]"
        )


def _spec_path(spec: str, models_dir: Path) -> Path:
    """A spec argument as a path: a bare name (``iris``) means ``<models-dir>/iris.toml``."""
    path = Path(spec)
    if not path.exists() and path.suffix != ".toml" and os.sep not in spec:
        candidate = models_dir / f"{spec}.toml"
        if candidate.is_file():
            return candidate
    return path


@click.command(short_help="List models, their versions and metrics.")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every version with its metrics) instead of a table.")
def models(store_root: Path, as_json: bool) -> None:
    """List the models in the store: active version, versions, task, metrics, created time.

    Metrics and created time are those of the active version. Broken
    versions (failed checksum, missing file, bad manifest) are marked with !
    and explained below the table; they can never be activated.

    \b
    Examples:
      nnserve models
      nnserve models --json | python -m json.tool
    """
    listing = _listing(store_at(store_root)) if store_exists(store_root) else []
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if not listing:
        click.echo(f"no models in {store_root}; train some with: nnserve train --all")
        return
    rows = []
    notes = []
    for m in listing:
        active = m["active_version"]
        current = next((v for v in m["versions"] if v["version"] == active), None) or {}
        rows.append(
            [
                m["name"],
                str(active) if active is not None else "-",
                m["version_list"],
                m["task"] or "-",
                console.format_metrics(current.get("metrics") or {}, m["primary_metric"]) or "-",
                current.get("created_at") or "-",
            ]
        )
        notes += [f"! {m['name']} version {v['version']}: {v['error']}" for v in m["versions"] if not v["ok"]]
        notes += [f"! {m['name']}: {problem}" for problem in m["problems"]]
    click.echo(console.table(["NAME", "ACTIVE", "VERSIONS", "TASK", "METRICS", "CREATED"], rows))
    if notes:
        click.echo("\n" + "\n".join(notes))


def _listing(store: ModelStore) -> list[dict[str, Any]]:
    """Every model with every version, verified: the data of ``nnserve models``."""
    out = []
    for name in store.model_names():
        problems = []
        try:
            active = store.active_version(name)
        except CorruptVersionError as exc:
            active, problems = None, [str(exc)]
        infos = store.version_info(name)
        if active is not None and active not in {i.version for i in infos}:
            problems.append(f"ACTIVE names version {active}, which does not exist")
        newest = next((i.manifest for i in reversed(infos) if i.ok), None) or {}
        current = next((i.manifest for i in infos if i.version == active and i.ok), None) or newest
        out.append(
            {
                "name": name,
                "active_version": active,
                "task": current.get("task"),
                "description": current.get("description"),
                "primary_metric": current.get("primary_metric"),
                "version_list": console.version_list(infos),
                "versions": [
                    {
                        "version": i.version,
                        "active": i.active,
                        "ok": i.ok,
                        "error": i.error,
                        "created_at": (i.manifest or {}).get("created_at"),
                        "metrics": (i.manifest or {}).get("metrics"),
                    }
                    for i in infos
                ],
                "problems": problems,
            }
        )
    return out


@click.command(short_help="Make a version of a model active (roll forward or back).")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@store_option
def activate(name: str, version: int, store_root: Path) -> None:
    """Make VERSION the active version of model NAME (roll forward or back).

    The version is verified first; a broken one is refused and the active
    version stays as it was. Running services pick the change up at once.

    \b
    Examples:
      nnserve activate iris 1
    """
    previous = activate_version(existing_store(store_root), store_root, name, version)
    was = f"was {previous}" if previous is not None else "none was active, or ACTIVE was unreadable"
    click.echo(f"{name}: version {version} is active ({was})")


def activate_version(store: ModelStore, store_root: Path, name: str, version: int) -> int | None:
    """Make ``version`` of ``name`` active, recorded in the audit log (``activate``, actor ``cli``) as HTTP's
    activations are: every activation a command makes goes through here. Returns the version active before."""
    with audited(store_root, "activate", name) as noted, naming_store(store_root):
        previous = store.activate(name, version)
        noted["detail"] = f"version {version} active (was {previous})"
    return previous


@click.command(short_help="Predict the rows of a CSV file; CSV to stdout.")
@click.argument("name")
@click.argument("file", metavar="FILE.csv", type=click.Path(path_type=Path))
@click.option("--version", "version", type=click.IntRange(min=1), help="Use this version instead of the active one.")
@click.option(
    "--raw", is_flag=True, help="Write labels as they are, without neutralising spreadsheet formulas (see above)."
)
@store_option
def predict(name: str, file: Path, version: int | None, raw: bool, store_root: Path) -> None:
    """Predict every row of FILE.csv with model NAME; prints CSV to stdout.

    FILE.csv needs a header row. If the header names all of the model's
    features, columns are taken by name in any order and other columns (such
    as the target) are ignored; otherwise the file must have exactly the
    model's number of features, taken in order. The output has a
    "prediction" column and, for classifiers, one "proba_<class>" column per
    class.

    A text label that starts with =, +, -, @, a tab or a carriage return would
    run as a formula in a spreadsheet: it is written with a leading ' (as
    OWASP advises for CSV injection); --raw writes it as it is. Numbers are
    never changed.

    \b
    Examples:
      nnserve predict iris models/data/iris.csv
      nnserve predict iris --version 2 flowers.csv > predictions.csv
    """
    plane, call = DataPlane.offline(existing_store(store_root), store_root), Call("cli")
    with naming_store(store_root):
        loaded = plane.model(name, version, call)  # the active version (never a rollout's candidate), or --version
    manifest = loaded.manifest
    X = read_csv_features(file, manifest.get("feature_names"), int(manifest["n_features"]))
    try:
        prediction = plane.predict(Route(loaded), X, call, str(file)).prediction
    except InputError as exc:
        raise UserError(f"{file}: {exc.message}") from None
    proba, pred = prediction.probabilities, prediction.values
    cell = (lambda value: value) if raw else spreadsheet_safe
    out = csv.writer(sys.stdout, lineterminator="\n")
    if prediction.classes is not None and proba is not None:
        out.writerow(["prediction", *(cell(f"proba_{c}") for c in prediction.classes.tolist())])
        for label, p in zip(pred.tolist(), proba, strict=True):
            out.writerow([cell(label), *(_number(v) for v in p)])
    elif pred.ndim == 2:
        out.writerow([f"prediction_{i}" for i in range(pred.shape[1])])
        out.writerows([_number(v) for v in row] for row in pred)
    else:
        out.writerow(["prediction"])
        out.writerows([_number(v)] for v in pred)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with ' so it reads as text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _number(value: Any) -> str:
    return repr(round(float(value), 6))
