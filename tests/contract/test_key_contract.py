"""The KeyStore contract: keys with scopes, models and expiry, revocation, a stamp that moves, secrets kept nowhere."""

from __future__ import annotations

import hashlib
import stat
import time
from datetime import UTC, datetime, timedelta

import pytest

from service.store import SCOPES, InvalidKeyError, InvalidNameError, KeyRing, NotFoundError, split_key


def test_a_created_key_is_listed_without_its_secret(key_backend):
    keys = key_backend.keys()
    record, key = keys.create("shop", ["feedback", "predict"], ["iris"], expires_days=2)
    prefix, key_id, secret = key.split("_", 2)
    assert (prefix, key_id) == ("nns", record.id) and len(secret) >= 43  # 32 random bytes, urlsafe
    (listed,) = keys.records()
    assert listed.id == record.id and listed.name == "shop"
    assert listed.scopes == ("predict", "feedback") and listed.models == ("iris",)
    assert listed.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert listed.revoked is None and listed.last_used is None
    assert timedelta(days=2) - timedelta(seconds=5) < listed.expires - datetime.now(UTC) <= timedelta(days=2)
    assert secret not in str(listed.public()) and listed.digest not in str(listed.public())


def test_keys_are_distinct_and_ordered_oldest_first(key_backend):
    keys = key_backend.keys()
    made = [keys.create(f"k{i}", ["predict"]) for i in range(3)]
    assert len({key for _, key in made}) == 3
    assert [r.name for r in keys.records()] == ["k0", "k1", "k2"]


@pytest.mark.parametrize(
    ("name", "scopes", "models", "days"),
    [
        ("", ["predict"], [], None),
        ("x" * 65, ["predict"], [], None),
        ("ok", [], [], None),
        ("ok", ["root"], [], None),
        ("ok", ["predict"], ["../etc"], None),
        ("ok", ["predict"], [], 0),
        ("ok", ["predict"], [], -1),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_stored(key_backend, name, scopes, models, days):
    keys = key_backend.keys()
    with pytest.raises(InvalidNameError):
        keys.create(name, scopes, models, days)
    assert keys.records() == []


def test_revoke_marks_the_key_and_moves_the_stamp(key_backend):
    keys = key_backend.keys()
    empty = keys.stamp()
    record, _ = keys.create("ops", ["admin"])
    created = keys.stamp()
    assert created != empty
    revoked = keys.revoke(record.id)
    assert revoked.id == record.id and revoked.revoked is not None
    assert keys.stamp() != created
    assert keys.records()[0].revoked == revoked.revoked
    again = keys.revoke(record.id)  # revoking twice keeps the first time
    assert again.revoked == revoked.revoked
    with pytest.raises(NotFoundError):
        keys.revoke("000000000000")


def test_touch_records_the_last_use_without_moving_the_stamp(key_backend):
    keys = key_backend.keys()
    record, _ = keys.create("app", ["predict"])
    before = keys.stamp()
    moment = datetime.now(UTC).replace(microsecond=0)
    keys.touch({record.id: moment})
    assert keys.records()[0].last_used == moment
    assert keys.stamp() == before


def test_a_keyring_verifies_keys_and_refuses_revoked_and_expired_ones(key_backend):
    keys = key_backend.keys()
    ring = KeyRing(keys, check_interval=0.0, miss_interval=0.0)
    good, good_key = keys.create("good", list(SCOPES))
    gone, gone_key = keys.create("gone", ["predict"])
    assert ring.verify(*split_key(good_key)).id == good.id
    assert ring.verify(*split_key(gone_key)).id == gone.id
    keys.revoke(gone.id)
    with pytest.raises(InvalidKeyError, match=f"key {gone.id} was revoked"):
        ring.verify(*split_key(gone_key))
    tampered = good_key[:-1] + ("A" if good_key[-1] != "A" else "B")
    for bad in (tampered, f"nns_{good.id}_", "nns_000000000000_abc", "token", good_key + "x"):
        with pytest.raises(InvalidKeyError):
            ring.verify(*split_key(bad))
    ring.flush()
    assert next(r for r in keys.records() if r.id == good.id).last_used is not None


def test_an_expired_key_is_refused(key_backend):
    keys = key_backend.keys()
    ring = KeyRing(keys, check_interval=0.0)
    record, key = keys.create("short", ["predict"], expires_days=0.5 / 86400)  # half a second
    time.sleep(max(0.0, (record.expires - datetime.now(UTC)).total_seconds()) + 0.05)
    with pytest.raises(InvalidKeyError, match=f"key {record.id} expired"):
        ring.verify(*split_key(key))


def test_the_filesystem_keeps_keys_private(tmp_path):
    from service.store import FileKeyStore

    keys = FileKeyStore(tmp_path)
    record, key = keys.create("app", ["predict"])
    keys.touch({record.id: datetime.now(UTC)})
    for path in (tmp_path / ".keys.json", tmp_path / ".keys-used.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert key.split("_", 2)[2].encode() not in path.read_bytes()
