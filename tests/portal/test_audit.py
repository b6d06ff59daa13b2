from datetime import UTC, datetime

import pytest

from portal.audit import audit_log
from portal.models import AuditEvent
from tests.conftest import login


@pytest.fixture
def events(team, other_team, alice, bob, customer):
    made = [
        audit_log(team=team, actor=alice, action="create", obj=customer),
        audit_log(team=team, actor=bob, action="promote", object_type="release", object_repr="release 2"),
        audit_log(team=team, actor=alice, action="archive", obj=customer),
        audit_log(team=other_team, action="create", object_type="app", object_repr="Evil app"),
    ]
    AuditEvent.objects.filter(pk=made[0].pk).update(created_at=datetime(2026, 1, 10, 12, tzinfo=UTC))
    return made


def rows(response):
    return response.context["page"].object_list


def test_admins_read_the_teams_audit_log(client, alice, events):
    response = login(client, alice).get("/audit/")
    assert response.status_code == 200
    assert [e.action for e in rows(response)] == ["login", "archive", "promote", "create"]
    assert b"Evil app" not in response.content


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"action": "promote"}, ["promote"]),
        ({"actor": "bob"}, ["promote"]),
        ({"object_type": "customer"}, ["archive", "create"]),
        ({"since": "2026-01-01", "until": "2026-01-10"}, ["create"]),
        ({"until": "2026-01-09"}, []),
    ],
)
def test_it_filters(client, alice, events, params, expected):
    response = login(client, alice).get("/audit/", params)
    assert [e.action for e in rows(response)] == expected


def test_bad_filters_say_what_to_fix(client, alice, events):
    response = login(client, alice).get("/audit/", {"since": "2026-02-01", "until": "2026-01-01"})
    assert b"The end date is before the start date." in response.content
    response = login(client, alice).get("/audit/", {"action": "nonsense"})
    assert b"Select a valid choice" in response.content


def test_htmx_filters_answer_with_the_table_only(client, alice, events):
    response = login(client, alice).get("/audit/", {"action": "promote"},
                                         HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-results")
    assert b"<html" not in response.content and b"release 2" in response.content


@pytest.mark.postgres
@pytest.mark.parametrize("count", [3, 150])
def test_it_paginates_with_constant_queries(client, alice, team, count, django_assert_max_num_queries):
    AuditEvent.objects.bulk_create(AuditEvent(team=team, action="update", actor_name="alice") for _ in range(count))
    login(client, alice)
    with django_assert_max_num_queries(9):
        response = client.get("/audit/", {"action": "update"})
    assert len(rows(response)) == min(count, 50)


def test_logins_are_audited_with_the_source_address(client, alice):
    client.post("/accounts/login/", {"username": "alice", "password": "correct horse battery staple"},
                REMOTE_ADDR="10.1.2.3")
    event = AuditEvent.objects.get(action="login")
    assert event.actor == alice and event.source_address == "10.1.2.3"
