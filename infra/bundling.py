"""Docker-free bundling of Python sources and their dependencies into a Lambda code asset.

There is no Docker daemon on the build machines, so every asset is built on the host: the sources are
copied, and a ``requirements.txt`` among them is installed with ``pip --platform`` for the Lambda
runtime and architecture (binary wheels only, so nothing gets compiled for the host by mistake).

Everything shipped is also compiled to bytecode by an interpreter of the runtime's version, when
the host has one: Lambda's file system is read-only, so sources without bytecode are compiled again
on every cold start (about 0.8-1 s for the API function; see ``make bench``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REQUIREMENTS = "requirements.txt"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}  # by Architecture.name
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", REQUIREMENTS)


def python_code(
    source: Path,
    *,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture,
    into: str = "",
) -> lambda_.Code:
    """The asset: ``source``'s files under ``into``, plus ``source/requirements.txt`` installed there.

    A layer wants ``into="python"`` (dependencies) or ``"python/<package>"`` (a package); a function
    keeps its repository path (``"functions/api"``).
    """
    bundling = LocalPythonBundling(
        source,
        into=into,
        python_version=runtime.name.removeprefix("python"),
        platform=PLATFORMS[architecture.name],
    )
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=bundling.fingerprint(),
        bundling=cdk.BundlingOptions(image=runtime.bundling_image, local=bundling),
    )


@jsii.implements(cdk.ILocalBundling)
class LocalPythonBundling:
    """Builds the asset on the host: CDK calls :meth:`try_bundle` before it would try Docker."""

    def __init__(self, source: Path, *, into: str, python_version: str, platform: str) -> None:
        self.source, self.into = source, into
        self.python_version, self.platform = python_version, platform
        self.compiler = runtime_interpreter(python_version)

    def fingerprint(self) -> str:
        """The asset hash: changes with any source file, the layout, the target (Python, platform), and
        whether bytecode is shipped (a host without the runtime's Python builds a different asset)."""
        bytecode = "bytecode" if self.compiler else "sources"
        digest = hashlib.sha256(f"{self.into}|{self.python_version}|{self.platform}|{bytecode}".encode())
        for path in sorted(self.source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(path.relative_to(self.source).as_posix().encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        target = Path(output_dir, self.into)
        shutil.copytree(self.source, target, ignore=_NOT_SHIPPED, dirs_exist_ok=True)
        requirements = self.source / REQUIREMENTS
        if requirements.is_file():
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-compile",  # bytecode for the host's Python would be dead weight in Lambda
                    "--platform", self.platform, "--implementation", "cp",
                    "--python-version", self.python_version, "--only-binary=:all:",
                    "--requirement", str(requirements), "--target", str(target),
                ],
                check=True,
            )
        if self.compiler:
            # unchecked-hash: valid whatever the zip does to modification times, and never re-read.
            subprocess.run([self.compiler, "-m", "compileall", "-q", "-j", "0",
                            "--invalidation-mode", "unchecked-hash", str(target)], check=True)
        else:
            print(f"warning: no python{self.python_version} on this machine: {self.source.name} ships "
                  "without bytecode, and each cold start compiles it.", file=sys.stderr)
        return True


@functools.cache
def runtime_interpreter(python_version: str) -> str | None:
    """An interpreter of the Lambda runtime's version on this machine (pyenv's, then PATH), if any.

    Each candidate is asked its version: a pyenv shim is on PATH whether or not it can run.
    """
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [str(p) for p in sorted(pyenv.glob(f"versions/{python_version}.*/bin/python{python_version}"))]
    candidates += filter(None, [shutil.which(f"python{python_version}")])
    for candidate in candidates:
        asked = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if asked.returncode == 0 and asked.stdout.strip() == python_version:
            return candidate
    return None
