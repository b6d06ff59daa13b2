"""portal.publish: queue a task, failing fast on a dead broker, against real loopback sockets."""

import json
import os
import socket
import threading
import time

import pytest
import redis

from portal import publish as publisher
from tests.registries.product_helpers import celery_conf
from tests.support.servers import free_port

TASK = "registries.tasks.validate_registry"


class CountingListener:
    """A TCP port that accepts connections and closes them at once: a broker that is down in a
    way a test can count (how many times did the publisher try?)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    server = CountingListener()
    yield server
    server.close()


def test_it_queues_the_task_on_a_live_broker(redis_server):
    url = redis_server.url.replace("/0", "/9")
    client = redis.Redis.from_url(url)
    client.delete("celery")
    with celery_conf(broker_url=url, task_always_eager=False):
        assert publisher.publish(TASK, 41, image="example.com/app:1") is True
    message = json.loads(client.lindex("celery", 0))
    assert message["headers"]["task"] == TASK and message["headers"]["argsrepr"] == "(41,)"


def test_a_dead_broker_answers_false_at_once_and_is_not_tried_again_for_a_while(listener):
    with celery_conf(broker_url=f"redis://127.0.0.1:{listener.port}/0", task_always_eager=False):
        started = time.monotonic()
        assert publisher.publish(TASK, 1) is False
        assert time.monotonic() - started < 2
        tries = listener.accepted
        assert tries >= 1
        # Within the back-off window: not even a connection attempt.
        assert publisher.publish(TASK, 2) is False
        assert listener.accepted == tries


def test_a_closed_port_fails_within_a_second(caplog):
    url = f"redis://:broker-password-1@127.0.0.1:{free_port()}/0"
    with celery_conf(broker_url=url, task_always_eager=False):
        started = time.monotonic()
        assert publisher.publish(TASK, 1) is False
        assert time.monotonic() - started < 1.5
    assert "broker unreachable" in caplog.text and "broker-password-1" not in caplog.text


def test_after_the_back_off_window_it_tries_again(listener, monkeypatch):
    monkeypatch.setattr(publisher, "BACKOFF_SECONDS", 0.0)
    with celery_conf(broker_url=f"redis://127.0.0.1:{listener.port}/0", task_always_eager=False):
        assert publisher.publish(TASK, 1) is False
        tries = listener.accepted
        assert publisher.publish(TASK, 2) is False
        deadline = time.monotonic() + 5
        while listener.accepted == tries and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listener.accepted > tries


def test_threads_naming_tasks_in_a_fresh_process_all_find_them():
    # A fresh process has discovered no tasks module yet; eight threads naming tasks at once
    # must all find them (two threads discovering at once used to see a half-filled registry).
    import subprocess
    import sys

    code = """
import os, threading
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
import django
django.setup()
from portal import publish
names = ["releases.tasks.check_release_images", "releases.tasks.check_image_verdict",
         "registries.tasks.validate_registry", "registries.mirror_tasks.mirror_image"] * 2
found, barrier = [], threading.Barrier(len(names))
def look(name):
    barrier.wait()
    publish.publish(name, 1)  # the broker is a closed port: False, but the name must resolve
    found.append(name)
threads = [threading.Thread(target=look, args=(n,)) for n in names]
[t.start() for t in threads]
[t.join() for t in threads]
print(sorted(found) == sorted(names))
"""
    env = {**os.environ, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
           "CELERY_TASK_ALWAYS_EAGER": "false"}
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, env=env)
        assert result.stdout.strip().splitlines()[-1:] == ["True"], result.stderr[-2000:]
