"""Rebuild helpers/streamscope/encodings/ from the npm package that publishes tiktoken's rank files.

tiktoken downloads an encoding's ``.tiktoken`` file on first use; no PyPI package ships
``o200k_base`` or ``p50k_base``. The npm package ``tiktoken`` (the WASM port, MIT) carries them in
``encoders/{name}.json``: the field ``bpe_ranks`` holds lines ``! OFFSET TOK TOK ...`` (base64
tokens ranked OFFSET, OFFSET+1, ...). Expanded into ``TOK RANK`` lines, each with a final newline,
they are the official files byte for byte. This script:

1. downloads the package's tarball from registry.npmjs.org and checks npm's sha512 integrity;
2. takes ``bpe_ranks`` of o200k_base and p50k_base, and checks that each expands to the file whose
   sha256 tiktoken's own constructor expects (``tiktoken_ext/openai_public.py``), and that r50k_base
   (p50k_base's first 50256 ranks) does too;
3. writes each ``bpe_ranks`` string verbatim, gzipped (about 1.4 MB for both; the expanded files
   are 4.4 MB), as ``{name}.ranks.gz``, plus ``SOURCE.json`` saying where they came from.

streamscope.tokens expands and checks them again, against tiktoken's hash, every time it loads one.
Run with the project's environment: ``.venv/bin/python tools/fetch_encodings.py``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "helpers"))
from streamscope import tokens  # noqa: E402

PACKAGE = "tiktoken"
VERSION = "1.0.22"
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
# `npm view tiktoken@1.0.22 dist.integrity`
INTEGRITY = "sha512-PKvy1rVF1RibfF3JlXBSP0Jrcw2uq3yXdgcEXtKTYn3QJ/cBRBHDnrJ5jHky+MENZ6DIPwNUGWpkVx+7joCpNA=="
NAMES = ("o200k_base", "p50k_base")


def download() -> bytes:
    with urllib.request.urlopen(TARBALL, timeout=60) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"{TARBALL}: integrity {digest}, expected {INTEGRITY}")
    return data


def main() -> None:
    tarball = download()
    out = tokens.ENCODINGS_DIR
    out.mkdir(exist_ok=True)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in NAMES:
            member = f"package/encoders/{name}.json"
            ranks = json.load(archive.extractfile(member))["bpe_ranks"]
            # mtime=0: the same input gives the same bytes, so a rerun changes nothing in git.
            (out / f"{name}.ranks.gz").write_bytes(gzip.compress(ranks.encode("ascii"), 9, mtime=0))
            files[name] = {"from": f"{member}, field bpe_ranks", "stored": f"{name}.ranks.gz (gzip)"}
    # Every encoding that the stored files serve must load: streamscope.tokens checks each rebuilt
    # file against the sha256 that tiktoken's own constructor expects.
    for name in tokens.BUNDLED_ENCODINGS:
        encoding = tokens.get_encoding(name, download=False)
        print(f"{name}: {encoding.n_vocab} tokens, matches tiktoken's expected sha256")
    source = {
        "registry": "npm",
        "package": PACKAGE,
        "version": VERSION,
        "license": "MIT",
        "tarball": TARBALL,
        "integrity": INTEGRITY,
        "files": files,
        "derived": {"r50k_base": "the first 50256 ranks of p50k_base (ranks 0-50255)"},
        "regenerate": "python tools/fetch_encodings.py",
    }
    (out / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
