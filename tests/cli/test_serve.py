"""`vidllm serve` (issue 16 item 3): a resident server answers over a Unix socket with the answers of an in-process
`ask`, keeps scenes in memory, survives bad requests, refuses a second server and replaces a dead one's socket; the
client (`vidllm serve ask`) imports no torch. The shipped demo model on examples/room.mp4."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.errors import DataError
from vidllm_core.serve import AskService, ServerError, request, serve

ROOT = Path(__file__).resolve().parents[2]
ROOM = ROOT / "examples" / "room.mp4"
QUESTIONS = ["what is on the table?", "what color is the sofa?"]


@pytest.fixture(scope="module")
def model():  # noqa: ANN201 - VidLLM
    from vidllm_core.assets import default_model_dir
    from vidllm_core.models.vidllm import VidLLM

    return VidLLM.from_pretrained(default_model_dir())


@pytest.fixture
def server(model) -> Iterator[SimpleNamespace]:  # noqa: ANN001
    """A server thread on a short socket path (Unix socket paths are limited to ~100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="vs", dir="/tmp"))
    path = folder / "s.sock"
    service = AskService(model)
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(path, service, ready.set), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield SimpleNamespace(path=path, service=service, thread=thread)
    if thread.is_alive():
        request(path, {"stop": True})
        thread.join(10)
    assert not path.exists()                  # the socket file goes with the server
    folder.rmdir()


def test_answers_equal_in_process_ask(model, server) -> None:  # noqa: ANN001
    from vidllm_core.pipelines.language import ask
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    first = request(server.path, {"video": str(ROOM), "questions": QUESTIONS})
    enc = run_vision_pass(model, ROOM, tokens=True, cache=None).encoding
    assert [a["answer"] for a in first["answers"]] == [a.answer for a in ask(model, enc, QUESTIONS)]
    assert first["cached"] is False and len(first["frames"]) == model.config.input.num_frames
    again = request(server.path, {"video": str(ROOM), "questions": QUESTIONS[:1]})
    assert again["cached"] is True and again["answers"][0] == first["answers"][0]   # scene kept in memory


def test_parallel_clients_wait_their_turn(server) -> None:  # noqa: ANN001
    """Scripts run clients in parallel (xargs -P): they queue in the listen backlog, one request at a time."""
    from concurrent.futures import ThreadPoolExecutor

    payload = {"video": str(ROOM), "questions": QUESTIONS[:1]}
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: request(server.path, payload)["answers"][0]["answer"], range(12)))
    assert len(answers) == 12 and len(set(answers)) == 1


def test_bad_requests_are_one_line_and_the_server_goes_on(server) -> None:  # noqa: ANN001
    with pytest.raises(ServerError, match="video not found"):
        request(server.path, {"video": "/no/such/video.mp4", "questions": ["x"]})
    with pytest.raises(ServerError, match="absolute"):
        request(server.path, {"video": "room.mp4", "questions": ["x"]})
    with pytest.raises(ServerError, match="question is empty"):
        request(server.path, {"video": str(ROOM), "questions": [" "]})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:   # not JSON
        raw.connect(str(server.path))
        raw.sendall(b"hello\n")
        assert b"bad request" in raw.recv(4096)
    assert request(server.path, {"video": str(ROOM), "questions": ["where is the lamp?"]})["answers"]


def test_cli_client_and_stop(server) -> None:  # noqa: ANN001
    runner = CliRunner()
    res = runner.invoke(app, ["serve", "ask", str(ROOM), QUESTIONS[0], "--socket", str(server.path)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == request(server.path, {"video": str(ROOM), "questions": QUESTIONS[:1]})[
        "answers"][0]["answer"]
    res = runner.invoke(app, ["serve", "stop", "--socket", str(server.path)])
    assert res.exit_code == 0, res.output
    server.thread.join(10)
    assert not server.thread.is_alive() and not server.path.exists()
    res = runner.invoke(app, ["serve", "ask", str(ROOM), "x", "--socket", str(server.path)])
    assert res.exit_code == 2 and "error: no vidllm server at" in res.output and "Traceback" not in res.output


def test_second_server_refused_dead_socket_replaced_file_kept(server, model, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match="already listening"):
        serve(server.path, AskService(model))
    folder = Path(tempfile.mkdtemp(prefix="vs", dir="/tmp"))
    stale = folder / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:   # bound, never listening: a dead server
        dead.bind(str(stale))
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(stale, AskService(model), ready.set), daemon=True)
    thread.start()
    assert ready.wait(30)
    request(stale, {"stop": True})
    thread.join(10)
    assert not stale.exists()
    folder.rmdir()
    not_a_socket = tmp_path / "notes.txt"
    not_a_socket.write_text("keep me")
    with pytest.raises(DataError, match="not a socket"):
        serve(not_a_socket, AskService(model))
    assert not_a_socket.read_text() == "keep me"
    with pytest.raises(DataError, match="too long"):
        serve(tmp_path / ("x" * 120) / "s.sock", AskService(model))


def test_client_imports_no_torch() -> None:
    code = ("import sys, vidllm_cli.main, vidllm_cli.serve, vidllm_core.serve; "
            "bad = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_reply_cut_mid_message_is_one_server_error() -> None:
    """A server killed while writing its answer: the client says so in one line (no JSONDecodeError traceback)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)

        def half_answer() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b'{"answers": ["1"')  # and dies
            conn.close()

        thread = threading.Thread(target=half_answer)
        thread.start()
        try:
            with pytest.raises(ServerError, match="incomplete answer"):
                request(path, {"video": "x.mp4", "questions": ["q"]}, timeout=10)
        finally:
            thread.join()
            listener.close()
