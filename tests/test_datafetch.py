"""`distill-kit data fetch` against a loopback HTTP server serving the upstream bytes (never the real network):
progress, resume with Range after a dropped connection, Retry-After on 503, atomic install, checksum."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from distill_kit import datafetch, datasets
from distill_kit.datasets import DataError

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "https://raw.githubusercontent.com/"


class Upstream:
    """Serves ``/<owner>/<repo>/<commit>/<path>`` with the upstream bytes of registered files held in a data folder.

    Faults: ``drop_first`` paths lose the connection half-way through their first response; ``busy_first``
    paths answer 503 with Retry-After once; ``corrupt`` paths serve altered bytes.
    """

    def __init__(self, data: Path):
        self.by_url = {e.url[len(PREFIX):]: e for e in datasets.registry().values() if e.url and (data / e.path).is_file()}
        self.data = data
        self.log: list[tuple[str, str | None, int]] = []
        self.drop_first: set[str] = set()
        self.busy_first: set[str] = set()
        self.corrupt: set[str] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                key = self.path.lstrip("/")
                entry = owner.by_url.get(key)
                rng = self.headers.get("Range")
                if entry is None:
                    owner.log.append((key, rng, 404))
                    self.send_error(404)
                    return
                body = (owner.data / entry.path).read_bytes()
                body = gzip.decompress(body) if entry.path.endswith(".gz") else body
                if entry.path in owner.corrupt:
                    body = body[:-1] + b"!"
                if entry.path in owner.busy_first:
                    owner.busy_first.discard(entry.path)
                    owner.log.append((entry.path, rng, 503))
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                status = 206 if start else 200
                owner.log.append((entry.path, rng, status))
                self.send_response(status)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                part = body[start:]
                if entry.path in owner.drop_first:
                    owner.drop_first.discard(entry.path)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Upstream":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_urls_retry_after_and_selection_without_a_server(monkeypatch):
    entry = datasets.registry()["identity/seed_templates.json"]
    assert datafetch.source_url(entry, "http://mirror/") == "http://mirror/" + entry.url[len(PREFIX):]
    monkeypatch.setenv(datafetch.MIRROR_ENV, "http://env-mirror")
    assert datafetch.source_url(entry).startswith("http://env-mirror/")
    assert datafetch.retry_after_seconds("2.5") == 2.5 and datafetch.retry_after_seconds(None) is None
    assert datafetch.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert {e.path for e in datafetch.select("arena_hard/answers/*")} == {
        p for p in datasets.registry() if p.startswith("arena_hard/answers/")}
    with pytest.raises(DataError, match="no registered file matches 'nothing-like-this'"):
        datafetch.select("nothing-like-this")
    assert datasets.DataError is datafetch.DataError and datasets.registry is datafetch.registry  # one registry


def _upstream_sha(path: Path) -> str:
    raw = path.read_bytes()
    return hashlib.sha256(gzip.decompress(raw) if path.name.endswith(".gz") else raw).hexdigest()


@pytest.mark.slow  # a loopback HTTP server
def test_fetch_resumes_retries_and_installs_atomically(data_dir: Path, tmp_path: Path):
    dest = tmp_path / "folder"
    small = [e for p, e in datasets.registry().items() if p.startswith("identity/strict_positives/GPT_") and (data_dir / p).is_file()]
    plain = datasets.registry()["identity/queries_reference.csv"]  # not gzipped in the layout
    with Upstream(data_dir) as up:
        big = small[1]
        up.drop_first.add(big.path)
        up.busy_first.add(small[2].path)
        results = datafetch.fetch([*small[:3], plain], dest, base_url=up.url, progress=False, retries=3)
        assert {r.status for r in results} == {"downloaded"}
        for e in (*small[:3], plain):
            assert _upstream_sha(dest / e.path) == e.sha256
        assert not list(dest.rglob("*.part")) and not list(dest.rglob("*.tmp"))
        ranges = [(rng, status) for path, rng, status in up.log if path == big.path]
        assert ranges[0] == (None, 200) and ranges[1][1] == 206 and ranges[1][0].startswith("bytes=")  # resumed
        assert [s for p, _, s in up.log if p == small[2].path] == [503, 200]  # Retry-After honoured, then served
        # a .part left by an interrupted run resumes from where it stopped
        e = small[3]
        part = dest / e.path.replace(".csv.gz", ".csv.part")
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(gzip.decompress((data_dir / e.path).read_bytes())[:1000])
        (r,) = datafetch.fetch([e], dest, base_url=up.url, progress=False)
        assert r.status == "resumed" and _upstream_sha(dest / e.path) == e.sha256
        assert up.log[-1] == (e.path, "bytes=1000-", 206)
        # present files are left alone
        before = len(up.log)
        assert {r.status for r in datafetch.fetch(small[:3], dest, base_url=up.url, progress=False)} == {"present"}
        assert len(up.log) == before
        # bytes that fail the checksum never reach the folder under their real name
        bad = small[4]
        up.corrupt.add(bad.path)
        with pytest.raises(DataError, match="sha256"):
            datafetch.fetch([bad], dest, base_url=up.url, progress=False, retries=1)
        assert not (dest / bad.path).exists()


@pytest.mark.slow  # a loopback HTTP server
def test_cli_fetch_fills_a_folder_and_list_agrees(data_dir: Path, tmp_path: Path):
    dest = tmp_path / "folder"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISTILL_KIT_DATA_DIR": str(dest)}
    dest.mkdir()
    with Upstream(data_dir) as up:
        env["DISTILL_KIT_DATA_MIRROR"] = up.url  # URLs rewritten by the environment variable
        out = subprocess.run([sys.executable, "-m", "distill_kit", "data", "fetch", "arena_hard/answers/*"], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "3 downloaded" in out.stdout and "fetch 3 file(s)" in out.stderr  # tqdm progress on stderr
        again = subprocess.run([sys.executable, "-m", "distill_kit", "data", "fetch", "arena_hard/answers/*"], env=env,
                               capture_output=True, text=True, timeout=300)
        assert "0 downloaded, 0 resumed, 3 already present" in again.stdout
        # a registered file the mirror does not have: one line, exit 1
        miss = subprocess.run([sys.executable, "-m", "distill_kit", "data", "fetch", "identity/responses/deepseek-r1*"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert miss.returncode == 1 and miss.stderr.strip().splitlines()[-1].startswith("error: could not fetch 1 file(s)")
    ls = subprocess.run([sys.executable, "-m", "distill_kit", "data", "list", "arena_hard/*"], env=env,
                        capture_output=True, text=True, timeout=120)
    lines = dict(reversed(line.split()) for line in ls.stdout.splitlines() if line.startswith(("present", "absent")))
    assert lines["arena_hard/answers/gpt-4-0314.jsonl.gz"] == "present" and lines["arena_hard/question.jsonl.gz"] == "absent"
    # the fetched copies load through the package, checksummed
    code = "from distill_kit import datasets; print(datasets.arena_models())"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert got.stdout.strip() == "['gpt-3.5-turbo-0125', 'gpt-4-0314', 'gpt-4-0613']"


@pytest.mark.slow  # a loopback HTTP server
def test_without_a_data_dir_a_registered_file_is_downloaded_on_first_use(data_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DISTILL_KIT_DATA_DIR")
    monkeypatch.setenv("DISTILL_KIT_CACHE_DIR", str(tmp_path / "cache"))
    datasets.clear_caches()
    with Upstream(data_dir) as up:
        monkeypatch.setenv(datafetch.MIRROR_ENV, up.url)
        assert "attack" in datasets.seed_templates()
        assert (tmp_path / "cache/data/identity/seed_templates.json").is_file()
        assert [p for p, _, _ in up.log] == ["identity/seed_templates.json"]
    datasets.clear_caches()
