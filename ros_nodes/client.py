"""A node for programs that talk to the graph from outside it: the demo, the latency
benchmark, tests. It owns its rclpy context and spins on a background thread, so the
caller's code stays plain sequential Python (publish, call a service, wait for a message).
"""

from __future__ import annotations

import json
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll until predicate() is truthy and return its value; TimeoutError says what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


# A service client that has just found its server waits this long before its first request.
# Finding the server means the request can go out, not that the server has found the client's
# response reader yet. Fast DDS waits 100 ms for that match, then drops the response ("failed
# to send response (timeout): client will not receive response"; ros2/rmw_fastrtps#842). The
# request still runs, but the caller never hears back: CI saw policy/start do this under load.
FIRST_CALL_GRACE_S = 0.5


class GraphClient:
    """An rclpy node in its own context, spun on a thread; records what it hears."""

    def __init__(self, name: str, namespace: str = ""):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list] = {}
        self._clients: dict[tuple, object] = {}  # (type, name) -> client, kept so only a first call waits
        self._found: set[tuple] = set()  # clients that found their server and waited the grace
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def listen(self, msg_type, topic: str, qos_profile, callback=None) -> None:
        """Record (monotonic receive time, message) for `topic`; `callback(t, msg)` runs first, on the spin thread."""
        received = self.messages.setdefault(topic, [])

        def record(msg):
            t = time.monotonic()
            if callback is not None:
                callback(t, msg)
            with self._lock:
                received.append((t, msg))

        self.node.create_subscription(msg_type, topic, record, qos_profile)

    def latest(self, topic: str):
        with self._lock:
            items = self.messages.get(topic, [])
            return items[-1][1] if items else None

    def since(self, topic: str, t0: float) -> list:
        with self._lock:
            return [m for t, m in self.messages.get(topic, []) if t >= t0]

    def statuses(self, topic: str = "policy/status", t0: float = 0.0) -> list[dict]:
        """policy/status messages received since t0, decoded."""
        return [json.loads(m.data) for m in self.since(topic, t0)]

    def connect(self, srv_type, name: str, timeout: float = 15.0):
        """The client of a service, found and given time to be found (FIRST_CALL_GRACE_S) on the
        first use; connect ahead of a call that must be answered at once. TimeoutError when absent."""
        key = (srv_type, name)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available after {timeout:g} s")
        with self._lock:
            first = key not in self._found
            self._found.add(key)
        if first:
            time.sleep(FIRST_CALL_GRACE_S)
        return client

    def call(self, srv_type, name: str, timeout: float = 15.0, request=None):
        """Call a service (an empty request unless given) and return its response;
        TimeoutError when it is absent or silent."""
        client = self.connect(srv_type, name, timeout)
        future = client.call_async(srv_type.Request() if request is None else request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"service {name} did not answer within {timeout:g} s")
        return future.result()

    def topics(self) -> dict[str, list[str]]:
        return dict(self.node.get_topic_names_and_types())

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
