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


# --- review by two independent checkers, the decision, the release and the answer ---------------------------

@pytest.fixture
def reviewed(project, monkeypatch, tmp_path):
    """olga's request with a table and a text, bram on her project, checkers chk1, chk2 and chk3."""
    engine, settings, pid = project
    for name in ("chk1", "chk2", "chk3"):
        gov.add_user(engine, name, display_name=name, organisation="CBS", roles=["checker"])
    folder = outputs(tmp_path / "uit", monkeypatch)
    custom = next(o["name"] for o in safe.check_paths([folder]) if o["kind"] == "custom")
    release_id = airlock.submit(engine, "olga", pid, folder, title="Uitval", description="Trajecten per interventie.",
                                public=[custom], settings=settings)
    return engine, settings, pid, release_id, folder


def text_file(engine, release_id):
    """The file of the custom output (the researcher's text), as kept in the release."""
    return next(f.file for f in airlock.get_release(engine, release_id, "steward").files
                if f.kind == "custom" and not f.file.endswith(safe.META_SUFFIX))


def review_all(engine, release_id, checker, verdict=airlock.APPROVE, comment=None, public=True):
    for f in airlock.get_release(engine, release_id, "steward").files:
        airlock.review_file(engine, release_id, checker, f.file, verdict, comment, public=public)


def test_two_checkers_take_it_neither_the_author_a_member_nor_a_third(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    with pytest.raises(policy.Refused):
        airlock.claim(engine, release_id, "olga")  # the author, and no checker
    gov.set_roles(engine, "olga", ["researcher", "checker"])
    with pytest.raises(policy.Refused):
        airlock.claim(engine, release_id, "olga")  # a checker, but her own request
    gov.add_user(engine, "cora", display_name="Cora", organisation="ORG01", roles=["researcher", "checker"])
    approve(engine, "olga", {"trajectories": ["trajectory"]}, {"trajectories": {"trajectory"}}, members=["cora"])
    assert policy.actor_for(engine, "cora").projects  # cora works on another project of olga's, not this one
    airlock.claim(engine, release_id, "chk1")
    assert airlock.get_release(engine, release_id, "olga").status == airlock.IN_REVIEW
    with pytest.raises(airlock.AirlockError, match="controleert vrijgaveverzoek"):
        airlock.claim(engine, release_id, "chk1")
    airlock.claim(engine, release_id, "cora")  # not a member of this project: she may check it
    with pytest.raises(airlock.AirlockError, match="twee controleurs"):
        airlock.claim(engine, release_id, "chk3")
    with pytest.raises(airlock.AirlockError, match="geen controleur"):
        airlock.review_file(engine, release_id, "chk3", text_file(engine, release_id), airlock.APPROVE)
    assert airlock.get_release(engine, release_id, "chk3").reviewers == ("chk1", "cora")


def test_a_project_member_who_checks_may_not_review_her_projects_request(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    gov.add_user(engine, "kees", display_name="Kees", organisation="ORG01", roles=["researcher", "checker"])
    amendment = gov.create_amendment(engine, pid, "olga", add_members=["kees"], reason="Erbij")
    gov.submit(engine, amendment, "olga")
    gov.start_review(engine, amendment, "steward")
    for reviewer in ("apo1", "apo2"):
        gov.review(engine, amendment, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
    gov.decide(engine, amendment, "steward")
    with pytest.raises(policy.Refused):
        airlock.claim(engine, release_id, "kees")


def test_each_checker_sees_the_others_verdict_only_after_giving_her_own(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    airlock.claim(engine, release_id, "chk1")
    airlock.claim(engine, release_id, "chk2")
    airlock.review_file(engine, release_id, "chk1", text_file(engine, release_id), airlock.CHANGES, "Noem de bron.")
    assert airlock.reviews(engine, release_id, "chk2")[text_file(engine, release_id)] == []
    assert [r.reviewer for r in airlock.reviews(engine, release_id, "chk1")[text_file(engine, release_id)]] == ["chk1"]
    assert airlock.reviews(engine, release_id, "olga")[text_file(engine, release_id)] == []  # not decided yet
    airlock.review_file(engine, release_id, "chk2", text_file(engine, release_id), airlock.APPROVE)
    seen = airlock.reviews(engine, release_id, "chk2")[text_file(engine, release_id)]
    assert [(r.reviewer, r.verdict, r.comment) for r in seen] == [("chk1", "changes", "Noem de bron."),
                                                                   ("chk2", "approve", None)]
    notes = " ".join(e.comment or "" for e in airlock.history(engine, release_id))
    assert "Noem de bron" not in notes and "changes" not in notes  # the history does not leak verdicts


def test_the_decision_follows_the_verdicts_and_needs_both(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    airlock.claim(engine, release_id, "chk1")
    review_all(engine, release_id, "chk1")
    with pytest.raises(airlock.AirlockError, match="beide controleurs"):
        airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    airlock.claim(engine, release_id, "chk2")
    with pytest.raises(airlock.AirlockError, match="ontbreekt"):
        airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    review_all(engine, release_id, "chk2", airlock.REJECT, "Te klein.")
    with pytest.raises(airlock.AirlockError, match="elk bestand goedkeuren"):
        airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    with pytest.raises(airlock.AirlockError, match="beide controleurs hetzelfde bestand"):
        airlock.decide(engine, release_id, "chk1", airlock.REJECTED)
    with pytest.raises(airlock.AirlockError, match="toelichting"):
        airlock.review_file(engine, release_id, "chk1", text_file(engine, release_id), airlock.CHANGES)  # says why
    with pytest.raises(policy.Refused):
        airlock.decide(engine, release_id, "olga", airlock.RETURNED)
    airlock.decide(engine, release_id, "chk2", airlock.RETURNED, "Zie de opmerkingen.")
    release = airlock.get_release(engine, release_id, "olga")
    assert release.status == airlock.RETURNED
    assert {r.verdict for rs in airlock.reviews(engine, release_id, "olga").values() for r in rs} == {"approve", "reject"}
    from ldj import notifications
    assert [n.kind for n in notifications.unread(engine, "olga")][:1] == ["release_decided"]
    assert "teruggegeven" in notifications.unread(engine, "olga")[0].text("nl")


def test_a_changed_file_loses_its_reviews_and_an_unchanged_one_keeps_them(reviewed, monkeypatch):
    engine, settings, pid, release_id, folder = reviewed
    for checker in ("chk1", "chk2"):
        airlock.claim(engine, release_id, checker)
        review_all(engine, release_id, checker, airlock.CHANGES, "Rond af op tientallen.")
    airlock.decide(engine, release_id, "chk1", airlock.RETURNED)
    with pytest.raises(policy.Refused):
        airlock.resubmit(engine, release_id, "bram", folder, settings=settings)
    (folder / text_file(engine, release_id)).write_text("Een betere samenvatting.", encoding="utf-8")
    airlock.resubmit(engine, release_id, "olga", folder, description="Nu met bron.", settings=settings)
    release = airlock.get_release(engine, release_id, "chk1")
    assert release.status == airlock.SUBMITTED and release.description == "Nu met bron."
    seen = airlock.reviews(engine, release_id, "chk1")
    assert seen[text_file(engine, release_id)] == []  # changed: reviewed again from scratch
    table = next(f.file for f in release.files if f.kind == "table" and f.file.endswith(".csv"))
    assert [r.verdict for r in seen[table]] == ["changes", "changes"]  # unchanged: the verdicts stand
    airlock.review_file(engine, release_id, "chk1", text_file(engine, release_id), airlock.APPROVE)
    assert airlock.get_release(engine, release_id, "chk1").status == airlock.IN_REVIEW


def test_released_files_go_to_the_project_and_public_ones_to_everyone(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    for checker in ("chk1", "chk2"):
        airlock.claim(engine, release_id, checker)
    table = next(f.file for f in airlock.get_release(engine, release_id, "olga").files if f.kind == "table")
    with pytest.raises(gov.NotFound):
        airlock.download(engine, release_id, table, "olga")  # not yet released
    review_all(engine, release_id, "chk1")
    review_all(engine, release_id, "chk2", public=False)
    airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    with pytest.raises(airlock.AirlockError, match="geen controleur"):
        airlock.release(engine, release_id, "chk3")  # a checker, but not one of the two
    with pytest.raises(policy.Refused):
        airlock.release(engine, release_id, "olga")
    airlock.release(engine, release_id, "chk2")
    assert airlock.download(engine, release_id, table, "olga").read_bytes()
    for outsider in ("bram", "chk3", None):
        with pytest.raises(policy.Refused):
            airlock.download(engine, release_id, table, outsider)
    with pytest.raises(policy.Refused):  # offered as public, but chk2 did not agree
        airlock.download(engine, release_id, text_file(engine, release_id), None)
    with engine.connect() as conn:
        logged = conn.execute(sa.select(store.access_log.c.user_name).where(
            store.access_log.c.action == "release.download")).scalars().all()
    assert logged == ["olga"]
    with pytest.raises(WorkflowError):
        airlock.withdraw(engine, release_id, "olga")


def test_a_public_file_both_checkers_agreed_on_is_everyones(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    for checker in ("chk1", "chk2"):
        airlock.claim(engine, release_id, checker)
        review_all(engine, release_id, checker)
    airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    airlock.release(engine, release_id, "chk1")
    assert airlock.download(engine, release_id, text_file(engine, release_id), None).read_text() == "Samenvatting voor de praktijk."
    table = next(f.file for f in airlock.get_release(engine, release_id, "olga").files if f.kind == "table")
    with pytest.raises(policy.Refused):  # not offered as public
        airlock.download(engine, release_id, table, None)


def test_the_release_answers_the_question_its_project_was_picked_up_for(reviewed):
    from ldj import notifications
    from ldj import vraagbank as vb

    engine, settings, pid, release_id, _ = reviewed
    gov.add_user(engine, "pia", display_name="Pia", organisation="ORG03", roles=["member"])
    question = vb.post(engine, "pia", "Werkt MST even goed bij een LVB?", "Wij zien in ons team dat jongeren "
                       "met een LVB vaker uitvallen. Werkt MST voor hen even goed?", "approach")
    vb.publish(engine, "steward", question)
    request_id = gov.get_project(engine, pid).request_id
    from datetime import date, timedelta
    vb.pick_up(engine, "olga", question, kind="researcher", institution="UU", supervisor=None,
               planned_from=date.today(), planned_until=date.today() + timedelta(days=60), request_id=request_id)
    for checker in ("chk1", "chk2"):
        airlock.claim(engine, release_id, checker)
        review_all(engine, release_id, checker)
    airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    assert airlock.release(engine, release_id, "chk2") == [question]
    answered = vb.get_question(engine, question, None)
    assert answered.status == vb.ANSWERED and answered.answer_summary == "Trajecten per interventie."
    shown = airlock.released_for_question(engine, question)
    assert [r.id for r in shown] == [release_id]
    assert {f.kind for f in shown[0].files} == {"custom"} and text_file(engine, release_id) in {f.file for f in shown[0].files}
    told = notifications.unread(engine, "pia")
    assert told and told[0].link == f"/vraagbank?vraag={question}" and "antwoord" in told[0].text("nl")
    assert notifications.mark_read(engine, "pia") == len(told) and notifications.unread(engine, "pia") == []
    from ldj import registry
    assert {st.id: st.released for st in registry.studies(engine, kind=registry.LDJ)}[pid] == 1
    from ldj.factsheet import research
    assert {row["project"]: row["released"] for row in research(engine)}[pid] == 1


def test_the_checkers_work_from_the_command_line(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["airlock", *args])

    assert run("claim", str(release_id), "--as", "olga").exit_code == 1  # the author: a message, no traceback
    for checker in ("chk1", "chk2"):
        assert run("claim", str(release_id), "--as", checker).exit_code == 0
        for f in airlock.get_release(engine, release_id, "steward").files:
            done = run("review", str(release_id), f.file, "approve", "--as", checker)
            assert done.exit_code == 0, done.output
    shown = run("show", str(release_id), "--as", "chk1")
    assert shown.output.count("chk2: goedkeuren") == len(airlock.get_release(engine, release_id, "chk1").files)
    refused = run("decide", str(release_id), "rejected", "--as", "chk1")
    assert refused.exit_code == 1 and "beide controleurs hetzelfde bestand" in refused.output
    assert run("decide", str(release_id), "approved", "--as", "chk1").exit_code == 0
    released = run("decide", str(release_id), "released", "--as", "chk2")
    assert released.exit_code == 0 and "vrijgegeven" in released.output
    assert airlock.get_release(engine, release_id, "olga").status == airlock.RELEASED


def test_metadata_naming_a_path_is_refused_and_blocks_no_later_request(project, monkeypatch, tmp_path):
    import json

    engine, settings, pid = project
    folder = outputs(tmp_path / "uit", monkeypatch)
    meta = next(folder.glob(f"*{safe.META_SUFFIX}"))
    original = meta.read_text()
    forged = json.loads(original)
    forged["files"] = ["../buiten.txt"]
    meta.write_text(json.dumps(forged))
    (tmp_path / "buiten.txt").write_text("buiten de map")
    with pytest.raises(airlock.AirlockError, match="gewone naam"):
        airlock.submit(engine, "olga", pid, folder, title="T", description="D", settings=settings)
    forged["name"] = "x" * 65
    forged["files"] = original and json.loads(original)["files"]
    meta.write_text(json.dumps(forged))
    with pytest.raises(airlock.AirlockError, match="gewone naam"):
        airlock.submit(engine, "olga", pid, folder, title="T", description="D", settings=settings)
    assert not (settings.data_dir / "releases").exists() or not any((settings.data_dir / "releases").iterdir())
    meta.write_text(original)
    release_id = airlock.submit(engine, "olga", pid, folder, title="T", description="D", settings=settings)
    assert airlock.get_release(engine, release_id, "olga").files


def test_a_verdict_on_an_output_goes_to_each_of_its_files(reviewed):
    engine, settings, pid, release_id, _ = reviewed
    airlock.claim(engine, release_id, "chk1")
    release = airlock.get_release(engine, release_id, "chk1")
    table = next(f.output for f in release.files if f.kind == "table")
    given = airlock.review_output(engine, release_id, "chk1", table, airlock.CHANGES, "Rond af.")
    files = {f.file for f in release.files if f.output == table}
    assert len(files) == 2 and {r.file for r in given} == files  # the table and its metadata
    seen = airlock.reviews(engine, release_id, "chk1")
    assert all([r.verdict for r in seen[f]] == ["changes"] for f in files)
    with pytest.raises(gov.NotFound):
        airlock.review_output(engine, release_id, "chk1", "output_99", airlock.APPROVE)
    assert not airlock.may_claim(airlock.get_release(engine, release_id, "chk1"), policy.actor_for(engine, "chk1"))
    assert airlock.may_claim(airlock.get_release(engine, release_id, "chk2"), policy.actor_for(engine, "chk2"))
    assert not airlock.may_claim(airlock.get_release(engine, release_id, "olga"), policy.actor_for(engine, "olga"))
