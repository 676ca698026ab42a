"""Backups and challenge files: the dump holds their rows, the manifest lists their stored objects
(key, size, sha256) and says where they live, and a restore names the objects its storage lacks.

The scratch databases are those of test_backup.py (a seeded clone per test); the demo's two
files are stored in a folder of this module's own.
"""

import hashlib
import json
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from challenges.tests.attachments import attachments_in, stored_objects
from vulhub.ops import backups
from vulhub.ops.tests import test_backup
from vulhub.seeding.demo import FILES_DIR

pytestmark = pytest.mark.django_db(transaction=True)
# the scratch databases of test_backup.py: a seeded clone per test, a target to restore into
seeded, source, other_database = test_backup.seeded, test_backup.source, test_backup.other_database
run = test_backup.run


@pytest.fixture(scope="module", autouse=True)
def storage(tmp_path_factory):
    """The module's folder of challenge files, in place before the demo data is seeded into it."""
    with attachments_in(tmp_path_factory.mktemp("attachments")) as storage:
        yield storage


def backup_into(folder: Path) -> tuple[Path, dict]:
    run("backup", "--dest", str(folder))
    (dump,) = sorted(folder.glob("*.dump"))
    manifest = json.loads(dump.with_name(dump.name.replace(".dump", ".manifest.json")).read_text())
    return dump, manifest


def test_the_manifest_lists_the_challenge_files_and_where_they_live(source, storage, tmp_path):
    _dump, manifest = backup_into(tmp_path)

    attachments = manifest["attachments"]
    assert attachments["storage"] == f"the folder {storage.location}"
    assert attachments["files"] == 2
    listed = {item["key"]: item for item in attachments["objects"]}
    assert sorted(listed) == stored_objects(storage)
    for name in ("memory.raw", "ftp-session.pcap"):
        (item,) = [item for key, item in listed.items() if key.endswith(f"/{name}")]
        content = (FILES_DIR / name).read_bytes()
        assert (item["size"], item["sha256"]) == (len(content), hashlib.sha256(content).hexdigest())
    assert attachments["bytes"] == sum(item["size"] for item in listed.values())


def test_a_backup_says_the_files_are_not_in_the_dump_and_where_they_are(source, storage, tmp_path):
    result = backups.take_backup(dest=backups.destination(tmp_path))

    assert result.attachments_note == (
        "Challenge files are not in the dump: 2 file(s), 259.9 kB, live in the folder "
        f"{storage.location}; back that up too (the manifest lists each object and its sha256)."
    )


def test_a_restore_names_the_files_its_storage_lacks(source, other_database, storage, tmp_path):
    dump, manifest = backup_into(tmp_path)
    assert "challenge file" not in run("restore", str(dump), "--database", other_database, "--create")

    lost = manifest["attachments"]["objects"][0]["key"]
    with storage.open(lost) as kept:
        saved = kept.read()
    storage.delete(lost)
    try:
        output = run("restore", str(dump), "--database", other_database, "--force")
    finally:
        assert storage.save(lost, ContentFile(saved)) == lost  # for the module's other tests

    assert f"Restored {dump.name} into {other_database}" in output
    assert f"1 challenge file(s) the restored database refers to are not in the folder {storage.location}" in output
    assert lost in output
    assert "copy them back from your copy of the challenge files" in output


def test_the_backup_command_says_where_the_files_are(source, storage, tmp_path):
    output = run("backup", "--dest", str(tmp_path))

    assert f"Challenge files are not in the dump: 2 file(s), 259.9 kB, live in the folder {storage.location}" in output
