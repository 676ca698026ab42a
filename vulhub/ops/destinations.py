"""Where backups and point-in-time recovery archives are kept: a local directory or a Django storage.

A Destination holds files by their name inside it, a relative path with "/" between
folders ("vulhub-db-....dump", "wal/000000010000000000000003", "base/<time>/base.tar.gz"):
the same layout in a directory (LocalDirectory) as in a storage of STORAGES
(StorageDestination: a folder through FileSystemStorage, a bucket through django-storages).
Listings leave out hidden names (".name.partial": a file being written).

Backups hold password hashes: a private directory (backups') writes its files 0600 in
folders kept 0700, whatever the umask. The point-in-time archive is not private: the
database server's own account writes WAL into it too.
"""

import functools
import os
import shutil
from pathlib import Path

from django.core.files import File
from django.core.files.base import ContentFile

COPY_CHUNK = 1024 * 1024
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


class NameTaken(Exception):
    """A storage already held a file by the name we saved under: it kept ours under `saved`, now deleted."""

    def __init__(self, name: str, saved: str):
        super().__init__(f"{name} is taken: the storage saved it as {saved}")
        self.name, self.saved = name, saved


class Destination:
    """Files in a local directory (LocalDirectory) or a Django storage (StorageDestination)."""

    label = ""

    def files(self, folder: str = "") -> list[str]:
        """The names of the files in `folder`, sorted, hidden ones left out."""
        raise NotImplementedError

    def folders(self, folder: str = "") -> list[str]:
        """The names of the folders in `folder`, sorted, hidden ones left out."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int | None:
        """The size of `name`, None when there is no such file."""
        raise NotImplementedError

    def read_text(self, name: str) -> str:
        raise NotImplementedError

    def fetch(self, name: str, target: Path) -> None:
        """Copy `name` to the local file `target`."""
        raise NotImplementedError

    def local_path(self, name: str, scratch: Path) -> Path:
        """A local path to read `name` from: fetched into `scratch` (a temporary directory) when remote."""
        target = scratch / Path(name).name
        self.fetch(name, target)
        return target

    def write_path(self, name: str, scratch: Path) -> Path:
        """Where to write a new file `name` before `save` keeps it: in `scratch` when remote."""
        return scratch / Path(name).name

    def save(self, source: Path, name: str) -> None:
        """Keep the local file `source` as `name` (a storage that holds `name` already raises NameTaken)."""
        raise NotImplementedError

    def save_text(self, name: str, text: str) -> None:
        """Keep `text` as `name`, whole or not at all (a storage that holds `name` already raises NameTaken)."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError


class LocalDirectory(Destination):
    def __init__(self, path: Path, *, private: bool = False):
        self.path = Path(path)
        self.label = str(self.path)
        self.private = private

    def _entries(self, folder: str, *, dirs: bool) -> list[str]:
        where = self.path / folder
        if not where.is_dir():
            return []
        return sorted(
            entry.name
            for entry in where.iterdir()
            if (entry.is_dir() if dirs else entry.is_file()) and not entry.name.startswith(".")
        )

    def files(self, folder: str = "") -> list[str]:
        return self._entries(folder, dirs=False)

    def folders(self, folder: str = "") -> list[str]:
        return self._entries(folder, dirs=True)

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def size(self, name: str) -> int | None:
        try:
            return (self.path / name).stat().st_size
        except FileNotFoundError:
            return None

    def read_text(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    def fetch(self, name: str, target: Path) -> None:
        shutil.copyfile(self.path / name, target)

    def local_path(self, name: str, scratch: Path) -> Path:
        return self.path / name

    def _folder_for(self, target: Path) -> None:
        """Make the folders down to `target`'s; private: keep this destination's and `target`'s own at 0700."""
        if not self.private:
            target.parent.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
        for folder in {self.path, target.parent}:
            folder.chmod(PRIVATE_FOLDER)

    def _protect(self, path: Path) -> None:
        if self.private:
            path.chmod(PRIVATE_FILE)

    def write_path(self, name: str, scratch: Path) -> Path:
        """Where a tool writes `name` in place (private: created empty and 0600 first; the tool keeps the mode)."""
        target = self.path / name
        self._folder_for(target)
        if self.private:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE))
            self._protect(target)  # an existing file keeps its mode through O_CREAT
        return target

    def save(self, source: Path, name: str) -> None:
        target = self.path / name
        if source == target:
            return  # written in place (write_path)
        # Copied aside and renamed: a file is there whole or not at all.
        self._folder_for(target)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, partial)
        self._protect(partial)
        os.replace(partial, target)

    def save_text(self, name: str, text: str) -> None:
        # Written aside and renamed: a file is there whole or not at all.
        target = self.path / name
        self._folder_for(target)
        partial = target.with_name(f".{target.name}.partial")
        write_whole(partial, text)
        self._protect(partial)
        os.replace(partial, target)

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class StorageError(OSError):
    """A storage's own error (S3's, a network share's) as an OSError: the commands report it in one line."""


def _reported(method):
    """Let a storage's own exceptions out as StorageError, naming the storage."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (OSError, NameTaken):
            raise
        except Exception as exc:  # botocore's ClientError, a backend's own errors
            raise StorageError(f"{self.label}: {exc}") from exc

    return call


class StorageDestination(Destination):
    """Files in a Django storage: a folder (FileSystemStorage) or a bucket (django-storages)."""

    def __init__(self, storage, label: str):
        self.storage = storage
        self.label = label

    def _list(self, folder: str) -> tuple[list[str], list[str]]:
        try:
            return self.storage.listdir(folder)
        except FileNotFoundError:
            return [], []

    @_reported
    def files(self, folder: str = "") -> list[str]:
        return sorted(name for name in self._list(folder)[1] if not name.startswith("."))

    @_reported
    def folders(self, folder: str = "") -> list[str]:
        return sorted(name for name in self._list(folder)[0] if not name.startswith("."))

    @_reported
    def exists(self, name: str) -> bool:
        return self.storage.exists(name)

    @_reported
    def size(self, name: str) -> int | None:
        try:
            return self.storage.size(name) if self.storage.exists(name) else None
        except FileNotFoundError:
            return None

    @_reported
    def read_text(self, name: str) -> str:
        with self.storage.open(name, "rb") as source:
            return source.read().decode("utf-8")

    @_reported
    def fetch(self, name: str, target: Path) -> None:
        with self.storage.open(name, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, COPY_CHUNK)

    def _store(self, name: str, content) -> None:
        saved = self.storage.save(name, content)
        if saved != name:  # the storage picked another name: ours was taken meanwhile
            self.storage.delete(saved)
            raise NameTaken(name, saved)

    @_reported
    def save(self, source: Path, name: str) -> None:
        with source.open("rb") as handle:
            self._store(name, File(handle, name=Path(name).name))

    @_reported
    def save_text(self, name: str, text: str) -> None:
        self._store(name, ContentFile(text.encode("utf-8"), name=Path(name).name))

    @_reported
    def delete(self, name: str) -> None:
        self.storage.delete(name)


def write_whole(path: Path, text: str) -> None:
    """Write `text` to `path` and flush it to disk before returning."""
    with path.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
