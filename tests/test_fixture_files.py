"""The real fixtures in tests/fixtures are all there, byte for byte as SHA256SUMS lists them.

Several tests glob the fixture folder (every .bin, every localnet-*.ar): a file that a
`.gitignore` rule or a partial checkout leaves out would shrink what they check without failing
them. This test names any such file.
"""

from __future__ import annotations

import hashlib

from conftest import FIXTURES


def _listed() -> dict[str, str]:
    out = {}
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        out[name] = digest
    return out


def test_every_listed_fixture_is_present_and_unchanged():
    listed = _listed()
    missing = [n for n in listed if not (FIXTURES / n).is_file()]
    assert not missing, f"fixture files missing from this checkout (a .gitignore rule?): {missing}"
    changed = [n for n, d in listed.items() if hashlib.sha256((FIXTURES / n).read_bytes()).hexdigest() != d]
    assert not changed, f"fixture files differ from SHA256SUMS (they are copies, never edited): {changed}"


def test_every_fixture_file_is_listed():
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    unlisted = sorted(on_disk - set(_listed()) - {"SHA256SUMS", "SOURCES.md", "chain/SOURCES.md"})
    assert not unlisted, f"add these to tests/fixtures/SHA256SUMS and SOURCES.md: {unlisted}"
