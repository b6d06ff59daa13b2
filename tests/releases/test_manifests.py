"""releases.manifests: tables of valid and invalid files, file names and image extraction."""

import pytest

from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE
from releases.manifests import (
    MAX_PROBLEMS,
    ImageUse,
    Problem,
    file_name_error,
    image_spans,
    images_in,
    problem_count,
    unique_images,
    validate_file,
)
from tests.yaml_bombs import alias_bomb, block_nesting, crd_bundle, deep_nesting, merge_bomb

ECR_IMAGE = "4999999999999.dkr.ecr.us-east-2.amazonaws.com/demo-apps/nginx"

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  initContainers:
    - name: init
      image: busybox:1.36
  containers:
    - name: app
      image: registry.example.com/app:1.0
"""

CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: backup
              image: alpine@sha256:0000000000000000000000000000000000000000000000000000000000000000
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  image: not-a-container-image
"""


@pytest.mark.parametrize(
    "text",
    [
        NGINX_DEPLOYMENT,
        NGINX_SERVICE,
        POD,
        CRONJOB,
        CONFIGMAP,
        NGINX_DEPLOYMENT + "---\n" + NGINX_SERVICE,
        "---\n" + NGINX_SERVICE + "---\n",  # empty documents are ignored
        NGINX_DEPLOYMENT.replace("image: nginx", f"image: {ECR_IMAGE}"),
        "apiVersion: kots.io/v1beta1\nkind: Config\nmetadata:\n  name: config\nspec: {}\n",
    ],
    ids=["deployment", "service", "pod", "cronjob", "configmap", "multi-document", "empty-docs", "ecr", "kots"],
)
def test_valid_files_have_no_problems(text):
    assert validate_file("file.yaml", text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: b\n  c: d\n", [Problem(2, 4, "Mapping values are not allowed here")]),
        ("", [Problem(None, None, "The file is empty: add at least one Kubernetes document.")]),
        ("kind: Service\nmetadata:\n  name: x\n", [Problem(1, 1, "The document needs “apiVersion”.")]),
        ("apiVersion: v1\nkind: ''\nmetadata:\n  name: x\n", [Problem(2, 7, "The document needs “kind”.")]),
        ("apiVersion: v1\nkind: Service\n", [Problem(1, 1, "The document needs “metadata” with a “name”.")]),
        ("apiVersion: v1\nkind: Service\nmetadata:\n  labels: {}\n",
         [Problem(4, 3, "The document needs “metadata.name”.")]),
        ("- a\n- b\n", [Problem(1, 1, "The document must be a mapping (key: value), such as a Kubernetes object.")]),
        (NGINX_SERVICE + "---\nkind: Service\nmetadata:\n  name: x\n",
         [Problem(14, 1, "Document 2 needs “apiVersion”.")]),
        (NGINX_DEPLOYMENT.replace("image: nginx", "image:"), [Problem(18, 17, "Container “nginx” needs an “image”.")]),
        (NGINX_DEPLOYMENT.replace("          image: nginx\n", ""),
         [Problem(17, 11, "Container “nginx” needs an “image”.")]),
        (POD.replace("      image: busybox:1.36\n", ""), [Problem(7, 7, "Container “init” needs an “image”.")]),
        (CRONJOB.replace("              image: alpine", "              imag: alpine"),
         [Problem(12, 15, "Container “backup” needs an “image”.")]),
        ("apiVersion: v1\nkind: Service\nkind: Pod\nmetadata:\n  name: x\n",
         [Problem(3, 1, "Duplicate key “kind”: remove one of them.")]),
    ],
    ids=["syntax", "empty", "no-apiversion", "empty-kind", "no-metadata", "no-name", "list", "second-document",
         "null-image", "missing-image", "init-container", "cronjob", "duplicate-key"],
)
def test_invalid_files_say_what_to_fix_and_where(text, expected):
    assert validate_file("file.yaml", text) == expected


def test_the_walkthroughs_tab_indented_line_is_a_syntax_error_with_a_hint():
    text = NGINX_DEPLOYMENT.replace("          image: nginx", f"\t\t\t  image: {ECR_IMAGE}")
    [problem] = validate_file("deployment.yaml", text)
    assert problem.line == 18 and problem.column == 1
    assert "tabs" in problem.message


def test_a_problem_reads_with_its_position():
    assert str(Problem(3, 7, "Bad")) == "Line 3, column 7: Bad"
    assert str(Problem(3, None, "Bad")) == "Line 3: Bad"
    assert str(Problem(None, None, "Bad")) == "Bad"


def test_it_lists_every_container_image_in_order():
    files = [
        ("deployment.yaml", NGINX_DEPLOYMENT),
        ("service.yaml", NGINX_SERVICE),
        ("pod.yaml", POD),
        ("all.yml", CONFIGMAP + "---\n" + CRONJOB),
    ]
    assert images_in(files) == [
        ImageUse("deployment.yaml", "Deployment", "nginx", "nginx", "nginx"),
        ImageUse("pod.yaml", "Pod", "web", "init", "busybox:1.36"),
        ImageUse("pod.yaml", "Pod", "web", "app", "registry.example.com/app:1.0"),
        ImageUse("all.yml", "CronJob", "backup", "backup", "alpine@sha256:" + "0" * 64),
    ]


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"])
def test_it_finds_images_in_every_workload_kind_with_a_pod_template(kind):
    text = NGINX_DEPLOYMENT.replace("kind: Deployment", f"kind: {kind}")
    assert [u.image for u in images_in([("w.yaml", text)])] == ["nginx"]


def test_it_skips_broken_files_and_unknown_kinds():
    broken = "a: b\n  c: d\n"
    custom = NGINX_DEPLOYMENT.replace("kind: Deployment", "kind: Rollout")
    assert images_in([("a.yaml", broken), ("b.yaml", custom)]) == []


def test_it_reads_objects_with_name_and_content():
    class File:
        name = "deployment.yaml"
        content = NGINX_DEPLOYMENT

    assert images_in([File()])[0].image == "nginx"


def test_unique_images_keeps_first_use_order():
    uses = images_in([("a.yaml", POD), ("b.yaml", POD)])
    assert unique_images(uses) == ["busybox:1.36", "registry.example.com/app:1.0"]


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yml", "k8s/db.yaml", "a_b-c.1.yaml", "A/B/C.yaml"])
def test_it_accepts_safe_relative_yaml_names(name):
    assert file_name_error(name) is None


@pytest.mark.parametrize(
    "name",
    ["", "deployment", "deployment.json", "/etc/passwd.yaml", "../x.yaml", "a/../x.yaml", "a//b.yaml",
     ".hidden.yaml", "with space.yaml", "a\\b.yaml", "x" * 300 + ".yaml", "ümlaut.yaml"],
)
def test_it_rejects_unsafe_or_non_yaml_names(name):
    assert file_name_error(name)


# --- hostile and huge files ---------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    (merge_bomb(), "expands to more than 100,000 merged nodes (aliases and merge keys counted as copies)"),
    (alias_bomb(), "expands to more than 1,000,000 nodes (aliases and merge keys counted as copies)"),
    (deep_nesting(2000), "nested more than 100 levels deep"),
    (block_nesting(101), "nested more than 100 levels deep"),
], ids=["merge-bomb", "alias-bomb", "flow-2000", "block-101"])
def test_a_bomb_or_deep_nesting_is_one_problem_saying_so(text, message):
    [problem] = validate_file("bomb.yaml", text)
    assert message in problem.message and problem.line is not None
    assert images_in([("bomb.yaml", text)]) == []
    assert image_spans(text) == []


def test_a_value_yaml_cannot_read_is_a_problem_at_its_line():
    text = NGINX_DEPLOYMENT.replace("  name: nginx\n", "  name: nginx\n  annotations: {at: 2024-13-01}\n", 1)
    [problem] = validate_file("deployment.yaml", text)
    assert (problem.line, problem.column) == (5, 21)
    assert "2024-13-01" in problem.message and "month must be in 1..12" in problem.message


def test_problems_are_capped_with_a_count_of_the_rest():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: many}\ndata:\n" + "  k: v\n" * 121
    problems = validate_file("configmap.yaml", text)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == Problem(6, 3, "Duplicate key “k”: remove one of them.")
    assert str(problems[-1]) == "…and 70 more problems."
    assert problem_count(problems) == 120


def test_a_5mb_bundle_of_custom_resource_definitions_is_fine():
    text = crd_bundle(5_000_000)
    assert len(text) >= 5_000_000
    assert validate_file("crds.yaml", text) == []


def test_a_key_overriding_a_merged_one_is_not_a_duplicate():
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
        "defaults: &defaults {replicas: 1, tier: web}\n"
        "data:\n  <<: *defaults\n  replicas: 3\n  zone: a\n  zone: b\n"
    )
    problems = validate_file("settings.yaml", text)
    # The override of a merged key is what merging is for; a key written twice is still found.
    assert [str(p) for p in problems] == ["Line 9, column 3: Duplicate key “zone”: remove one of them."]
