"""Release directories the CLI tests upload, as a pipeline keeps them in its repository."""

from pathlib import Path

from releases.demo import NGINX_SERVICE
from tests.support.manifests import deployment_yaml


def write_release(directory: Path, image: str, *, files: int = 2) -> Path:
    """A deployment of ``image``, its service, and ``files - 2`` more ConfigMaps."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "deployment.yaml").write_text(deployment_yaml("nginx", image))
    (directory / "service.yaml").write_text(NGINX_SERVICE)
    for n in range(files - 2):
        (directory / "config" / f"settings-{n}.yaml").parent.mkdir(exist_ok=True)
        (directory / "config" / f"settings-{n}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{n}\n"
            f"data:\n  level: \"{n}\"\n")
    return directory
