"""ldj.airlock: a release request made from a workspace's ldj.safe folder, checked again at submission,
visible to its project only, withdrawn by its author; its events append-only, each in the access log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from projects import add_committee, approve

from ldj import airlock, policy, safe, store
from ldj import governance as gov
from ldj.catalogue import load_entries
from ldj.cli import main
from ldj.settings import REPO_ROOT, get_settings
from ldj.workflow import WorkflowError


@pytest.fixture
def project(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("LDJ_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LDJ_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    engine = store.get_engine(settings)
    add_committee(engine)
    gov.add_user(engine, "olga", display_name="Olga", organisation="ORG01", roles=["researcher"])
    gov.add_user(engine, "bram", display_name="Bram", organisation="ORG02", roles=["researcher"])
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    pid = approve(engine, "olga", {"trajectories": ["trajectory", "intervention"]}, catalogue)
    return engine, settings, pid


def outputs(folder, monkeypatch, small_cell: bool = False):
    """An ldj.safe folder with a table (one cell of 3 when `small_cell`) and a custom file, finalised."""
    acro = safe.OutputSession(folder)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"interventie": rng.choice(["MST", "IAG"], 200), "geslacht": rng.choice(["m", "v"], 200)})
    if small_cell:
        frame = pd.concat([frame, pd.DataFrame({"interventie": ["FFT"] * 3, "geslacht": ["m"] * 3})])
    acro.crosstab(frame["interventie"], frame["geslacht"])
    note = folder.parent / "toelichting.txt"
    note.write_text("Samenvatting voor de praktijk.", encoding="utf-8")
    acro.custom_output(str(note), "Tekst zonder cijfers")
    acro.finalise()
    return folder


def test_a_release_request_holds_every_output_checked_again_and_copied(project, monkeypatch, tmp_path):
    engine, settings, pid = project
    folder = outputs(tmp_path / "uit", monkeypatch, small_cell=True)
    release_id = airlock.submit(engine, "olga", pid, folder, title="Uitval per interventie",
                                description="Hoeveel trajecten per interventie en geslacht.", settings=settings)
    release = airlock.get_release(engine, release_id, "olga")
    assert release.status == airlock.SUBMITTED and release.author == "olga" and release.project_id == pid
    by_kind = {f.kind: f for f in release.files if not f.file.endswith(safe.META_SUFFIX)}
    assert by_kind["table"].status == "fail" and any(r["rule"] == "threshold" for r in by_kind["table"].reasons)
    assert by_kind["custom"].status == "review"
    kept = airlock.release_folder(settings, release_id)
    for f in release.files:
        assert (kept / f.file).is_file()
    assert [e.to_state for e in airlock.history(engine, release_id)] == [airlock.SUBMITTED]
    with engine.connect() as conn:
        logged = conn.execute(sa.select(store.access_log.c.action).where(store.access_log.c.user_name == "olga")).all()
    assert ("workflow.event",) in logged


def test_a_file_changed_after_checking_goes_in_as_review(project, monkeypatch, tmp_path):
    engine, settings, pid = project
    folder = outputs(tmp_path / "uit", monkeypatch)
    table = next(p for p in folder.glob("*.csv"))
    table.write_text(table.read_text() + "FFT,1,2\n")
    release_id = airlock.submit(engine, "olga", pid, folder, title="T", description="D", settings=settings)
    changed = [f for f in airlock.get_release(engine, release_id, "olga").files if f.kind == "table"]
    assert changed and all(f.status == "review" for f in changed)
    assert any(r["rule"] == "changed" for r in changed[0].reasons)


def test_only_the_project_submits_and_sees_its_requests(project, monkeypatch, tmp_path):
    engine, settings, pid = project
    folder = outputs(tmp_path / "uit", monkeypatch)
    with pytest.raises(policy.Refused) as refused:
        airlock.submit(engine, "bram", pid, folder, title="T", description="D", settings=settings)
    assert refused.value.action == "release.submit"
    release_id = airlock.submit(engine, "olga", pid, folder, title="T", description="D", settings=settings)
    with pytest.raises(policy.Refused):
        airlock.get_release(engine, release_id, "bram")
    with pytest.raises(policy.Refused):
        airlock.get_release(engine, release_id, None)
    assert airlock.get_release(engine, release_id, "steward").id == release_id


def test_bad_requests_are_refused_with_a_message(project, monkeypatch, tmp_path):
    engine, settings, pid = project
    empty = tmp_path / "leeg"
    empty.mkdir()
    with pytest.raises(airlock.AirlockError, match="manifest.json"):
        airlock.submit(engine, "olga", pid, empty, title="T", description="D", settings=settings)
    folder = outputs(tmp_path / "uit", monkeypatch)
    for title, description in (("", "D"), ("T", " "), ("x" * 201, "D")):
        with pytest.raises(airlock.AirlockError, match="titel"):
            airlock.submit(engine, "olga", pid, folder, title=title, description=description, settings=settings)
    with pytest.raises(gov.NotFound):
        airlock.get_release(engine, 999, "olga")


def test_the_author_withdraws_once_and_the_files_go(project, monkeypatch, tmp_path):
    engine, settings, pid = project
    folder = outputs(tmp_path / "uit", monkeypatch)
    release_id = airlock.submit(engine, "olga", pid, folder, title="T", description="D", settings=settings)
    with pytest.raises(policy.Refused):
        airlock.withdraw(engine, release_id, "steward")
    airlock.withdraw(engine, release_id, "olga", "Toch niet\nnu")
    assert not airlock.release_folder(settings, release_id).exists()
    with pytest.raises(WorkflowError) as illegal:
        airlock.withdraw(engine, release_id, "olga")
    assert (illegal.value.current, illegal.value.wanted) == (airlock.WITHDRAWN, airlock.WITHDRAWN)
    events = airlock.history(engine, release_id)
    assert [e.to_state for e in events] == [airlock.SUBMITTED, airlock.WITHDRAWN]
    assert events[-1].comment == "Toch niet\nnu"
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:  # the events are append-only
        conn.execute(sa.update(store.release_events).values(note="anders"))


def test_the_command_line_submits_lists_shows_and_withdraws(project, monkeypatch, tmp_path):
    engine, settings, pid = project
    folder = outputs(tmp_path / "uit", monkeypatch, small_cell=True)
    runner = CliRunner()

    def ldj(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    refused = ldj("airlock", "submit", str(folder), "--project", str(pid), "--as", "bram", "--title", "T",
                  "--description", "D")
    assert refused.exit_code == 1 and "geen toegang" in refused.output and "Traceback" not in refused.output
    made = ldj("airlock", "submit", str(folder), "--project", str(pid), "--as", "olga", "--title", "Uitval",
               "--description", "Trajecten per interventie")
    assert made.exit_code == 0 and "ingediend" in made.output
    release_id = int(made.output.split()[1].rstrip(":"))
    assert f"project {pid}" in ldj("airlock", "list", "--as", "steward").output
    assert ldj("airlock", "list", "--as", "bram").output == ""
    shown = ldj("airlock", "show", str(release_id), "--as", "olga").output
    assert "Uitval" in shown and "threshold" in shown and "fail" in shown and "-> submitted" in shown
    assert ldj("airlock", "show", str(release_id), "--as", "bram").exit_code == 1
    assert "ingetrokken" in ldj("airlock", "withdraw", str(release_id), "--as", "olga", "--comment", "weg").output
    again = ldj("airlock", "withdraw", str(release_id), "--as", "olga")
    assert again.exit_code == 1 and "ingetrokken" in again.output
