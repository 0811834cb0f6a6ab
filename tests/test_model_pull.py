"""``paperwire model pull`` against a real Hub-like HTTP server on 127.0.0.1 (HF_ENDPOINT points
at it; nothing here reaches the real Hub): a pull that then ranks, refusals, a stalled server,
a dropped line, a full disk, the token."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from paperwire.cli import cli
from paperwire.rank import embed, model_pull

from .conftest import FIXTURES, SHUTDOWN_POLL, free_port
from .test_embed import _model2vec_folder

REPO = "minishlab/potion-tiny"
TINY_ONNX = FIXTURES / "tiny-st-onnx"
TOKEN = "hf_0123456789abcdefSECRET"


@dataclass
class Hub:
    """Answers ``/{owner}/{name}/resolve/{revision}/{file}`` as the Hub does: small files
    directly, model.safetensors by a redirect to a CDN (another origin) with its sha256 in
    X-Linked-Etag; an unknown model is 401 RepoNotFound, a missing file 404 EntryNotFound."""

    port: int
    cdn_port: int
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    # file name -> "stall" (headers and a few bytes, then silence) | "drop" (half, then close)
    # | "drip" (half, then a byte every 0.2 s) | "loop" (a redirect to itself)
    misbehave: dict[str, str] = field(default_factory=dict)
    wrong_sha: bool = False
    gated: set[str] = field(default_factory=set)  # repos that need a token with access
    requests: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)  # port, path
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(hub: Hub, cdn: bool) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            hub.requests.append((hub.cdn_port if cdn else hub.port, self.path, dict(self.headers)))
            if cdn:  # /blob/{owner}/{name}/{file, perhaps in a folder}
                _, _, owner, name, file = self.path.split("/", 4)
                return self._body(hub.repos[f"{owner}/{name}"][file], file)
            parts = self.path.strip("/").split("/")  # owner/name/resolve/revision/file...
            repo, file = "/".join(parts[:2]), "/".join(parts[4:])
            if repo not in hub.repos:
                return self._send(401, X_Error_Code="RepoNotFound")
            if repo in hub.gated:  # the Hub: 401 without a token, 403 with one lacking access
                status = 403 if "Authorization" in self.headers else 401
                return self._send(status, X_Error_Code="GatedRepo")
            files = hub.repos[repo]
            if file not in files:
                return self._send(404, X_Error_Code="EntryNotFound")
            if file.endswith((".safetensors", ".onnx")):  # the Hub's LFS files
                sha = hashlib.sha256(files[file] + (b"x" if hub.wrong_sha else b"")).hexdigest()
                return self._send(
                    302,
                    Location=f"http://127.0.0.1:{hub.cdn_port}/blob/{repo}/{file}",
                    X_Linked_Etag=f'"{sha}"',
                    X_Repo_Commit="c0ffee" * 6 + "abcd",
                )
            self._body(files[file], file, X_Repo_Commit="c0ffee" * 6 + "abcd")

        def _body(self, body: bytes, file: str, **headers: str) -> None:
            how = hub.misbehave.get(file)
            if how is None:
                return self._send(200, body, **headers)
            if how == "loop":  # a redirect to itself, forever
                return self._send(302, Location=self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if how == "stall":
                hub.stop.wait(30)
            while how == "drip" and not hub.stop.wait(0.2):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:  # the client gave up: that is the point
                    break
            self.close_connection = True  # "drop": the line goes after half the file

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def hub(monkeypatch) -> Iterator[Hub]:
    state = Hub(port=free_port(), cdn_port=free_port())
    servers = [
        _Server(("127.0.0.1", state.port), _handler(state, cdn=False)),
        _Server(("127.0.0.1", state.cdn_port), _handler(state, cdn=True)),
    ]
    for server in servers:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL}, daemon=True
        ).start()
    monkeypatch.setenv("HF_ENDPOINT", state.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # a developer's shell may set it
    try:
        yield state
    finally:
        state.stop.set()
        for server in servers:
            server.shutdown()
            server.server_close()


def _model_files(tmp_path: Path, name: str = "built") -> dict[str, bytes]:
    """A real model2vec-layout model, built as tests/test_embed.py builds one."""
    table = np.array([[9, 9], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    folder = _model2vec_folder(tmp_path / name, table)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _pull(*args: str):
    return CliRunner().invoke(cli, ["model", "pull", *args])


def _left_beside(folder: Path) -> list[str]:
    """What a pull left in the target's parent folder (no scratch folder may remain)."""
    return sorted(p.name for p in folder.parent.iterdir()) if folder.parent.exists() else []


def test_a_pulled_model_is_what_digest_then_ranks_with(hub, tmp_path):
    hub.repos[REPO] = _model_files(tmp_path)
    result = _pull(REPO)
    assert result.exit_code == 0, result.output
    target = tmp_path / "models" / "potion-tiny"
    assert result.stdout.splitlines() == [
        f"Pulled {REPO} (main, commit c0ffeec0ffee) into {target}: tokenizer.json 0.0 MB, "
        "config.json 0.0 MB, model.safetensors 0.0 MB.",
        "Check its licence on its Hub page. To rank with it, put in subscribers.yaml:",
        "ranking: {embeddings: models/potion-tiny}",
    ]
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    # the first file at the revision asked for, the rest at the commit it resolved to
    commit = "c0ffee" * 6 + "abcd"
    assert [path for port, path, _ in hub.requests if port == hub.port] == [
        f"/{REPO}/resolve/main/tokenizer.json",
        f"/{REPO}/resolve/{commit}/onnx/model.onnx",  # 404: not a transformer's export
        f"/{REPO}/resolve/{commit}/config.json",
        f"/{REPO}/resolve/{commit}/model.safetensors",
    ]
    assert _left_beside(target) == ["potion-tiny"]
    umask = os.umask(0o22)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700: a daemon reads it

    # the printed line, pasted into subscribers.yaml, is what digest ranks with
    digest = hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest()[:12]
    assert _ranked_with(result.stdout.splitlines()[-1], tmp_path) == {f"potion-tiny-{digest}"}


def _ranked_with(config_line: str, folder: Path) -> set[str]:
    """The models whose vectors a fetch and a digest stored, with ``config_line`` pasted into
    ``folder``'s subscribers.yaml."""
    (folder / "subscribers.yaml").write_text(
        f"{config_line}\n"
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: arxiv-cs\n"
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "bandit regret"\n    digest_days: daily\n'
    )
    assert CliRunner().invoke(cli, ["fetch"]).exit_code == 0
    ranked = CliRunner().invoke(cli, ["digest", "--json"])
    assert ranked.exit_code == 0, ranked.output
    with contextlib.closing(sqlite3.connect(folder / "paperwire.db")) as db:
        return {m for (m,) in db.execute("SELECT DISTINCT model FROM embeddings")}


def test_a_model_without_config_json_still_pulls(hub, tmp_path):
    files = _model_files(tmp_path)
    del files["config.json"]
    hub.repos[REPO] = files
    result = _pull(REPO, "--to", "m")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in Path("m").iterdir()) == ["model.safetensors", "tokenizer.json"]


def test_no_such_model_and_a_repo_in_neither_layout_are_one_line_errors(hub, tmp_path):
    result = _pull("acme/nope")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model pull: no model acme/nope on 127.0.0.1:{hub.port} (HTTP 401); "
        "if it is private, set HF_TOKEN\n"
    )
    files = _model_files(tmp_path)
    hub.repos["acme/bert"] = {"config.json": files["config.json"]}  # a transformers model
    result = _pull("acme/bert")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: acme/bert has no tokenizer.json (HTTP 404): no such model, or in "
        "neither layout paperwire reads (an ONNX export, onnx/model.onnx + tokenizer.json; or "
        "model2vec's, model.safetensors + tokenizer.json)\n"
    )
    assert _left_beside(tmp_path / "models" / "bert") == []
    # a transformer whose repository has no ONNX export: said before its weights come down
    hub.repos["acme/bert"] = {
        "tokenizer.json": files["tokenizer.json"],
        "config.json": b'{"model_type": "bert", "hidden_size": 768}',
        "model.safetensors": b"\0" * 1000,  # PyTorch weights no loader here reads
    }
    hub.requests.clear()
    result = _pull("acme/bert")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: acme/bert is a bert model without an ONNX export (onnx/model.onnx); "
        "paperwire runs transformers through ONNX Runtime: pull a repository that has one, or "
        "name its file with --onnx\n"
    )
    assert not [path for _, path, _ in hub.requests if path.endswith("model.safetensors")]
    assert _left_beside(tmp_path / "models" / "bert") == []


def test_a_download_that_is_not_a_readable_model_is_not_kept(hub, tmp_path):
    files = _model_files(tmp_path)
    files["model.safetensors"] = b"not safetensors"
    hub.repos[REPO] = files
    result = _pull(REPO)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: model pull: {REPO} downloaded but is not a model paperwire can read: "
        "cannot read the model in the folder: "
    )
    assert result.stderr.count("\n") == 1
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def test_a_stalled_server_is_given_up_on_after_the_timeout(hub, tmp_path):
    hub.repos[REPO] = _model_files(tmp_path)
    hub.misbehave["model.safetensors"] = "stall"
    result = _pull(REPO, "--timeout", "0.5")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: model.safetensors: the server sent nothing for 0.5 s; nothing was "
        "kept, run it again\n"
    )
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def test_a_dripping_server_is_given_up_on_at_the_deadline(hub, tmp_path):
    """A byte every 0.2 s never trips --timeout (a read timeout): the pull hung for as long as
    the server dripped. The deadline ends it, and leaves nothing behind."""
    hub.repos[REPO] = _model_files(tmp_path)
    hub.misbehave["model.safetensors"] = "drip"
    began = time.monotonic()
    result = _pull(REPO, "--timeout", "0.5", "--deadline", "1")
    took = time.monotonic() - began
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model pull: {REPO}: not finished within 1 s (--deadline); nothing was kept, "
        "run it again\n"
    )
    assert took < 3, took
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def test_a_line_dropped_mid_file_leaves_nothing(hub, tmp_path):
    hub.repos[REPO] = _model_files(tmp_path)
    hub.misbehave["model.safetensors"] = "drop"
    result = _pull(REPO)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: model.safetensors: the connection closed before the whole file "
        "arrived; nothing was kept, run it again\n"
    )
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def test_a_redirect_loop_is_a_one_line_error_and_leaves_nothing(hub, tmp_path):
    """A CDN (or a proxy before it) redirecting to itself ended the pull with httpx's
    TooManyRedirects traceback."""
    hub.repos[REPO] = _model_files(tmp_path)
    hub.misbehave["model.safetensors"] = "loop"
    result = _pull(REPO)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: model.safetensors: more than 20 redirects (a redirect loop?); "
        "nothing was kept\n"
    )
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def test_bytes_that_do_not_match_the_hubs_sha256_are_not_kept(hub, tmp_path):
    hub.repos[REPO] = _model_files(tmp_path)
    hub.wrong_sha = True
    result = _pull(REPO)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: model.safetensors: the bytes do not match the Hub's sha256; "
        "nothing was kept, run it again\n"
    )
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def _paperwire(*args: str, cwd: Path, env: dict[str, str], fsize: int | None = None):
    def limit_file_size():  # a full disk, as the kernel reports it to the writer
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERWIRE_", "HF_"))}
    return subprocess.run(
        [sys.executable, "-m", "paperwire", *args],
        cwd=cwd,
        env={**base, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size if fsize else None,
    )


def test_the_token_goes_to_the_hub_only_as_a_header_and_never_to_the_output(hub, tmp_path):
    hub.repos[REPO] = _model_files(tmp_path)
    env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN}
    result = _paperwire("-vv", "model", "pull", REPO, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert "HTTP Request: GET" in result.stderr  # -vv does log the requests
    sent = {(port, headers.get("Authorization")) for port, _, headers in hub.requests}
    # the CDN is another origin: httpx drops the header on the redirect, as huggingface_hub does
    assert sent == {(hub.port, f"Bearer {TOKEN}"), (hub.cdn_port, None)}

    hub.requests.clear()
    result = _paperwire(
        "model", "pull", REPO, "--to", "again", cwd=tmp_path, env={"HF_ENDPOINT": hub.endpoint}
    )
    assert result.returncode == 0, result.stderr
    assert all("Authorization" not in headers for _, _, headers in hub.requests)


def test_a_full_disk_is_a_one_line_error_and_leaves_nothing(hub, tmp_path):
    files = _model_files(tmp_path)
    files["model.safetensors"] += b"\0" * 200_000  # trailing bytes; never loaded here
    hub.repos[REPO] = files
    env = {"HF_ENDPOINT": hub.endpoint}
    result = _paperwire("model", "pull", REPO, cwd=tmp_path, env=env, fsize=100_000)
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: model pull: no room left to write model.safetensors in {tmp_path / 'models'} "
        "(File too large); nothing was kept\n"
    )
    assert _left_beside(tmp_path / "models" / "potion-tiny") == []


def test_an_existing_folder_is_replaced_only_with_force(hub, tmp_path):
    hub.repos[REPO] = _model_files(tmp_path)
    target = tmp_path / "models" / "potion-tiny"
    target.mkdir(parents=True)
    (target / "mine.txt").write_text("keep me")
    result = _pull(REPO)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model pull: {target} already exists; add --force to replace it\n"
    )
    assert hub.requests == []  # refused before any download
    assert (target / "mine.txt").read_text() == "keep me"

    # --force replaces a model folder, never one with other files in it (a typo'd --to ~)
    result = _pull(REPO, "--force")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model pull: {target} holds files that are not a model's (mine.txt); --force "
        "only replaces a model folder: choose another --to\n"
    )
    assert (target / "mine.txt").read_text() == "keep me"
    assert hub.requests == []

    (target / "mine.txt").unlink()
    (target / "model.safetensors").write_bytes(b"an older model")
    result = _pull(REPO, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert (target / "model.safetensors").read_bytes() == hub.repos[REPO]["model.safetensors"]
    assert _left_beside(target) == ["potion-tiny"]


def test_force_never_replaces_the_config_folder(hub, tmp_path, monkeypatch):
    hub.repos[REPO] = _model_files(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.chdir(site)
    (site / "subscribers.yaml").write_text("subscribers: []\n")
    (site / "paperwire.db").write_bytes(b"")
    result = _pull(REPO, "--to", ".", "--force")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: . holds files that are not a model's (paperwire.db, "
        "subscribers.yaml); --force only replaces a model folder: choose another --to\n"
    )
    assert sorted(p.name for p in site.iterdir()) == ["paperwire.db", "subscribers.yaml"]
    assert hub.requests == []


def test_a_name_that_is_not_owner_slash_name_is_refused_before_any_request(hub):
    result = _pull("../../etc")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: '../../etc' is not a Hugging Face model name "
        "(owner/name, e.g. minishlab/potion-base-8M)\n"
    )
    assert hub.requests == []


def test_the_config_line_is_relative_beside_the_config_and_quoted_when_it_must_be(tmp_path):
    base = tmp_path / "conf"
    assert model_pull.config_line(base / "models" / "m", base) == "ranking: {embeddings: models/m}"
    assert model_pull.config_line(tmp_path / "elsewhere", base) == (
        f"ranking: {{embeddings: {tmp_path / 'elsewhere'}}}"
    )
    assert model_pull.config_line(base / "my models, v2", base) == (
        'ranking: {embeddings: "my models, v2"}'
    )
    # names YAML would read as something else than the folder's name
    for name in ("null", "on", "1.5"):
        line = model_pull.config_line(base / name, base)
        assert line == f'ranking: {{embeddings: "{name}"}}'
        assert yaml.safe_load(line) == {"ranking": {"embeddings": name}}
    assert model_pull.default_folder(base, "minishlab/potion-base-8M") == (
        base / "models" / "potion-base-8M"
    )


@pytest.mark.parametrize(
    ("token", "said"),
    [
        (
            None,
            "acme/gated needs a Hugging Face token (HTTP 401): accept its terms on the Hub and "
            "set HF_TOKEN",
        ),
        (TOKEN, "HF_TOKEN does not give access to acme/gated (HTTP 403)"),
    ],
)
def test_a_gated_model_says_what_the_token_must_do(hub, tmp_path, monkeypatch, token, said):
    hub.repos["acme/gated"] = _model_files(tmp_path)
    hub.gated.add("acme/gated")
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    result = _pull("acme/gated")
    assert result.exit_code == 1
    assert result.stderr == f"Error: model pull: {said}\n"
    assert TOKEN not in result.output


def test_hf_hub_offline_is_honoured(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _pull(REPO)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model pull: HF_HUB_OFFLINE is set; unset it to download a model\n"
    )
    assert hub.requests == []


@pytest.mark.parametrize(
    ("stop", "said"),
    [
        (signal.SIGINT, "\nAborted!\n"),  # Ctrl-C
        # kill, timeout(1), a service stopped: the scratch folder was left behind for good
        (signal.SIGTERM, f"Error: model pull: {REPO}: stopped (SIGTERM); nothing was kept\n"),
    ],
)
def test_an_interrupted_pull_removes_its_scratch_folder(hub, tmp_path, stop, said):
    hub.repos[REPO] = _model_files(tmp_path)
    hub.misbehave["model.safetensors"] = "stall"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERWIRE_", "HF_"))}
    # The pull must start as a terminal's foreground job does, with SIGINT not ignored. A
    # suite run as a background job of a script (`.ci/run &`) has it ignored, the child would
    # inherit that through exec, and Python (rightly) leaves an ignored SIGINT ignored: the
    # pull would never see this Ctrl-C. A handler in this process is reset by exec instead.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        pulling = subprocess.Popen(
            # -X faulthandler: a pull that ignores Ctrl-C says where it is stuck (see below)
            [sys.executable, "-X", "faulthandler", "-m", "paperwire", "model", "pull", REPO],
            cwd=tmp_path,
            env={**base, "HF_ENDPOINT": hub.endpoint},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    models = tmp_path / "models"
    deadline = time.monotonic() + 20
    while not list(models.glob(".potion-tiny.pull-*/model.safetensors")):  # half of it arrived
        assert time.monotonic() < deadline and pulling.poll() is None
        time.sleep(0.05)
    pulling.send_signal(stop)
    try:
        _, err = pulling.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        # SIGABRT makes faulthandler print every thread's stack (what found the inherited
        # ignored SIGINT above), and the process dies here instead of leaking into the next test
        pulling.send_signal(signal.SIGABRT)
        _, stuck = pulling.communicate(timeout=20)
        pytest.fail(f"the pull was still running 20 s after Ctrl-C:\n{stuck}")
    assert pulling.returncode == 1
    assert err == said
    assert list(models.iterdir()) == []


def test_an_alarm_handled_after_the_deadlines_block_ended_ends_nothing():
    """SIGALRM's Python handler runs a few bytecodes after the signal: an alarm delivered as
    the block ended (before the timer was cancelled) raised the deadline's error after the
    work was done, out of its clean-up. Here the handler runs, as such a late one would, once
    the block has ended."""
    import signal

    from paperwire.deadline import wall_clock

    class Late(Exception):
        pass

    with wall_clock(30, Late):
        ring = signal.getsignal(signal.SIGALRM)
        assert callable(ring)
    ring(signal.SIGALRM, None)  # no error: the block had ended
    with pytest.raises(Late), wall_clock(0.05, Late):
        signal.pause()  # the alarm still ends a block that runs past its deadline


ONNX_REPO = "BAAI/bge-tiny"


def _onnx_files() -> dict[str, bytes]:
    """A sentence-transformers repository with its ONNX export (tests/fixtures/tiny-st-onnx),
    and the PyTorch weights such a repository also has, which a pull must leave alone."""
    files = {
        path.relative_to(TINY_ONNX).as_posix(): path.read_bytes()
        for path in sorted(TINY_ONNX.rglob("*"))
        if path.is_file() and path.name != "weights.npz"
    }
    return files | {"model.safetensors": b"\0" * 4096}


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_sentence_transformers_onnx_export_is_pulled_and_ranked_with(hub, tmp_path):
    hub.repos[ONNX_REPO] = _onnx_files()
    result = _pull(ONNX_REPO)
    assert result.exit_code == 0, result.output
    target = tmp_path / "models" / "bge-tiny"
    assert result.stdout.splitlines() == [
        f"Pulled {ONNX_REPO} (main, commit c0ffeec0ffee) into {target}: tokenizer.json 0.0 MB, "
        "onnx/model.onnx 0.0 MB, config.json 0.0 MB, modules.json 0.0 MB, "
        "sentence_bert_config.json 0.0 MB, 1_Pooling/config.json 0.0 MB.",
        "Check its licence on its Hub page. To rank with it, put in subscribers.yaml:",
        "ranking: {embeddings: models/bge-tiny}",
    ]
    assert _tree(target) == [
        "1_Pooling/config.json",
        "config.json",
        "modules.json",
        "onnx/model.onnx",
        "sentence_bert_config.json",
        "tokenizer.json",
    ]
    assert not [path for _, path, _ in hub.requests if path.endswith(".safetensors")]
    assert _left_beside(target) == ["bge-tiny"]
    # the same model as the files it came from: the same vectors
    pulled, source = embed.load_model(str(target)), embed.load_model(str(TINY_ONNX))
    text = ["graph neural network molecule"]
    np.testing.assert_array_equal(pulled.embed(text), source.embed(text))
    assert _ranked_with(result.stdout.splitlines()[-1], tmp_path) == {pulled.name}


def test_onnx_picks_another_export_of_the_repository_and_names_one_it_lacks(hub, tmp_path):
    files = _onnx_files()
    quantised = files["onnx/model.onnx"] + b""  # any valid graph will do; its bytes are checked
    files["onnx/model_qint8_avx512.onnx"] = quantised
    files["onnx/model.onnx"] = b"the fp32 export, which must not be fetched"
    hub.repos[ONNX_REPO] = files
    result = _pull(ONNX_REPO, "--onnx", "onnx/model_qint8_avx512.onnx")
    assert result.exit_code == 0, result.output
    target = tmp_path / "models" / "bge-tiny"
    assert (target / "onnx" / "model.onnx").read_bytes() == quantised  # where the loader reads
    paths = [path for _, path, _ in hub.requests]
    assert any(p.endswith("/onnx/model_qint8_avx512.onnx") for p in paths)
    assert not any(p.endswith("/onnx/model.onnx") for p in paths)

    result = _pull(ONNX_REPO, "--onnx", "onnx/model_O4.onnx", "--to", "other")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: model pull: {ONNX_REPO} has no onnx/model_O4.onnx (HTTP 404)"
    )
    assert not (tmp_path / "other").exists()
    hub.requests.clear()
    for wrong in ("../../secrets.onnx", "onnx/model.bin"):
        result = _pull(ONNX_REPO, "--onnx", wrong, "--to", "other")
        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: model pull: --onnx {wrong!r} is not the path of an .onnx file in {ONNX_REPO}\n"
        )
    assert hub.requests == []  # refused before any request


def test_force_replaces_an_onnx_model_folder(hub, tmp_path):
    hub.repos[ONNX_REPO] = _onnx_files()
    assert _pull(ONNX_REPO).exit_code == 0
    target = tmp_path / "models" / "bge-tiny"
    (target / "onnx" / "model.onnx").write_bytes(b"an older export")
    result = _pull(ONNX_REPO, "--force")
    assert result.exit_code == 0, result.output
    assert (target / "onnx" / "model.onnx").read_bytes() == hub.repos[ONNX_REPO]["onnx/model.onnx"]
    assert _left_beside(target) == ["bge-tiny"]
