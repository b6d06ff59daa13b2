def test_the_app_list_needs_a_login(client, db):
    response = client.get("/apps/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_alice_sees_her_app(client, alice, sample_app):
    client.force_login(alice)
    response = client.get("/apps/")
    assert response.status_code == 200
