"""Reading and writing artifacts: nothing half-written, nothing executed, nothing damaged
used in silence.

Every writer goes through a temporary name and a rename. Torch files (models,
checkpoints) are written byte for byte the same for the same content, with their SHA-256
recorded beside them in ``<file>.sha256`` (the format of ``sha256sum``, so ``sha256sum -c``
checks them too); ``load_torch`` checks that hash before it reads a byte and then loads
with ``weights_only=True``, so a file in a run folder is data, never code. A file that is
missing, empty, damaged or not plain data raises ``DataError``, whose message is one
sentence naming the file and the fix; ``start_log`` makes a stage end with that sentence
instead of a traceback.
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

# The fix for a damaged artifact of a run: Snakemake makes a missing output again.
REMAKE = "delete it and run snakemake again, which writes it afresh"

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
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """``np.savez``, atomically, with no time of writing inside: the same arrays give the
    same bytes. Read back with ``np.load`` or ``read_npz``."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            with archive.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def read_npz(path: str | os.PathLike, fix: str = REMAKE) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (never unpickling); a missing or damaged file raises
    ``DataError`` ending with ``fix`` (a clause such as "delete it and run snakemake again")."""
    try:
        with np.load(path) as stored:  # zip members are checked against their CRC-32 here
            return {name: stored[name] for name in stored.files}
    except Exception as error:  # whatever the damage, the file is not what was written
        problem = "does not exist" if not Path(path).exists() else "is damaged"
        raise DataError(f"{path} {problem} ({type(error).__name__}); {fix}.") from error


def recorded_sha256_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of a torch file is recorded: ``<file>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def save_torch(path: str | os.PathLike, obj) -> None:
    """``torch.save(obj)``, atomically, its SHA-256 recorded in ``<path>.sha256``.

    ``obj`` should hold only tensors, numbers, strings, None and dicts, lists and tuples of
    them, so that ``load_torch`` can read it without unpickling code. It is serialised in
    memory, so the archive holds no temporary file name: the same object gives the same bytes.
    The hash is written first, so a file never exists without its record (a crash between
    the two leaves a mismatch, which ``load_torch`` reports).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    write_text(recorded_sha256_path(path), f"{sha256_bytes(data)}  {Path(path).name}\n")
    write_bytes(path, data)


def load_torch(path: str | os.PathLike, device="cpu", fix: str = REMAKE):
    """What ``save_torch`` wrote to ``path``, on ``device``, after checking the bytes against
    the recorded SHA-256; loaded with ``weights_only=True``, so no code in the file runs.

    Any problem (missing, empty, hash missing or different, not plain data) raises
    ``DataError``: one sentence naming the file and ending with ``fix``, a clause such as
    "rerun `snakemake --forcerun train`".
    """
    path = Path(path)
    record = recorded_sha256_path(path)

    def damaged(problem: str) -> DataError:
        return DataError(f"{path} {problem}; {fix}.")

    if not path.is_file():
        raise damaged("does not exist")
    data = path.read_bytes()
    if not data:
        raise damaged("is empty")
    if not record.is_file():
        raise damaged(f"has no recorded SHA-256 ({record.name} is missing)")
    recorded = record.read_text().split()[:1]
    actual = sha256_bytes(data)
    if recorded != [actual]:
        raise damaged(
            f"has SHA-256 {actual} but {' '.join(recorded) or 'nothing'} was recorded in "
            f"{record.name} when it was written, so it is damaged or was changed"
        )
    try:
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as error:  # unsafe or unreadable content: either way not plain data
        raise damaged(
            f"holds something other than plain tensors, numbers and strings, or is not a torch "
            f"file ({type(error).__name__}), so it was not loaded"
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


def delete_torch(path: str | os.PathLike) -> None:
    """Remove a file written by ``save_torch`` and its recorded hash."""
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
