"""The request log line and the JSON format (PORTAL_LOG_FORMAT=json)."""

import json
import logging
import subprocess
import sys

from django.conf import settings as django_settings
from django.urls import reverse

from portal.observability.logs import JsonFormatter
from tests.conftest import login
from tests.support.processes import ROOT


def test_one_line_per_request_with_view_status_duration_and_team(client, alice, team, caplog):
    caplog.set_level(logging.INFO, logger="portal.requests")
    login(client, alice)
    assert client.get(reverse("portal-team")).status_code == 200
    assert client.get("/no/such/page/").status_code == 404
    first, second = [r for r in caplog.records if r.name == "portal.requests"]
    assert (first.method, first.view, first.status, first.team) == ("GET", "portal-team", 200, team.pk)
    assert first.duration_ms >= 0
    assert first.getMessage().startswith("request GET portal-team 200 ")
    assert f"team={team.pk}" in first.getMessage()
    assert (second.view, second.status, second.team) == ("unmatched", 404, None)
    # As JSON: one object on one line, with the fields a log collector filters on.
    line = JsonFormatter().format(first)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["logger"] == "portal.requests" and entry["level"] == "INFO"
    assert {k: entry[k] for k in ("event", "view", "status", "team")} == {
        "event": "request", "view": "portal-team", "status": 200, "team": team.pk}


def test_a_traceback_stays_on_its_json_line():
    logger = logging.getLogger("portal.test")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logger.makeRecord("portal.test", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                   sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed x" and "ValueError: boom" in entry["exception"]


def test_plain_is_the_default_format():
    assert django_settings.PORTAL_LOG_FORMAT == "plain"
    assert django_settings.LOGGING["handlers"]["console"]["formatter"] == "plain"


def _settings_in_child(value: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); import logging; "
         "logging.getLogger('portal.x').warning('hello %s', 'there', extra={'view': 'v'})"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "portal.settings",
             "PORTAL_VAR_DIR": str(ROOT / "var"), "PORTAL_LOG_FORMAT": value})


def test_json_format_writes_json_lines_and_a_wrong_value_fails_loudly():
    result = _settings_in_child("json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert (entry["message"], entry["view"], entry["level"]) == ("hello there", "v", "WARNING")
    wrong = _settings_in_child("xml")
    assert wrong.returncode != 0
    assert "PORTAL_LOG_FORMAT must be plain or json" in wrong.stderr
