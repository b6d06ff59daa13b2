"""The Add External Registry form: every bad input is refused with a message, input is kept."""

import pytest

from registries.forms import RegistryForm
from registries.models import ExternalRegistry, Provider
from tests.conftest import login
from tests.registries.product_helpers import make_registry

pytestmark = pytest.mark.django_db

ECR = "123456789012.dkr.ecr.us-east-2.amazonaws.com"


def form(team, instance=None, **data):
    base = {"provider": "other", "endpoint": "registry.example.com", "username": "u", "password": "p"}
    return RegistryForm({**base, **data}, team=team, apps=team.apps.all(), instance=instance)


@pytest.mark.parametrize("typed, canonical", [
    ("registry.example.com", "registry.example.com"),
    ("https://Registry.Example.com/", "registry.example.com"),
    ("http://registry.example.com:5000", "registry.example.com:5000"),
    ("  registry.example.com  ", "registry.example.com"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
])
def test_it_normalises_the_endpoint(team, typed, canonical):
    f = form(team, endpoint=typed, name="named" if ":" in canonical else "")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["endpoint"] == canonical


@pytest.mark.parametrize("typed, message", [
    ("registry.example.com/v2/", "Remove the path"),
    ("user:pw@registry.example.com", "credentials"),
    ("registry example.com", "spaces"),
    ("ftp://registry.example.com", "Unsupported scheme"),
    ("-bad-.example.com", "invalid host"),
    ("registry.example.com:99999", "invalid port"),
])
def test_it_rejects_bad_endpoints_with_a_message(team, typed, message):
    f = form(team, endpoint=typed)
    assert not f.is_valid()
    assert message in " ".join(f.errors["endpoint"])


def test_it_explains_the_walkthroughs_13_digit_account(team):
    f = form(team, provider="ecr", endpoint="4999999999999.dkr.ecr.us-east-2.amazonaws.com")
    assert not f.is_valid()
    assert "exactly 12 digits" in f.errors["endpoint"][0]


def test_it_rejects_a_non_ecr_host_for_ecr(team):
    f = form(team, provider="ecr", endpoint="registry.example.com")
    assert not f.is_valid()
    assert "not an Amazon ECR registry host" in f.errors["endpoint"][0]


def test_it_parses_account_and_region_of_ecr(team):
    f = form(team, provider="ecr", endpoint=ECR)
    assert f.is_valid(), f.errors
    registry = ExternalRegistry(team=team)
    f.apply(registry)
    assert (registry.ecr_account, registry.ecr_region) == ("123456789012", "us-east-2")


def test_an_ecr_host_needs_the_ecr_provider(team):
    f = form(team, provider="other", endpoint=ECR)
    assert not f.is_valid()
    assert "choose Amazon ECR" in f.errors["provider"][0]


def test_a_port_needs_a_name(team):
    f = form(team, endpoint="127.0.0.1:5000")
    assert not f.is_valid()
    assert "endpoint has a port" in f.errors["name"][0]
    assert form(team, endpoint="127.0.0.1:5000", name="local").is_valid()


@pytest.mark.parametrize("name", ["Bad Name", "-dash", "UPPER", "a" * 64])
def test_it_rejects_bad_names(team, name):
    assert "name" in form(team, name=name).errors


def test_one_registry_per_endpoint_per_team(team, other_team):
    make_registry(team, endpoint="registry.example.com")
    f = form(team, endpoint="https://registry.example.com/")
    assert not f.is_valid()
    assert "registry.example.com is already linked" in f.errors["endpoint"][0]
    assert form(other_team).is_valid()


def test_names_are_unique_per_team(team):
    make_registry(team, endpoint="a.example.com", name="main")
    assert "name" in form(team, endpoint="b.example.com", name="main").errors


def test_credentials_are_required(team):
    f = form(team, username="", password="")
    assert not f.is_valid()
    assert "username" in f.errors and "password" in f.errors
    f = form(team, provider="ecr", endpoint=ECR, username="", password="")
    assert "Enter the AWS Access Key ID." in f.errors["username"]
    assert "Enter the AWS Secret Access Key." in f.errors["password"]


def test_ecr_may_use_the_portals_own_credentials_only_when_allowed(team, settings):
    settings.PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS = False
    assert not form(team, provider="ecr", endpoint=ECR, username="", password="").is_valid()
    settings.PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS = True
    assert form(team, provider="ecr", endpoint=ECR, username="", password="").is_valid()


def test_ecr_is_https_only(team):
    assert "insecure" in form(team, provider="ecr", endpoint=ECR, insecure="on").errors


@pytest.mark.parametrize("provider, endpoint, username", [
    ("dockerhub", "docker.io", "u"),
    ("ghcr", "ghcr.io", "u"),
    ("quay", "quay.io", "u"),
])
def test_presets_fill_a_blank_endpoint(team, provider, endpoint, username):
    f = form(team, provider=provider, endpoint="")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["endpoint"] == endpoint


def test_gar_presets_the_json_key_username(team):
    f = form(team, provider="gar", endpoint="us-docker.pkg.dev", username="")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["username"] == "_json_key"
    assert "gar" in f.fields["provider"].widget.attrs["data-presets"]


def test_the_help_texts_follow_the_provider(team):
    f = form(team, provider="ecr", endpoint="")
    assert f.fields["username"].label == "Username"
    assert "AWS Access Key ID" in f.fields["username"].help_text
    assert "AWS Secret Access Key" in f.fields["password"].help_text


def test_bad_test_images_are_refused(team):
    assert "test_image" in form(team, test_image="Not An Image").errors
    assert "test_image" in form(team, test_image="registry.example.com/repo:1").errors
    assert form(team, test_image="demo-apps/nginx:latest").is_valid()


def test_on_edit_a_blank_password_keeps_the_stored_one(team):
    registry = make_registry(team, secret="stored-secret")
    f = form(team, instance=registry, password="")
    assert f.is_valid(), f.errors
    changed = f.apply(registry)
    assert "password" not in changed
    assert registry.secret == "stored-secret"


def test_on_edit_a_new_endpoint_needs_the_password_again(team):
    registry = make_registry(team, secret="stored-secret")
    f = form(team, instance=registry, endpoint="other.example.com", password="")
    assert not f.is_valid()
    assert "type the password again" in f.errors["password"][0]
    f = form(team, instance=registry, endpoint="other.example.com", password="new")
    assert f.is_valid()
    revision = registry.revision
    f.apply(registry)
    assert registry.secret == "new" and registry.revision == revision + 1


def test_a_rejected_form_keeps_what_was_typed_but_never_the_password(client, alice):
    login(client, alice)
    response = client.post("/registries/add/", {
        "provider": "ecr", "endpoint": "4999999999999.dkr.ecr.us-east-2.amazonaws.com",
        "username": "AKIATYPEDKEY", "password": "typed-secret-value", "name": "my-ecr",
        "test_image": "demo-apps/nginx:latest",
    })
    page = response.content.decode()
    assert response.status_code == 400
    assert "exactly 12 digits" in page
    for typed in ("4999999999999.dkr.ecr.us-east-2.amazonaws.com", "AKIATYPEDKEY", "my-ecr",
                  "demo-apps/nginx:latest"):
        assert f'value="{typed}"' in page
    assert "typed-secret-value" not in page
    assert ExternalRegistry.objects.count() == 0


def test_provider_choices_are_the_six_of_the_issue():
    assert [label for _, label in Provider.choices] == [
        "Amazon ECR", "Docker Hub", "GitHub Container Registry", "Google Artifact Registry", "Quay",
        "Other OCI registry",
    ]


@pytest.mark.parametrize("typed, canonical", [
    ("10.0.0.1", "10.0.0.1"),
    ("[2001:db8::1]:5000", "[2001:db8::1]:5000"),
    ("registry.example.com:443", "registry.example.com:443"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
])
def test_it_accepts_hosts_addresses_and_ports_the_http_client_can_use(team, typed, canonical):
    f = form(team, endpoint=typed, name="named")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["endpoint"] == canonical


@pytest.mark.parametrize("typed, message", [
    ("0177.0.0.1:5302", "invalid IPv4 address"),
    ("256.1.1.1", "invalid IPv4 address"),
    ("999.999.999.999", "invalid IPv4 address"),
    ("1.2.3", "invalid IPv4 address"),
    ("0x7f.1", "invalid IPv4 address"),
    ("a" * 64 + ".example.com", "at most 63 characters"),
    ("registry.example.com:0", "invalid port"),
    ("registry.example.com:65536", "invalid port"),
    ("xn--zz.example.com", "IDNA"),
    ("a..example.com", "invalid host"),
    ("registry.example.com.", "invalid host"),
    ("u@registry.example.com", "credentials"),
    ("registry.example.com/v2", "Remove the path"),
    ("registry .example.com", "spaces"),
])
def test_a_refused_endpoint_says_what_to_fix_and_is_kept(client, alice, typed, message):
    login(client, alice)
    response = client.post("/registries/add/", {
        "provider": "other", "endpoint": typed, "username": "u", "password": "typed-secret",
        "name": "named",
    })
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page
    assert 'value="' + typed.replace("&", "&amp;") + '"' in page
    assert "typed-secret" not in page
    assert ExternalRegistry.objects.count() == 0


def test_ticking_insecure_needs_the_password_again(client, alice, bob, team):
    """A Developer must not send an Admin's stored secret over plain HTTP without knowing it."""
    registry = make_registry(team, endpoint="registry.example.com", secret="admins-secret")
    login(client, bob)
    data = {"provider": "other", "endpoint": "registry.example.com", "username": "user",
            "password": "", "insecure": "on"}
    response = client.post(f"/registries/{registry.pk}/edit/", data)
    assert response.status_code == 400
    assert "plain HTTP" in response.content.decode()
    assert "type the password again" in response.content.decode()
    registry.refresh_from_db()
    assert registry.insecure is False and registry.secret == "admins-secret"

    response = client.post(f"/registries/{registry.pk}/edit/", {**data, "password": "bobs-own"})
    assert response.status_code == 302
    registry.refresh_from_db()
    assert registry.insecure is True and registry.secret == "bobs-own"


def test_unticking_insecure_also_needs_the_password_again(team):
    registry = make_registry(team, secret="stored-secret", insecure=True)
    f = form(team, instance=registry, password="", insecure="")
    assert not f.is_valid()
    assert "type the password again" in f.errors["password"][0]


def test_an_unchanged_scheme_keeps_the_stored_password(team):
    registry = make_registry(team, secret="stored-secret", insecure=True)
    f = form(team, instance=registry, password="", insecure="on")
    assert f.is_valid(), f.errors


@pytest.mark.parametrize("field, limit", [("password", 4096), ("username", 255)])
def test_credentials_have_a_maximum_length(team, field, limit):
    assert form(team, **{field: "x" * limit}).is_valid()
    f = form(team, **{field: "x" * (limit + 1)})
    assert not f.is_valid()
    assert f"at most {limit} characters" in f.errors[field][0]


def test_a_gcp_service_account_key_fits_the_password(team):
    # A service account's JSON key, pasted whole, is about 2.3 KB.
    key = '{"type": "service_account", "private_key": "' + "k" * 1700 + '", ' + '"x": "y", ' * 40 + "}"
    f = form(team, provider="gar", endpoint="us-docker.pkg.dev", password=key)
    assert f.is_valid(), f.errors
