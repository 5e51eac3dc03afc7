"""Alert deliveries: a webhook POST to a real local receiver, a real command; retries, then a log line."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from helpers import wait_until
from serving import AlertReceiver

from dashboard.alert_delivery import Deliveries
from dashboard.alert_rules import Command, Webhook

ALERT = {"kind": "alert", "rule": "failures", "run_id": "r-1", "text": "Extract FAILED: ünïcode"}


@pytest.fixture
def deliveries():
    sending = Deliveries()
    sending.start()
    yield sending
    sending.stop()


def test_a_webhook_gets_the_alert_as_json_with_its_headers(deliveries):
    receiver = AlertReceiver()
    try:
        deliveries.send(Webhook(receiver.url, (("Authorization", "Bearer s3cret"),)), ALERT)
        wait_until(lambda: receiver.received, timeout=10, message="the webhook to be called")
        assert receiver.bodies() == [ALERT]
        assert receiver.headers[0]["Authorization"] == "Bearer s3cret"
        assert receiver.headers[0]["Content-Type"] == "application/json"
    finally:
        receiver.close()


def test_a_failing_webhook_is_retried_with_backoff_until_it_takes_the_alert(deliveries):
    receiver = AlertReceiver(answers=(500, 503))
    try:
        deliveries.send(Webhook(receiver.url, retries=3, backoff_seconds=0.05), ALERT)
        wait_until(lambda: deliveries.done, timeout=10, message="the delivery to end")
        assert receiver.bodies() == [ALERT] and deliveries.done[0][2] is None
    finally:
        receiver.close()


def test_a_webhook_that_keeps_failing_is_logged_after_its_retries_and_the_next_alert_still_goes(deliveries, caplog):
    receiver = AlertReceiver(answers=(500, 500, 500))
    try:
        with caplog.at_level(logging.ERROR, logger="dashboard.alert_delivery"):
            deliveries.send(Webhook(receiver.url, retries=2, backoff_seconds=0.01), ALERT)
            deliveries.send(Webhook(receiver.url, retries=0), {**ALERT, "run_id": "r-2"})
            wait_until(lambda: len(deliveries.done) == 2, timeout=10, message="both deliveries to end")
        assert deliveries.done[0][2] == "HTTP 500 Internal Server Error"
        assert "not delivered to webhook 127.0.0.1" in caplog.text and "after 3 attempt(s)" in caplog.text
        assert [body["run_id"] for body in receiver.bodies()] == ["r-2"]
    finally:
        receiver.close()


def test_a_webhook_nobody_listens_on_is_an_error_not_a_crash(deliveries):
    receiver = AlertReceiver()
    url = receiver.url
    receiver.close()  # its port is free now: the connection is refused
    deliveries.send(Webhook(url, retries=1, backoff_seconds=0.01), ALERT)
    wait_until(lambda: deliveries.done, timeout=10, message="the delivery to end")
    assert "refused" in deliveries.done[0][2].lower()


def test_a_command_gets_the_alert_as_json_on_stdin_without_a_shell(deliveries, tmp_path):
    out = tmp_path / "alert.json"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"
    # an argument a shell would expand is passed as it is
    deliveries.send(Command((sys.executable, "-c", script, str(out), "$HOME;*")), ALERT)
    wait_until(lambda: deliveries.done, timeout=20, message="the command to run")
    assert deliveries.done[0][2] is None
    assert json.loads(out.read_text(encoding="utf-8")) == ALERT


def test_a_failing_command_is_retried_and_its_stderr_logged(deliveries):
    script = "import sys; sys.stdin.read(); sys.exit('no route to pager')"
    deliveries.send(Command((sys.executable, "-c", script), retries=1, backoff_seconds=0.01), ALERT)
    wait_until(lambda: deliveries.done, timeout=20, message="the command to run")
    assert deliveries.done[0][2] == "exit status 1: no route to pager"
