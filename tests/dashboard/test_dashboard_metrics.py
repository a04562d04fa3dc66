"""The Prometheus endpoint, scraped over HTTP on loopback, against the status document."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from ringctl.dashboard import MetricsServer, metrics_text, serve_metrics
from ringctl.exceptions import UserInputError

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(url, timeout=5) as response:
        content_type = response.headers["Content-Type"]
        body = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return content_type, samples


def kernel_sample(samples: Samples, name: str, kernel: str, **extra: str) -> float:
    labels = frozenset({"topology": "quickstart", "kernel": kernel, **extra}.items())
    return samples[(name, labels)]


def test_scrape_matches_the_status_document(status: dict[str, Any]) -> None:
    with serve_metrics(lambda: status, 0) as server:
        assert server.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        content_type, samples = scrape(server.url)
    assert content_type.startswith("text/plain")
    for k in status["kernels"]:
        kid = k["id"]
        for metric, key in [
            ("ringctl_kernel_messages_in_total", "messages_in"),
            ("ringctl_kernel_messages_out_total", "messages_out"),
            ("ringctl_kernel_errors_total", "errors"),
            ("ringctl_kernel_drops_total", "drops"),
            ("ringctl_kernel_restarts_total", "restarts"),
            ("ringctl_kernel_inbox_depth", "inbox_depth"),
            ("ringctl_kernel_inbox_capacity", "inbox_capacity"),
            ("ringctl_kernel_messages_in_per_second", "rate_in"),
        ]:
            assert kernel_sample(samples, metric, kid) == k[key], (metric, kid)
        if k["latency_p99_us"] is not None:
            p99 = kernel_sample(samples, "ringctl_kernel_latency_p99_seconds", kid)
            assert p99 == pytest.approx(k["latency_p99_us"] / 1e6)
        else:  # unknown is absent, never a misleading zero
            absent = frozenset({"topology": "quickstart", "kernel": kid}.items())
            assert ("ringctl_kernel_latency_p99_seconds", absent) not in samples
        for state in ["CREATED", "LAUNCHED", "ACTIVE", "DEACTIVATED", "TERMINATING", "TERMINATED"]:
            value = kernel_sample(samples, "ringctl_kernel_state", kid, state=state)
            assert value == (1.0 if state == k["state"] else 0.0)
    assert kernel_sample(samples, "ringctl_kernel_status", "square", status="stalled") == 1.0
    assert kernel_sample(samples, "ringctl_kernel_status", "square", status="busy") == 0.0
    assert kernel_sample(samples, "ringctl_kernel_status", "audit", status="failed") == 1.0
    assert kernel_sample(samples, "ringctl_kernel_metric", "square", metric="sum") == 123
    for q in status["queues"]:
        labels = {"topology": "quickstart", "from": q["from"], "to": q["to"]}
        for metric, key in [
            ("ringctl_queue_depth", "depth"),
            ("ringctl_queue_capacity", "capacity"),
            ("ringctl_queue_drops_total", "drops"),
            ("ringctl_queue_messages_total", "messages"),
            ("ringctl_queue_blocked_seconds_total", "blocked_s"),
        ]:
            assert samples[(metric, frozenset(labels.items()))] == q[key], (metric, q["to"])
    topo = frozenset({"topology": "quickstart", "state": "running"}.items())
    assert samples[("ringctl_topology_state", topo)] == 1.0
    assert samples[("ringctl_status_available", frozenset())] == 1.0


def test_each_scrape_reads_the_latest_document(status: dict[str, Any]) -> None:
    current = [status]
    with MetricsServer(lambda: current[0], port=0) as server:
        _, before = scrape(server.url)
        current[0] = {**status, "kernels": [{**status["kernels"][1], "messages_in": 99_999}]}
        _, after = scrape(server.url)
    assert kernel_sample(before, "ringctl_kernel_messages_in_total", "square") == 51_200
    assert kernel_sample(after, "ringctl_kernel_messages_in_total", "square") == 99_999
    # a kernel gone from the document is gone from the scrape
    assert not any(("kernel", "sink") in labels for (_name, labels) in after)


def test_without_a_document_the_scrape_says_so() -> None:
    def broken() -> dict[str, Any]:
        raise ConnectionRefusedError

    for get_status in (lambda: None, broken):
        with serve_metrics(get_status, 0) as server:
            _, samples = scrape(server.url)
        assert samples == {("ringctl_status_available", frozenset()): 0.0}


def test_the_endpoint_is_prometheus_clients_own(status: dict[str, Any]) -> None:
    with (
        serve_metrics(lambda: status, 0) as server,
        urllib.request.urlopen(server.url, timeout=5) as response,
    ):
        assert response.status == 200
        # prometheus_client's text format, negotiated by its own server.
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        assert b"ringctl_kernel_messages_in_total" in response.read()


def test_a_taken_port_is_a_clear_error(status: dict[str, Any]) -> None:
    with (
        serve_metrics(lambda: status, 0) as server,
        pytest.raises(UserInputError, match=r"cannot serve metrics on 127\.0\.0\.1") as info,
    ):
        serve_metrics(lambda: status, server.port)
    assert info.value.hint is not None and "--metrics-port" in info.value.hint


def test_stop_is_idempotent_and_frees_the_port(status: dict[str, Any]) -> None:
    server = serve_metrics(lambda: status, 0)
    port = server.port
    server.stop()
    server.stop()
    with serve_metrics(lambda: status, port):  # bindable again
        pass


def test_duplicate_ids_do_not_break_the_exposition(status: dict[str, Any]) -> None:
    status["kernels"].append(dict(status["kernels"][0]))
    text = metrics_text(status)
    assert text.count('ringctl_kernel_messages_out_total{kernel="source"') == 1


def test_importing_the_dashboard_does_not_import_prometheus_client() -> None:
    code = "import sys, ringctl.dashboard; print('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
