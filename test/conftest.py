"""Shared fixtures: a private, loopback-only ROS 2 domain for every test session."""

from __future__ import annotations

import glob
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gymnast_core.ros_env import loopback_ros_env


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory):
    """Environment for processes that use rclpy: loopback discovery, a per-run domain, temp logs."""
    before = set(glob.glob("/dev/shm/fastdds_*") + glob.glob("/dev/shm/sem.fastdds_*"))
    env = dict(os.environ)
    loopback_ros_env(env, domain_id=random.Random(os.getpid()).randint(1, 101))
    env["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    yield env
    # Processes killed mid-run leave Fast DDS shared-memory segments behind.
    for path in set(glob.glob("/dev/shm/fastdds_*") + glob.glob("/dev/shm/sem.fastdds_*")) - before:
        try:
            os.unlink(path)
        except OSError:
            pass


@pytest.fixture(scope="session")
def save_tiny_vlm():
    """save_tiny_vlm(name, folder) writes a tiny random-weight checkpoint of the named architecture."""
    from gymnast_policy.tiny_checkpoints import TINY_VLMS

    return lambda name, folder: TINY_VLMS[name](folder)


@pytest.fixture(scope="session")
def shipped():
    """The checkpoints the project ships (checkpoints/default, tracked in git)."""
    return Path(__file__).resolve().parents[1] / "checkpoints" / "default"


class FakeChatServer:
    """Answers POST /v1/chat/completions from a script of (status, content, delay_s) replies; the last
    reply repeats. A status of None sends `content` as the raw bytes of the whole HTTP response."""

    def __init__(self):
        self.script: list[tuple[int, str, float]] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, content, delay = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                time.sleep(delay)
                if status is None:
                    self.wfile.write(content)
                    self.close_connection = True
                    return
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}],
                                      "usage": {"prompt_tokens": 100, "completion_tokens": 20}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    """A real OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script."""
    fake = FakeChatServer()
    yield fake
    fake.close()
