"""The script and stylesheet tags of a Panel page, worked out once instead of for every session.

Panel works out a page's resource bundle (Bokeh's and Panel's scripts and stylesheets, the extensions'
files, the design's) for every page it sends (`panel.io.server.server_html_page_for_session` calls
`bundle_resources`): about 15 % of a start page's server time, and the same answer for every session.
`install()` puts a cache in front of it, keyed by everything that answer reads: the server's resources
(mode, address, components), the page's path depth (Panel writes relative addresses), whether the page
needs MathJax (Panel's own test on the page's models), the models and extensions loaded in the process, and
the session's Panel settings that add files (design, theme, css/js files, raw css, loading spinner,
notifications). A change of any of these is a new entry; there are a handful per process. Each caller
gets its own copy (Panel's autoload script adds to the bundle it gets).
"""

from __future__ import annotations

import copy
import threading

import panel.io.resources as panel_resources
import panel.io.server as panel_server
from bokeh.embed.bundle import _use_mathjax
from bokeh.model import Model
from panel.config import config, panel_extension
from panel.io.state import state

_original = panel_resources.bundle_resources
_bundles: dict[tuple, object] = {}
_lock = threading.Lock()


def key(roots, resources) -> tuple:
    """Everything `bundle_resources(roots, resources)` depends on, in the current session."""
    mathjax = (_use_mathjax(roots) or panel_resources._panel_use_mathjax(roots)
               or "mathjax" in panel_extension._loaded_extensions)
    return (resources.mode, resources.root_url, resources.absolute, resources.minified, tuple(resources.components),
            state.base_url, state.rel_path, mathjax, len(Model.model_class_reverse_map),
            tuple(sorted(state._extensions or ())), tuple(sorted(panel_extension._loaded_extensions)),
            repr(config.design), config.theme, bool(config.notifications and state.notifications),
            tuple(config.css_files), tuple(config.js_files.items()), tuple(config.js_modules.items()),
            tuple(config.raw_css), tuple(config.global_css), config.global_loading_spinner, config.loading_spinner,
            config.loading_color, config.loading_max_height, config.npm_cdn)


def bundle(roots, resources, *args, **kwargs):
    """`panel.io.resources.bundle_resources`, the same answer from the cache for the same key."""
    if args or kwargs:  # notebook, reloading or a forced MathJax choice: not a served page, not cached
        return _original(roots, resources, *args, **kwargs)
    entry = key(roots, resources)
    with _lock:
        found = _bundles.get(entry)
    if found is None:
        found = _original(roots, resources)
        with _lock:
            _bundles[entry] = found
    return _copy(found)


def _copy(found):
    twin = copy.copy(found)
    for name, value in vars(found).items():
        if isinstance(value, (list, dict)):
            setattr(twin, name, copy.copy(value))
    return twin


def install() -> None:
    """Panel's page handler takes its bundles through the cache (in this process)."""
    panel_server.bundle_resources = bundle
