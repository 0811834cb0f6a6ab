"""``paperwire model pull``: the one place paperwire downloads model weights, and only when asked.

It fetches the files of a Hugging Face Hub model that :func:`paperwire.rank.embed._load_folder`
reads, in one of two layouts: a sentence-transformers model's ONNX export (``onnx/model.onnx``,
``tokenizer.json`` and the settings beside them: a transformer such as BAAI/bge-small-en-v1.5,
run by ONNX Runtime as the bundled encoder is), else model2vec's (``model.safetensors`` and
``tokenizer.json``, plus ``config.json`` when the repository has one), each from
``{endpoint}/{repo}/resolve/{revision}/{file}``, the URL
``huggingface_hub`` builds. As there, the endpoint is ``$HF_ENDPOINT`` (default
https://huggingface.co) and ``$HF_TOKEN``, when set, goes in an ``Authorization: Bearer``
header (httpx drops it on a redirect to another host, such as the Hub's file CDN).

The files land in a temporary folder beside the target, which becomes the target only after it
loads with paperwire's own loader: an interrupted or broken pull leaves nothing that ``digest``
would then read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from .. import __version__
from ..config.embeddings import INSTALL_HINT, home_path, missing_modules
from ..errors import ConfigError, PaperwireError

DEFAULT_ENDPOINT = "https://huggingface.co"
# (file, required) of model2vec's layout after tokenizer.json: its settings (e.g. "normalize"),
# read first, so that a transformer without an ONNX export is named as one before its weights
# come down (hundreds of MB that no loader here reads), then its table of token vectors
FILES = (("config.json", False), ("model.safetensors", True))
# where a sentence-transformers repository keeps its ONNX export, and the settings of its
# modules that say how token vectors become one (rank/encoder.py reads them)
ONNX = "onnx/model.onnx"
ONNX_SETTINGS = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
# what a model folder may hold (--force replaces nothing else)
MODEL_FILES = {"tokenizer.json", "model.safetensors", "config.json", "onnx", "modules.json",
               "sentence_bert_config.json", "1_Pooling"}  # fmt: skip
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0  # seconds without a byte before a stalled server is given up on
CHUNK = 1 << 20
# owner/name as the Hub spells them (a few old models have no owner: "gpt2")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_SHA256 = re.compile(r'"?([0-9a-f]{64})"?')
_COMMIT = re.compile(r"[0-9a-f]{40}")
# the target folder may be written into a YAML flow mapping unquoted
_PLAIN_YAML = re.compile(r"[\w./~-]+")
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

# called once per file with (name, size or None); returns what to call with each chunk's length
ProgressStart = Callable[[str, int | None], Callable[[int], None]]


class PullError(PaperwireError):
    """A model could not be pulled; nothing was left in the target folder."""


@dataclass
class Pulled:
    repo: str
    revision: str
    folder: Path
    commit: str | None = None  # the Hub's X-Repo-Commit: the exact version fetched
    files: list[tuple[str, int]] = field(default_factory=list)  # (name, bytes)


def default_folder(base_dir: Path, repo: str) -> Path:
    """``models/<repo name>`` beside subscribers.yaml, where a relative model folder is read."""
    return base_dir / "models" / repo.rsplit("/", 1)[-1]


def config_line(folder: Path, base_dir: Path) -> str:
    """The ``ranking:`` line for subscribers.yaml, relative to its folder when the model is
    inside it (relative model folders are read beside the config file)."""
    folder = folder.resolve()
    try:
        written = folder.relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        written = str(folder)
    # quoted unless YAML reads it back as this very string ("null", "on" or "1.5" it would not)
    if not _PLAIN_YAML.fullmatch(written) or yaml.safe_load(written) != written:
        written = '"' + written.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"ranking: {{embeddings: {written}}}"


@contextlib.contextmanager
def terminal_progress(enabled: bool):
    """A download bar per file on stderr when it is a terminal; no progress otherwise (cron,
    pipes, CI)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    more = (TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, *more, console=Console(stderr=True)) as bar:

        def start(name: str, total: int | None) -> Callable[[int], None]:
            task = bar.add_task(name, total=total)
            return lambda n: bar.update(task, advance=n)

        yield start


def pull(
    repo: str,
    folder: Path,
    *,
    revision: str = "main",
    force: bool = False,
    endpoint: str | None = None,
    token: str | None = None,
    read_timeout: float = READ_TIMEOUT,
    progress: ProgressStart | None = None,
    onnx: str | None = None,
) -> Pulled:
    """Download ``repo`` into ``folder`` (``endpoint`` / ``token`` default to ``$HF_ENDPOINT``
    / ``$HF_TOKEN``): its ONNX export (``onnx``, default ``onnx/model.onnx``, kept as
    ``onnx/model.onnx``) when it has one, else its model2vec files. Raises PullError, with one
    line saying why, and leaves no file behind."""
    from . import embed

    repo = repo.strip()
    if not _REPO.fullmatch(repo) or ".." in repo:
        raise PullError(
            f"model pull: {repo!r} is not a Hugging Face model name "
            "(owner/name, e.g. minishlab/potion-base-8M)"
        )
    onnx = onnx.strip().strip("/") if onnx else None
    if onnx is not None and (not onnx.endswith(".onnx") or ".." in onnx.split("/")):
        raise PullError(f"model pull: --onnx {onnx!r} is not the path of an .onnx file in {repo}")
    missing = missing_modules("tokenizers")
    if missing:  # checked first: the pulled folder must load before it is kept
        raise PullError(
            f"model pull: the semantic extra is not installed (missing {', '.join(missing)}): "
            f"{INSTALL_HINT}"
        )
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        # huggingface_hub's switch for "no network": honoured here too
        raise PullError("model pull: HF_HUB_OFFLINE is set; unset it to download a model")
    try:
        folder = home_path(str(folder))
    except ValueError as exc:
        raise PullError(f"model pull: {exc}") from None
    if os.path.lexists(folder):
        if not force:
            raise PullError(f"model pull: {folder} already exists; add --force to replace it")
        _check_replaceable(folder)
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    token = token if token is not None else os.environ.get("HF_TOKEN") or None
    # identity: the byte count is checked against Content-Length, as huggingface_hub does
    headers = {"User-Agent": f"paperwire/{__version__}", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    pulled = Pulled(repo, revision, folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = _new_folder_beside(folder, "pull")
    except OSError as exc:
        raise PullError(f"model pull: cannot create {folder.parent}: {exc.strerror}") from None
    try:
        timeout = httpx.Timeout(read_timeout, connect=min(CONNECT_TIMEOUT, read_timeout))
        with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as client:

            def fetch(name: str, required: bool, saved_as: str | None = None) -> int | None:
                # after the first file, the rest at its commit: a push mid-pull cannot mix
                # two versions of the model
                url = f"{endpoint}/{repo}/resolve/{_quote(pulled.commit or revision)}/{name}"
                path = scratch / (saved_as or name)
                path.parent.mkdir(parents=True, exist_ok=True)
                size = _download(client, url, path, name, pulled, required, progress, folder.parent)
                if size is not None:
                    pulled.files.append((name, size))
                elif path.parent != scratch:  # an optional file the model lacks: no folder
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()
                return size

            fetch("tokenizer.json", True)
            if fetch(onnx or ONNX, onnx is not None, saved_as=ONNX) is not None:
                for name in ONNX_SETTINGS:
                    fetch(name, False)
            else:
                _pull_model2vec(fetch, scratch, repo)
        try:
            embed._load_folder(scratch)
        except ConfigError as exc:
            why = str(exc).removeprefix("ranking.embeddings: ").replace(str(scratch), "the folder")
            raise PullError(
                f"model pull: {repo} downloaded but is not a model paperwire can read: {why}"
            ) from None
        _move_into_place(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return pulled


def _pull_model2vec(fetch: Callable[..., int | None], scratch: Path, repo: str) -> None:
    """model2vec's files, once config.json shows the repository is not a transformer that
    only lacks an ONNX export (its PyTorch weights would come down for nothing)."""
    fetch("config.json", False)
    kind = _model_type(scratch / "config.json")
    if kind and kind != "model2vec":
        raise PullError(
            f"model pull: {repo} is a {kind} model without an ONNX export ({ONNX}); paperwire "
            "runs transformers through ONNX Runtime: pull a repository that has one, or name "
            "its file with --onnx"
        )
    missing = missing_modules("safetensors")
    if missing:
        raise PullError(
            f"model pull: {repo} is a model2vec model, which needs the semantic extra "
            f"(missing {', '.join(missing)}): {INSTALL_HINT}"
        )
    fetch("model.safetensors", True)


def _model_type(config: Path) -> str | None:
    """config.json's ``model_type`` ("bert", "model2vec", ...), if it says."""
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return kind if isinstance(kind, str) and kind else None


def _quote(revision: str) -> str:
    from urllib.parse import quote

    return quote(revision, safe="")  # "refs/pr/1" is one path segment, as huggingface_hub sends


def _download(
    client: httpx.Client,
    url: str,
    path: Path,
    name: str,
    pulled: Pulled,
    required: bool,
    progress: ProgressStart | None,
    into: Path | None = None,
) -> int | None:
    """Stream the repository's file ``name`` to ``path``; its size, or None for an optional
    file the model lacks. ``into``: the folder a full disk is reported for."""
    try:
        with client.stream("GET", url) as response:
            if response.status_code == 404 and not required and _code(response) != "RepoNotFound":
                return None
            if response.status_code != 200:
                raise PullError(_refused(response, pulled, name, url, client))
            pulled.commit = pulled.commit or _repo_commit(response)
            expected = _int(response.headers.get("content-length"))
            sha256 = _linked_sha256(response)
            advance = progress(name, expected) if progress else (lambda n: None)
            digest = hashlib.sha256()
            with path.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
            got = response.num_bytes_downloaded  # on the wire, as Content-Length counts
    except httpx.ConnectTimeout:
        raise PullError(
            f"model pull: {_host(url)} did not answer within {client.timeout.connect:g} s"
        ) from None
    except httpx.ReadTimeout:
        raise PullError(
            f"model pull: {name}: the server sent nothing for {client.timeout.read:g} s; "
            "nothing was kept, run it again"
        ) from None
    except httpx.RemoteProtocolError:
        # h11 refuses a body shorter than its Content-Length: the line dropped mid-file
        raise PullError(
            f"model pull: {name}: the connection closed before the whole file arrived; "
            "nothing was kept, run it again"
        ) from None
    except httpx.TransportError as exc:
        raise PullError(f"model pull: cannot reach {_host(url)}: {exc}") from None
    except httpx.TooManyRedirects:  # not a TransportError: it ended the pull with a traceback
        raise PullError(
            f"model pull: {name}: more than {client.max_redirects} redirects (a redirect loop?); "
            "nothing was kept"
        ) from None
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            where = path.parent if into is None else into
            raise PullError(
                f"model pull: no room left to write {name} in {where} ({exc.strerror}); "
                "nothing was kept"
            ) from None
        raise PullError(f"model pull: cannot write {name}: {exc.strerror}") from None
    # h11 already refuses a short body (above); this guards any transport that would not
    if expected is not None and got != expected:
        raise PullError(
            f"model pull: {name}: {got} of {expected} bytes arrived; nothing was kept, run it again"
        )
    if sha256 and digest.hexdigest() != sha256:
        raise PullError(
            f"model pull: {name}: the bytes do not match the Hub's sha256; nothing was kept, "
            "run it again"
        )
    return got


def _refused(response: httpx.Response, pulled: Pulled, name: str, url: str, client) -> str:
    """One line for a refusal, from the status and the Hub's X-Error-Code header."""
    status, code = response.status_code, _code(response)
    repo, at = pulled.repo, _host(url)
    sent_token = "authorization" in client.headers
    if code == "RepoNotFound" or (status == 401 and not code and not sent_token):
        # the Hub answers 401, not 404, for a model that does not exist (or is private)
        hint = "" if sent_token else "; if it is private, set HF_TOKEN"
        return f"model pull: no model {repo} on {at} (HTTP {status}){hint}"
    if code == "RevisionNotFound":
        return f"model pull: {repo} has no revision {pulled.revision!r} (HTTP {status})"
    if code == "GatedRepo" or status in (401, 403):
        if not sent_token:
            return (
                f"model pull: {repo} needs a Hugging Face token (HTTP {status}): accept its "
                "terms on the Hub and set HF_TOKEN"
            )
        return f"model pull: HF_TOKEN does not give access to {repo} (HTTP {status})"
    if status == 404:
        return (
            f"model pull: {repo} has no {name} (HTTP 404): no such model, or in neither layout "
            f"paperwire reads (an ONNX export, {ONNX} + tokenizer.json; or model2vec's, "
            "model.safetensors + tokenizer.json)"
        )
    return f"model pull: {name}: {at} answered HTTP {status}"


def _code(response: httpx.Response) -> str | None:
    return response.headers.get("x-error-code")


def _linked_sha256(response: httpx.Response) -> str | None:
    """The sha256 the Hub gives an LFS file (X-Linked-Etag on the redirect to its CDN)."""
    for hop in [*response.history, response]:
        match = _SHA256.fullmatch(hop.headers.get("x-linked-etag", ""))
        if match:
            return match.group(1)
    return None


def _repo_commit(response: httpx.Response) -> str | None:
    """The Hub's X-Repo-Commit (the commit a revision resolved to), also when the file itself
    came from the CDN after a redirect."""
    for hop in (*response.history, response):
        commit = hop.headers.get("x-repo-commit")
        if commit and _COMMIT.fullmatch(commit):
            return commit
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _host(url: str) -> str:
    return httpx.URL(url).netloc.decode("ascii")


def _new_folder_beside(folder: Path, what: str) -> Path:
    """A fresh hidden folder beside ``folder``: the final rename stays on one file system, and,
    unlike mkdtemp's 0700, it gets the umask's permissions, so a daemon running as another
    user can read the model."""
    while True:
        scratch = folder.parent / f".{folder.name}.{what}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileExistsError):
            scratch.mkdir()
            return scratch


def _check_replaceable(folder: Path) -> None:
    """``--force`` replaces a model folder, nothing else: ``--to ~`` or the folder that holds
    subscribers.yaml and paperwire.db must never be deleted by a typo."""
    model_files = MODEL_FILES
    if folder.is_symlink() or not folder.is_dir():
        raise PullError(f"model pull: {folder} is not a model folder; --force only replaces one")
    others = sorted(p.name for p in folder.iterdir() if p.name not in model_files)
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise PullError(
            f"model pull: {folder} holds files that are not a model's ({shown}); --force only "
            "replaces a model folder: choose another --to"
        )


def _move_into_place(scratch: Path, folder: Path) -> None:
    """Rename the checked folder onto the target; a replaced folder is removed only once the
    new one is in place, and put back if it cannot be."""
    old = None
    if os.path.lexists(folder):  # --force, on a folder _check_replaceable accepted
        old = _new_folder_beside(folder, "old")
        try:
            os.replace(folder, old / folder.name)
        except OSError as exc:
            old.rmdir()
            raise PullError(
                f"model pull: cannot move the old {folder} aside: {exc.strerror}"
            ) from None
    try:
        os.replace(scratch, folder)
    except OSError as exc:
        if old is not None:
            os.replace(old / folder.name, folder)
            old.rmdir()
        raise PullError(
            f"model pull: cannot rename the download to {folder}: {exc.strerror}"
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
