"""Checkpoint directories of ``grpo-step``: what they hold, how they are shared and published.

Layout (a directory ``CKPT``):

* full fine-tuning: a plain transformers checkpoint (``config.json``, ``model.safetensors``,
  tokenizer files) that ``rollout`` loads like any other model; weights keep the dtype the
  policy was loaded with, and a float32 master copy (``rlscale_master.safetensors``) is kept
  when that dtype is narrower so small updates are not rounded away between invocations;
* LoRA: a PEFT adapter directory (``adapter_config.json`` pointing at the absolute base-model
  path, ``adapter_model.safetensors``) plus the tokenizer;
* in both: ``rlscale_optimizer.safetensors`` (AdamW moments and step counts, one tensor per
  parameter and key, no pickle) and ``rlscale_trainer.json`` (training step, parameter order,
  hyper-parameters of the last step, metrics of the last step).

:func:`save_atomically` writes a sibling temporary directory and swaps it into place with one
atomic ``renameat2(RENAME_EXCHANGE)`` (Linux), so an interrupted save never damages the previous
checkpoint and ``--out`` may equal ``--policy``; files of the old directory that the save does
not own are carried over (:func:`carry_over`). :class:`CheckpointLock` keeps two overlapping
steps on one checkpoint from both succeeding. Nothing here imports torch or unpickles anything:
the trainer (:mod:`rlscale.engines.train`) writes the weights and optimizer state as
safetensors, metadata is JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from rlscale.core.errors import RlscaleError

TRAINER_STATE_FILE = "rlscale_trainer.json"
OPTIMIZER_FILE = "rlscale_optimizer.safetensors"
MASTER_WEIGHTS_FILE = "rlscale_master.safetensors"
STATE_FORMAT = 1
ADAPTER_CONFIG = "adapter_config.json"
UNCHECKED = object()  # save_atomically(expect=...) default: no step check


# --- checkpoint inspection -----------------------------------------------------------------


def is_adapter_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ADAPTER_CONFIG))


def check_checkpoint_dir(path: str, option: str) -> None:
    """Fail with one clear line when ``path`` is not a loadable checkpoint directory."""
    if not os.path.exists(path):
        previous = _interrupted_swap_leftover(path)
        hint = f" (an interrupted save left the previous checkpoint at {previous})" if previous \
            else ""
        raise RlscaleError(f"{option} {path}: no such directory{hint}")
    if not os.path.isdir(path):
        raise RlscaleError(f"{option} {path}: not a directory (expected a model checkpoint)")
    if not (os.path.isfile(os.path.join(path, "config.json")) or is_adapter_dir(path)):
        raise RlscaleError(f"{option} {path}: no config.json or adapter_config.json "
                           "(not a transformers checkpoint or PEFT adapter)")


def check_output_dir(path: str) -> None:
    """Refuse an ``--out`` that exists but is not a checkpoint: saving replaces the directory
    as a whole, which must never delete unrelated files."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise RlscaleError(f"--out {path}: directory {parent} does not exist")
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        raise RlscaleError(f"--out {path}: exists and is not a checkpoint directory")
    entries = os.listdir(path)
    markers = ("config.json", ADAPTER_CONFIG, TRAINER_STATE_FILE)
    if entries and not any(m in entries for m in markers):
        raise RlscaleError(f"--out {path}: exists and is not a model checkpoint (refusing to "
                           "replace it; choose a new or checkpoint directory)")


def pause_for_tests(point: str) -> None:
    """Test hook (deterministic overlap tests with real processes): with
    ``RLSCALE_TEST_PAUSE=DIR``, create ``DIR/<point>`` and wait until ``DIR/resume`` exists."""
    directory = os.environ.get("RLSCALE_TEST_PAUSE")
    if not directory:
        return
    with open(os.path.join(directory, point), "w", encoding="utf-8") as handle:
        handle.write(str(os.getpid()))
    while not os.path.exists(os.path.join(directory, "resume")):
        time.sleep(0.02)


def read_trainer_state(path: str) -> dict[str, Any]:
    """The JSON trainer state of a checkpoint, or a fresh state for a plain model."""
    state_path = os.path.join(path, TRAINER_STATE_FILE)
    if not os.path.isfile(state_path):
        return {"format": STATE_FORMAT, "step": 0}
    try:
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RlscaleError(f"{state_path}: unreadable trainer state: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT \
            or not isinstance(state.get("step"), int):
        raise RlscaleError(f"{state_path}: not an rlscale trainer state (format {STATE_FORMAT})")
    return state


# --- sharing a checkpoint: lock, step check, leftovers, files it does not own -------------------

# Names a save owns: the weights (any format), their configs and the trainer's own files. An
# existing --out's copies that the new save does not rewrite are stale (old weights in another
# format, shards of a different layout) and are dropped; everything else there is carried over.
_OWNED_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json",
                   "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.gguf", "config.json",
                   "generation_config.json", ADAPTER_CONFIG, "rlscale_*")
# Tokenizer files: the tokenizer is never trained, so files of the one that was loaded that
# save_pretrained does not rewrite (vocab.json, merges.txt, ...) travel with the checkpoint.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
                   "chat_template.jinja", "chat_template.json")
# peft writes a generic model card; a README.md the user keeps in --out wins over it
_USER_WINS = ("README.md",)


class CheckpointBusy(RlscaleError):
    """Another process holds the checkpoint's lock."""


class CheckpointMoved(RlscaleError):
    """The checkpoint changed between loading and publishing."""


def lock_path(out_dir: str) -> str:
    """The lock file beside (not inside: the directory is swapped) a checkpoint."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    return os.path.join(parent, f".{name}.lock")


def checkpoint_identity(path: str) -> tuple[int, int, int] | None:
    """(device, inode, trainer step) of a checkpoint directory, None when it does not exist.

    Every publish swaps in a new directory (new inode) and advances the step, so a change means
    another save happened in between."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    try:
        with open(os.path.join(path, TRAINER_STATE_FILE), encoding="utf-8") as handle:
            step = json.load(handle).get("step", 0)
    except (OSError, ValueError, AttributeError):
        step = 0
    return info.st_dev, info.st_ino, step if isinstance(step, int) else 0


def remove_stale_temps(out_dir: str) -> list[str]:
    """Delete what killed saves of ``out_dir`` left beside it; call only while holding its lock.

    ``.NAME.tmp-*`` directories are unfinished (or swapped-out) saves; a ``.NAME.previous-*``
    is the old checkpoint of the rename fallback and is stale once ``NAME`` exists again."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        return []
    removed = []
    for entry in sorted(os.listdir(parent)):
        stale = entry.startswith(f".{name}.tmp-") or (
            entry.startswith(f".{name}.previous-") and os.path.isdir(os.path.join(parent, name)))
        path = os.path.join(parent, entry)
        if stale and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class CheckpointLock:
    """An exclusive ``fcntl.flock`` on ``.NAME.lock`` beside the checkpoint ``NAME``.

    Held from before the policy is loaded until the new checkpoint is published, so two
    overlapping steps on one checkpoint never both succeed: the second fails at once (its
    rollouts came from weights the first is replacing). On acquiring it, leftovers of killed
    saves are removed and the checkpoint's identity is recorded for the step check.
    """

    def __init__(self, out_dir: str):
        self.out_dir = os.path.abspath(out_dir)
        self.path = lock_path(self.out_dir)
        self.fd: int | None = None
        self.identity: tuple[int, int, int] | None = None
        self.removed: list[str] = []

    def acquire(self) -> CheckpointLock:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RlscaleError(f"--out {self.out_dir}: cannot create the lock file {self.path}: "
                               f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise CheckpointBusy(f"--out {self.out_dir}: another grpo-step{who} is updating this "
                                 "checkpoint; not training on rollouts of the weights it is "
                                 "replacing") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        self.removed = remove_stale_temps(self.out_dir)
        self.identity = checkpoint_identity(self.out_dir)
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> CheckpointLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def _owned(name: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(name, pattern) for pattern in _OWNED_PATTERNS)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a carried file (instant, no extra space); copy across filesystems."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
        if not os.path.islink(dst):
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _carry(src: str, dst: str) -> None:
    if os.path.isdir(src) and not os.path.islink(src):
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def carry_over(new_dir: str, old_dir: str | None, tokenizer_dir: str | None
               ) -> tuple[list[str], list[str]]:
    """Bring into the finished ``new_dir`` what the save does not write itself.

    From ``old_dir`` (the existing ``--out``): every entry the save does not own (NOTES.md,
    LICENSE, an ``evals/`` folder, ...), and its tokenizer files when the tokenizer was loaded
    from it. From ``tokenizer_dir``: tokenizer files ``save_pretrained`` did not rewrite.
    Owned names of ``old_dir`` that the new save did not write are dropped.

    Returns:
        (carried, dropped): entry names.
    """
    carried, dropped = [], []
    written = set(os.listdir(new_dir))
    same_tokenizer = old_dir is not None and tokenizer_dir is not None and \
        os.path.realpath(old_dir) == os.path.realpath(tokenizer_dir)
    if old_dir is not None and os.path.isdir(old_dir):
        for name in sorted(os.listdir(old_dir)):
            src = os.path.join(old_dir, name)
            if name in written:
                if name in _USER_WINS and os.path.isfile(src):
                    os.remove(os.path.join(new_dir, name))
                    _carry(src, os.path.join(new_dir, name))
                    carried.append(name)
                continue
            if name in TOKENIZER_FILES and not same_tokenizer:
                dropped.append(name)  # another model's tokenizer
            elif name not in TOKENIZER_FILES and _owned(name) and not os.path.isdir(src):
                dropped.append(name)
            else:
                _carry(src, os.path.join(new_dir, name))
                carried.append(name)
    if tokenizer_dir is not None and not same_tokenizer:
        for name in TOKENIZER_FILES:
            src = os.path.join(tokenizer_dir, name)
            if os.path.isfile(src) and not os.path.lexists(os.path.join(new_dir, name)):
                _carry(src, os.path.join(new_dir, name))
                carried.append(name)
    return carried, dropped


# --- atomic directory publication ----------------------------------------------------------

_RENAME_EXCHANGE = 2  # linux/fs.h


def _finalize_tree(directory: str) -> None:
    """Give files and the directory ordinary permissions (mkdtemp and safetensors use 0700/0600;
    checkpoints are shared with inference servers) and flush them to disk before the swap."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for root, _, files in os.walk(directory):
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _interrupted_swap_leftover(path: str) -> str | None:
    parent, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(parent):
        return None
    for entry in sorted(os.listdir(parent)):
        if entry.startswith(f".{name}.previous-"):
            return os.path.join(parent, entry)
    return None


def publish_directory(tmp: str, final: str) -> None:
    """Make the finished directory ``tmp`` appear at ``final`` without a moment of damage.

    A new path is a plain rename. An existing one is swapped in one atomic
    ``renameat2(RENAME_EXCHANGE)`` and the old contents (now at ``tmp``) are deleted. Where
    that call is unavailable (non-Linux, some filesystems) the old directory is first renamed
    to ``.NAME.previous-*`` beside it, so even a crash between the two renames leaves it
    intact (and the error message for a missing checkpoint points at it).
    """
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return
    if not os.path.isdir(final) or os.path.islink(final):
        raise RlscaleError(f"--out {final}: exists and is not a checkpoint directory")
    if _exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    parent, name = os.path.split(final)
    previous = tempfile.mkdtemp(prefix=f".{name}.previous-", dir=parent)
    os.rmdir(previous)
    os.rename(final, previous)
    os.rename(tmp, final)
    shutil.rmtree(previous, ignore_errors=True)


def save_atomically(out_dir: str, write: Callable[[str], None], *,
                    tokenizer_dir: str | None = None, expect: Any = UNCHECKED,
                    before_publish: Callable[[str], None] | None = None
                    ) -> dict[str, list[str]]:
    """Publish the checkpoint that ``write(tmp)`` puts into a fresh sibling directory of
    ``out_dir``, atomically (:func:`publish_directory`); nothing is left behind on failure.

    Entries of an existing ``out_dir`` that the save does not own are carried over
    (:func:`carry_over`, with the tokenizer files of ``tokenizer_dir``). With ``expect`` (a
    :func:`checkpoint_identity`), refuses to publish when ``out_dir`` is no longer that
    checkpoint (:class:`CheckpointMoved`). ``before_publish(tmp)`` is a test hook run just
    before the swap.

    Returns:
        ``{"carried": [...], "dropped": [...]}``: entry names brought over / left out.
    """
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    check_output_dir(out_dir)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        write(tmp)
        _finalize_tree(tmp)  # before carrying: carried files keep their own modes
        if expect is not UNCHECKED:
            _check_unmoved(out_dir, expect)
        existing = out_dir if os.path.isdir(out_dir) else None
        carried, dropped = carry_over(tmp, existing, tokenizer_dir)
        if before_publish is not None:
            before_publish(tmp)  # test hook: simulate a crash before the swap
        pause_for_tests("in-save")  # test hook: hold a real process mid-save
        publish_directory(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"carried": carried, "dropped": dropped}


def _check_unmoved(out_dir: str, expect: tuple[int, int, int] | None) -> None:
    current = checkpoint_identity(out_dir)
    if current == expect:
        return
    if current is None:
        raise CheckpointMoved(f"--out {out_dir}: the checkpoint disappeared while this step ran; "
                              "nothing saved")
    then = f"step {expect[2]}" if expect is not None else "no checkpoint"
    raise CheckpointMoved(f"--out {out_dir}: another run saved this checkpoint while this step "
                          f"ran ({then} when loaded, step {current[2]} now); nothing saved "
                          "(its update would be lost)")
