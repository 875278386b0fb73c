"""The model store: immutable, checksummed versions, the active pointer, and content-addressed datasets.

Everything above this package (training, server, CLI) imports these names from
``service.store``, never from the modules inside it.
"""

import os

from service.store.audit import AuditEntry, AuditLog, configured_audit_log, open_audit_log
from service.store.dataset_codec import Dataset
from service.store.drivers import MissingDriverError, require_postgres
from service.store.exceptions import (
    ActiveVersionChangedError,
    CorruptVersionError,
    InvalidNameError,
    NotFoundError,
    RolloutConflictError,
    StoreError,
    StoreUnavailableError,
)
from service.store.explanation import (
    BASELINES,
    DEFAULT_STEPS,
    ExplainError,
    Explanation,
    class_named,
    explain,
    feature_names,
    recorded_importance,
)
from service.store.explanation import METHODS as EXPLAIN_METHODS
from service.store.explanation import answer as explanation_answer
from service.store.filesystem import FileModelStore
from service.store.inference import LoadedModel, NonFiniteOutputError, Prediction, predict, width_problem
from service.store.keys import (
    ADMIN,
    KEYS_CHANGED,
    SCOPES,
    FileKeyStore,
    InvalidKeyError,
    KeyRecord,
    KeyRing,
    KeyStore,
    open_key_store,
)
from service.store.keys import split as split_key
from service.store.names import validate_name, validate_sha256, validate_version
from service.store.protocol import AnnouncesActivations, CatalogLock, ModelStore, VersionInfo
from service.store.retention import GcReport, RetentionPolicy
from service.store.retention import enforce as enforce_retention
from service.store.rollouts import Rollout


def open_store(root: str | os.PathLike[str], database_url: str | None = None) -> ModelStore:
    """The store the configuration names: the filesystem at ``root`` unless a database URL is given."""
    if database_url:
        if not database_url.startswith(("postgresql://", "postgres://")):
            raise StoreError(f"no store backend for {database_url.split(':', 1)[0]!r} URLs; use a postgresql:// URL")
        require_postgres()
        from service.store.postgres import PostgresModelStore  # psycopg is imported only by those who use it

        return PostgresModelStore(root, database_url)
    return FileModelStore(root)


__all__ = [
    "ADMIN",
    "BASELINES",
    "DEFAULT_STEPS",
    "EXPLAIN_METHODS",
    "KEYS_CHANGED",
    "SCOPES",
    "ActiveVersionChangedError",
    "AnnouncesActivations",
    "AuditEntry",
    "AuditLog",
    "CatalogLock",
    "CorruptVersionError",
    "Dataset",
    "ExplainError",
    "Explanation",
    "FileKeyStore",
    "FileModelStore",
    "GcReport",
    "InvalidKeyError",
    "InvalidNameError",
    "KeyRecord",
    "KeyRing",
    "KeyStore",
    "LoadedModel",
    "MissingDriverError",
    "ModelStore",
    "NonFiniteOutputError",
    "NotFoundError",
    "Prediction",
    "RetentionPolicy",
    "Rollout",
    "RolloutConflictError",
    "StoreError",
    "StoreUnavailableError",
    "VersionInfo",
    "class_named",
    "configured_audit_log",
    "enforce_retention",
    "explain",
    "explanation_answer",
    "feature_names",
    "open_audit_log",
    "open_key_store",
    "open_store",
    "predict",
    "recorded_importance",
    "split_key",
    "validate_name",
    "validate_sha256",
    "validate_version",
    "width_problem",
]
