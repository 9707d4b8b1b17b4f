"""ldj.paths: every derived file's path from validated ids, inside its folder."""

from __future__ import annotations

import os

import pytest

from ldj import paths
from ldj.paths import UnsafePath

VERSION = "0123456789abcdef"
BAD_VERSIONS = ["../../etc", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef\n", "", None, 7,
                "0123456789abcdef/..", "..%2F"]


def test_paths_lie_in_their_folders(tmp_path):
    assert paths.snapshot_folder(tmp_path, VERSION) == tmp_path.resolve() / "snapshots" / VERSION
    assert paths.cube_folder(tmp_path, VERSION) == tmp_path.resolve() / "indicators" / VERSION
    assert paths.snapshot_file(tmp_path, VERSION, "cbcl_6_18") == \
        tmp_path.resolve() / "snapshots" / VERSION / "cbcl_6_18.parquet"
    assert paths.extract_folder(tmp_path, 3, VERSION) == tmp_path.resolve() / "extracts" / "project-3" / VERSION
    assert paths.factsheet_cache_file(tmp_path, VERSION, "abc123") == \
        tmp_path.resolve() / "factsheet" / "cache" / f"{VERSION}-abc123.json"
    assert paths.factsheet_pdf(tmp_path, VERSION, "en") == tmp_path.resolve() / "factsheet" / f"{VERSION}-en" / "factsheet.pdf"
    assert paths.user_file(tmp_path, "olga", "catalog.yaml") == tmp_path.resolve() / "users" / "olga" / "catalog.yaml"


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_version_that_is_not_one_is_refused_everywhere(tmp_path, version):
    for make in (lambda: paths.snapshot_folder(tmp_path, version), lambda: paths.cube_folder(tmp_path, version),
                 lambda: paths.snapshot_file(tmp_path, version, "cbcl_6_18"),
                 lambda: paths.extract_folder(tmp_path, 1, version),
                 lambda: paths.factsheet_cache_file(tmp_path, version, "ab"),
                 lambda: paths.factsheet_pdf(tmp_path, version, "nl")):
        with pytest.raises(UnsafePath):
            make()


@pytest.mark.parametrize("make", [
    lambda root: paths.snapshot_file(root, VERSION, "../key"),
    lambda root: paths.snapshot_file(root, VERSION, "Cbcl"),
    lambda root: paths.extract_folder(root, 0, VERSION),
    lambda root: paths.extract_folder(root, True, VERSION),
    lambda root: paths.extract_folder(root, "1", VERSION),
    lambda root: paths.project_folder(root, -2),
    lambda root: paths.factsheet_cache_file(root, VERSION, "../x"),
    lambda root: paths.factsheet_pdf(root, VERSION, "../en"),
    lambda root: paths.user_file(root, "..", "catalog.yaml"),
    lambda root: paths.user_file(root, "a/b", "catalog.yaml"),
    lambda root: paths.user_file(root, "olga\x00", "catalog.yaml"),
    lambda root: paths.within(root),
])
def test_parts_that_would_leave_their_folder_are_refused(tmp_path, make):
    with pytest.raises(UnsafePath):
        make(tmp_path)


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "data" / "users").mkdir(parents=True)
    os.symlink(outside, tmp_path / "data" / "users" / "olga")
    with pytest.raises(UnsafePath, match="buiten"):
        paths.user_file(tmp_path / "data", "olga", "catalog.yaml")
