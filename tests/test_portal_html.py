"""The portal's HTML is escaped by construction (ldj.portal.html), its arguments parsed at the edge
(ldj.portal.params), its cookies flagged (ldj.portal.security): checks that need no running portal."""

from __future__ import annotations

import ast

import pytest

from ldj.portal import html, params, security
from ldj.settings import REPO_ROOT

PORTAL = REPO_ROOT / "ldj" / "portal"
HTML_SINKS = {"HTML", "Markdown", "Alert", "Str", "Markup"}  # pn.pane.HTML(...), Markup(...), ...
PAYLOAD = '"><img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'


def _name(node: ast.expr) -> str:
    """`pn.pane.HTML` -> "HTML", `Markup` -> "Markup", `fs.render_content` -> "render_content"."""
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _from_template(node: ast.expr) -> bool:
    """A value made by a template: a call of `render(...)`, `html_of(...)`, `markdown_html(...)` or a domain
    `render_*(...)`, or `str()` of one."""
    if isinstance(node, ast.Call) and _name(node.func) == "str" and len(node.args) == 1:
        return _from_template(node.args[0])
    return isinstance(node, ast.Call) and (_name(node.func) in ("render", "html_of", "markdown_html")
                                           or _name(node.func).startswith("render_"))


def _sink_problems(path) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and _name(node.func) in HTML_SINKS:
            values = list(node.args[:1]) + [k.value for k in node.keywords if k.arg == "object"]
            for value in values:
                if _name(node.func) == "Markdown" and _plain_text(value):
                    continue  # an interface text without fields: nothing of a user's or a URL's in it
                if not _from_template(value):
                    problems.append(f"{path.name}:{node.lineno}: {_name(node.func)}({ast.unparse(value)[:60]})")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "object"
                                                for t in node.targets) and not _from_template(node.value):
            problems.append(f"{path.name}:{node.lineno}: pane.object = {ast.unparse(node.value)[:60]}")
        if isinstance(node, (ast.JoinedStr, ast.Constant)):  # markup written in code, not in a template
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant)) \
                if isinstance(node, ast.JoinedStr) else node.value if isinstance(node.value, str) else ""
            if any(tag in text for tag in ("<a ", "<p", "<div", "<span", "<td", "<tr", "<li", "<h2", "<h3", "<h4",
                                           "<script", "<b>", "<table", "<img", "<br")):
                problems.append(f"{path.name}:{node.lineno}: HTML in code: {text[:60]!r}")
    return problems


def _plain_text(node: ast.expr) -> bool:
    """`visitor.t("key")` / `t("key")`: one literal key, no fields."""
    return (isinstance(node, ast.Call) and _name(node.func) == "t" and len(node.args) == 1 and not node.keywords
            and isinstance(node.args[0], ast.Constant))


def test_no_module_of_the_portal_builds_html_outside_templates():
    """Every Panel HTML/Markdown pane and every Markup gets a rendered template (or a plain interface text);
    no f-string or string literal holds markup: HTML lives in portal/templates, autoescaped."""
    problems = [p for path in sorted(PORTAL.glob("*.py")) for p in _sink_problems(path)]
    assert problems == []


def test_the_check_finds_html_built_from_strings(tmp_path):
    """The check above is not vacuous: it finds the patterns it forbids."""
    bad = tmp_path / "bad.py"
    bad.write_text('import panel as pn\nfrom markupsafe import Markup\nname = "x"\n'
                   'a = pn.pane.HTML(f"<p>{name}</p>")\nb = pn.pane.Markdown("**" + name)\nc = Markup(name)\n'
                   'd = pn.pane.HTML(render("x.html.j2"))\nd.object = "<b>" + name\n')
    found = _sink_problems(bad)
    assert sorted({p.split(":")[1] for p in found}) == ["4", "5", "6", "8"]


def test_templates_escape_what_they_are_given_and_user_markdown_is_sanitised():
    out = html.render("requests/details.html.j2", title=PAYLOAD, id=1, summary=html.markdown_html(
        lambda key, **f: "**Org:** {organisation}".format(**f), "x", organisation=PAYLOAD),
        amendment_of="", conditions=PAYLOAD, conditions_label="c", data_label="d", entries=[],
        questions_label="q", questions=[{"id": 1, "title": PAYLOAD, "status": "s"}],
        sections=[{"heading": "h", "text": PAYLOAD + "\n\n[k](javascript:window.__xss=1)"}])
    out = str(out)
    assert "<img" not in out and "<script" not in out and 'href="javascript:' not in out
    assert "&lt;img src=x" in out  # shown as text
    assert html.render("text.html.j2", tag="p", css="", text=PAYLOAD).count("&lt;script&gt;") == 1
    with pytest.raises(ValueError):
        html.text("x", tag="script")


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "/%2F%2Fevil.example", "/%5Cevil.example",
                                    "/%252F%252Fevil.example", "https://evil.example", "javascript:alert(1)",
                                    "/\t/evil.example", "/%09/evil.example", "/\n/evil.example", "evil.example", "",
                                    "/a b", "//", "\\\\evil.example", "/%E2%80%AE/x"])
def test_a_redirect_target_is_only_a_path_on_this_site(target):
    with pytest.raises(ValueError):
        params.local_path(target)


def test_local_paths_pass_unchanged():
    for target in ("/", "/services/ldj-portal/", "/services/ldj-portal/vraagbank?vraag=3&x=%20"):
        assert params.local_path(target) == target


@pytest.mark.parametrize("raw", ["0", "-1", "1.0", " 1", "1e3", "١", "abc", PAYLOAD, "9" * 13])
def test_an_id_is_a_positive_integer_and_nothing_else(raw):
    with pytest.raises(params.BadParameter) as refused:
        params.parse("id", raw, params.integer)
    assert "'id'" in str(refused.value)
    assert params.parse("id", "42", params.integer) == 42
    assert params.parse("id", None, params.integer) is None


def test_other_parsers_refuse_what_they_do_not_take():
    assert params.parse("lang", "en", params.one_of(("nl", "en"))) == "en"
    for parser, raw in ((params.one_of(("nl", "en")), "de"), (params.flag, "yes"), (params.identifier, PAYLOAD),
                        (params.identifier, "a/../b"), (params.integer, "1" * 300)):
        with pytest.raises(params.BadParameter):
            params.parse("x", raw, parser)


def test_every_cookie_gets_httponly_samesite_and_secure_over_https():
    assert security.with_flags("user=abc; Path=/", secure=False) == "user=abc; Path=/; HttpOnly; SameSite=Lax"
    assert security.with_flags("a=b; HttpOnly; SameSite=Strict", secure=True) == "a=b; HttpOnly; SameSite=Strict; Secure"
    assert "frame-ancestors 'none'" in security.CSP and "object-src 'none'" in security.CSP


def _page(*objects):
    """A served page's Bokeh document holding `objects` (as a Panel session builds it)."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    doc = Document()
    with set_curdoc(doc):
        pn.Column(*objects).server_doc(doc)
    return doc


def test_a_page_bundle_is_panels_own_worked_out_once_per_kind_of_page():
    """The cached script and stylesheet tags (ldj.portal.resources) are the ones Panel works out itself; a
    session whose settings add to them (here raw css) gets its own entry, and a caller that adds to its
    copy changes nothing for the next page."""
    import panel as pn
    import panel.io.resources as panel_resources
    from bokeh.embed.bundle import Script
    from bokeh.resources import Resources
    from panel.io.state import set_curdoc

    from ldj.portal import resources

    served = panel_resources.Resources.from_bokeh(Resources(mode="server", root_url="/services/ldj-portal/"))
    first, second, styled = _page(pn.pane.Markdown("a")), _page(pn.pane.HTML("b")), _page(pn.pane.Markdown("c"))
    resources._bundles.clear()
    for doc in (first, second, first):
        with set_curdoc(doc):
            assert list(resources.bundle(doc.roots, served)) == list(resources._original(doc.roots, served))
    assert len(resources._bundles) == 1  # the same for both pages
    with set_curdoc(styled), pn.config.set(raw_css=[".ldj-test-style { color: red; }"]):
        css = list(resources.bundle(styled.roots, served))[1]
        assert css == list(resources._original(styled.roots, served))[1] and ".ldj-test-style" in css
    assert len(resources._bundles) == 2
    with set_curdoc(first):
        assert ".ldj-test-style" not in list(resources.bundle(first.roots, served))[1]
        mine = resources.bundle(first.roots, served)
        mine.add(Script("window.added = 1"))
        assert "window.added" not in list(resources.bundle(first.roots, served))[0]


def test_the_panel_page_frame_escapes_what_it_is_given():
    """The frame of a Panel page (panel_page.html.j2) escapes its own values; only Bokeh's markup passes."""
    from bokeh.core.templates import MACROS

    out = str(html.render("panel_page.html.j2", language="nl", heading=PAYLOAD, portal_title=PAYLOAD, favicon=PAYLOAD,
                          nav=html.render("text.html.j2", tag="p", css="", text=PAYLOAD), macros=MACROS, roots=[],
                          bokeh_css="", bokeh_js='<script src="static/js/bokeh.min.js"></script>',
                          plot_script=""))
    assert "<img" not in out and "<script>window" not in out
    assert out.count("&lt;img src=x") == 5  # title (heading and portal title), header, favicon, navigation
    assert '<script src="static/js/bokeh.min.js"></script>' in out
