"""Reading and writing artifacts: nothing half-written, nothing executed, nothing changed or
damaged used in silence.

Every artifact is written through ``write_artifact``: to a temporary name and renamed, with
its SHA-256 recorded beside it in ``<file>.sha256`` (the format of ``sha256sum``, so
``sha256sum -c`` checks it too). Every reader (``read_artifact`` and the parsers over it:
``read_text``, ``read_json``, ``read_csv``, ``read_npz``, ``read_npz_list``,
``load_torch``) checks that hash before it parses a byte, so a file that was edited by hand,
damaged or copied in from elsewhere without its record never reaches a table, a figure or
the manifest; ``verify_artifacts`` does the same for files that other programs read (the
notebook, the report). Torch files are loaded with ``weights_only=True``, arrays without
unpickling: a file in a run folder is data, never code. Every problem raises ``DataError``,
whose message is one sentence naming the file and the fix; a stage ends with that sentence
instead of a traceback.

The record catches accidents and edits, not a forger: who can write a file can write its
record too.
"""

import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

# The fix for a changed or damaged artifact of a run: Snakemake makes a missing output again,
# and then everything made from it.
REMAKE = "delete it and run snakemake again, which writes it afresh (and what is made from it)"

# Zip members get this fixed time instead of the time of writing (1980 is zip's epoch).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class UserError(RuntimeError):
    """A problem the user can fix; the message is one sentence saying what and how."""


class DataError(UserError):
    """A file or data problem the user can fix; the message is one sentence saying what and how."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DiskFullError(UserError):
    """No space left where a file was being written; the message names the folder."""


@contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary name keeps the suffix, so libraries that pick a format from it still work.
    A full disk (or quota) raises ``DiskFullError`` naming the folder and, given ``size``
    (bytes), the space the file needed.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        tmp.chmod(0o644)  # mkstemp makes files private; artifacts are for everyone to read
        tmp.replace(path)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        needed = f" ({size / 1e6:.3g} MB)" if size is not None else ""
        raise DiskFullError(
            f"No space was left on the disk of {path.parent} to write {path.name}{needed}; "
            f"free space there and run again (nothing half-written was kept)."
        ) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``data`` to ``path`` atomically, with no record (``write_artifact`` keeps one)."""
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)


def recorded_sha256_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of an artifact is recorded: ``<file>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_artifact(path: str | os.PathLike, data: bytes) -> None:
    """``data`` to ``path`` atomically, its SHA-256 recorded in ``<path>.sha256``.

    Both are written to temporary names first; the record is renamed into place before the
    file, so a file never stands beside a record of other bytes without ``read_artifact``
    saying so (a crash between the two renames leaves a mismatch, which it reports)."""
    path = Path(path)
    record = f"{sha256_bytes(data)}  {path.name}\n".encode()
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)
        write_bytes(recorded_sha256_path(path), record)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_artifact(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """A pandas DataFrame as CSV, without its index."""
    write_text(path, frame.to_csv(index=False))


def write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """``np.savez`` with no time of writing inside: the same arrays give the same bytes.
    Read back with ``read_npz`` (or plain ``np.load``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            with archive.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    write_artifact(path, buffer.getvalue())


def write_npz_list(path: str | os.PathLike, records: list[dict]) -> None:
    """A list of dicts of arrays (one per digit, panel, ...) as one ``.npz``, its keys
    ``d{i}/{name}``; ``read_npz_list`` gives the list back."""
    write_npz(
        path,
        {
            f"d{i}/{key}": np.asarray(value)
            for i, r in enumerate(records)
            for key, value in r.items()
        },
    )


def save_torch(path: str | os.PathLike, obj) -> None:
    """``torch.save(obj)`` as an artifact (``write_artifact``).

    ``obj`` should hold only tensors, numbers, strings, None and dicts, lists and tuples of
    them, so that ``load_torch`` can read it without unpickling code. It is serialised in
    memory, so the archive holds no temporary file name: the same object gives the same bytes.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_artifact(path, buffer.getvalue())


def read_artifact(path: str | os.PathLike, fix: str = REMAKE) -> bytes:
    """The bytes of an artifact, once they are checked against the SHA-256 recorded when it
    was written. A missing file or record, or other bytes than were written (edited,
    truncated, damaged, copied in from elsewhere), raise ``DataError``: one sentence naming
    the file and ending with ``fix``, a clause such as "delete it and run snakemake again"."""
    path = Path(path)
    record = recorded_sha256_path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; {fix}.")
    data = path.read_bytes()
    if not record.is_file():
        raise DataError(
            f"{path} has no recorded SHA-256 ({record.name} is missing), so nothing says the "
            f"pipeline wrote it as it is; {fix}."
        )
    recorded = record.read_text().split()[:1]
    actual = sha256_bytes(data)
    if recorded != [actual]:
        raise DataError(
            f"{path} has SHA-256 {actual} but {' '.join(recorded) or 'nothing'} was recorded in "
            f"{record.name} when it was written, so it is damaged or was changed; {fix}."
        )
    return data


def verify_artifacts(paths, fix: str = REMAKE) -> dict[str, str]:
    """Check each artifact of ``paths`` against its record (``read_artifact``) before another
    program reads it; returns their SHA-256 by path."""
    return {str(path): sha256_bytes(read_artifact(path, fix)) for path in paths}


def unreadable(path, kind: str, error: Exception, fix: str = REMAKE) -> DataError:
    """The sentence for an artifact whose bytes are as recorded but do not parse."""
    return DataError(f"{path} cannot be read as {kind} ({type(error).__name__}: {error}); {fix}.")


def read_text(path: str | os.PathLike, fix: str = REMAKE) -> str:
    data = read_artifact(path, fix)
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        raise unreadable(path, "text", error, fix) from None


def read_json(path: str | os.PathLike, fix: str = REMAKE):
    try:
        return json.loads(read_text(path, fix))
    except json.JSONDecodeError as error:
        raise unreadable(path, "JSON", error, fix) from None


def read_csv(path: str | os.PathLike, fix: str = REMAKE):
    """A CSV artifact as a pandas DataFrame."""
    import pandas as pd

    data = read_artifact(path, fix)
    try:
        return pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as error:  # EmptyDataError is a ValueError
        raise unreadable(path, "CSV", error, fix) from None


def parse_npz(data: bytes, path, fix: str = REMAKE) -> dict[str, np.ndarray]:
    """Every array of ``.npz`` bytes read from ``path`` (never unpickling)."""
    try:
        with np.load(io.BytesIO(data)) as stored:  # zip members are checked against their CRC
            return {name: stored[name] for name in stored.files}
    except Exception as error:  # whatever the damage, the file is not what was written
        raise DataError(f"{path} is damaged ({type(error).__name__}); {fix}.") from error


def read_npz(path: str | os.PathLike, fix: str = REMAKE) -> dict[str, np.ndarray]:
    return parse_npz(read_artifact(path, fix), path, fix)


def read_npz_list(path: str | os.PathLike, fix: str = REMAKE) -> list[dict]:
    """The list of dicts that ``write_npz_list`` wrote."""
    records: dict[int, dict] = {}
    for key, array in read_npz(path, fix).items():
        prefix, name = key.split("/", 1)
        records.setdefault(int(prefix[1:]), {})[name] = array
    return [records[i] for i in sorted(records)]


def load_torch(path: str | os.PathLike, device="cpu", fix: str = REMAKE):
    """What ``save_torch`` wrote to ``path``, on ``device``, after checking the bytes against
    the recorded SHA-256 (``read_artifact``); loaded with ``weights_only=True``, so no code
    in the file runs. A file that is not plain data raises ``DataError`` ending with ``fix``.
    """
    data = read_artifact(path, fix)
    try:
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as error:  # unsafe or unreadable content: either way not plain data
        raise DataError(
            f"{path} holds something other than plain tensors, numbers and strings, or is not "
            f"a torch file ({type(error).__name__}), so it was not loaded; {fix}."
        ) from error


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a damaged file (and its recorded hash) to ``<name>.damaged``, out of the way
    of a new one but kept for a look; returns the new name."""
    path = Path(path)
    aside = path.with_name(path.name + ".damaged")
    path.replace(aside)
    record = recorded_sha256_path(path)
    if record.exists():
        record.replace(recorded_sha256_path(aside))
    return aside


def delete_artifact(path: str | os.PathLike) -> None:
    """Remove an artifact and its recorded hash."""
    Path(path).unlink(missing_ok=True)
    recorded_sha256_path(path).unlink(missing_ok=True)


def start_log(path: str | os.PathLike) -> logging.Logger:
    """The ``riwae`` logger, writing to ``path`` (a stage's Snakemake log) and to standard
    error. Stages run inside Snakemake's process: its own loggers are left as they are."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("riwae")
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(message)s")
    for handler in (logging.FileHandler(path, mode="w"), logging.StreamHandler()):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


# Run folders locked by this process, kept open: a lock lasts as long as its open file.
_run_locks: dict[Path, object] = {}


def hold_run_lock(run_dir: str | os.PathLike) -> None:
    """Lock ``run_dir`` for the rest of this process, or raise ``UserError`` when another
    process holds it. The lock is the operating system's (``flock`` on
    ``<run_dir>/locks/run.lock``, beside the GPUs' locks, a file never deleted): whatever
    happens to Snakemake's own lock folder, it is released only when the process that holds
    it ends, however it ends, so it never needs unlocking."""
    path = (Path(run_dir) / "locks" / "run.lock").resolve()
    if path in _run_locks:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(
            f"Another Snakemake process is running the run in {run_dir}; wait for it to end, "
            f"or give this config another run name (--config run=...) to run it beside."
        ) from None
    _run_locks[path] = handle
