"""CKAN without Solr, for the LDJ test suite only (never install this in a real CKAN).

CKAN 2.12 writes every dataset change to its Solr index and refuses the write when Solr is not
there. This plugin swaps the package index for CKAN's own `NoopSearchIndex`, so dataset create,
patch, show, delete and purge work against PostgreSQL alone. Searches (`package_search`, the
dataset counts of `organization_show`) get a small database-backed stand-in that understands the
simple filters CKAN itself sends: `owner_org:`, `name:`, `id:`, `dataset_type:`, `state:`,
`private:`, plus the caller's permission labels. Free-text queries are not supported.

`ldj.ckan.publish` itself does not search: it reads with `package_list` and `package_show`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import ckan.lib.search as search
import ckan.model as model
import ckan.plugins as plugins
from ckan.lib.plugins import get_permission_labels
from ckan.lib.search.index import NoopSearchIndex
from ckan.lib.search.query import PackageSearchQuery


class NoSolrPackageIndex(NoopSearchIndex):
    """Accepts every index call and does nothing."""

    def index_package(self, pkg_dict, defer_commit=False):
        pass

    def delete_package(self, pkg_dict):
        pass

    def commit(self):
        pass

    def clear(self):
        pass

    def get_all_entity_ids(self, max_results: int = 1000):
        return [p.id for p in model.Session.query(model.Package.id).filter_by(state="active")]


_FIELD = re.compile(r'(?P<neg>[-+]?)(?P<field>owner_org|name|id|dataset_type|state|private|capacity):'
                    r'(?:"(?P<quoted>[^"]*)"|\((?P<group>[^)]*)\)|(?P<plain>[^\s()]+))')


def _filters(*texts: str) -> list[tuple[bool, str, set[str]]]:
    out = []
    for text in texts:
        for m in _FIELD.finditer(text or ""):
            raw = m.group("quoted") if m.group("quoted") is not None else (m.group("group") or m.group("plain"))
            values = {v.strip().strip('"') for v in re.split(r"\s+OR\s+", raw)} if m.group("group") else {raw}
            out.append((m.group("neg") == "-", m.group("field"), values))
    return out


def _value(pkg: model.Package, field: str) -> str:
    if field == "dataset_type":
        return pkg.type or "dataset"
    if field == "private":
        return "true" if pkg.private else "false"
    if field == "capacity":
        return "private" if pkg.private else "public"
    return str(getattr(pkg, field) or "")


class DatabasePackageSearchQuery(PackageSearchQuery):
    """`package_search` answered from the database for the filters listed in the module doc."""

    def run(self, query: dict[str, Any], permission_labels: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        fq = query.get("fq", "")
        fq_list = [fq] if isinstance(fq, str) else list(fq)
        fq_list += list(query.get("fq_list", []))
        q = query.get("q") or ""
        filters = _filters(q, *fq_list)
        if not any(field == "state" for _, field, _ in filters):
            filters.append((False, "state", {"active"}))
        rows = int(query.get("rows", 10))
        start = int(query.get("start", 0))
        matched = []
        labels = set(permission_labels) if permission_labels is not None else None
        for pkg in model.Session.query(model.Package).order_by(model.Package.name):
            if any((_value(pkg, field) in values) == neg for neg, field, values in filters):
                continue
            if labels is not None and not labels & set(get_permission_labels().get_dataset_labels(pkg)):
                continue
            matched.append(pkg)
        self.count = len(matched)
        fields = str(query.get("fl", "name")).replace(",", " ").split()
        self.results = []
        for pkg in matched[start:start + rows] if rows >= 0 else matched:
            row: dict[str, Any] = {"id": pkg.id, "name": pkg.name, "title": pkg.title}
            if {"validated_data_dict", "data_dict"} & set(fields):
                shown = plugins.toolkit.get_action("package_show")({"ignore_auth": True}, {"id": pkg.id})
                row["validated_data_dict"] = row["data_dict"] = json.dumps(shown)
            self.results.append({k: v for k, v in row.items() if k in fields or fields == ["*"]} or row)
        self.facets = {}
        for field in query.get("facet.field", []) or []:
            counts: dict[str, int] = {}
            for pkg in matched:
                keys = [g.name for g in pkg.get_groups()] if field == "groups" else [getattr(pkg, field, None)]
                for key in keys:
                    if key:
                        counts[key] = counts.get(key, 0) + 1
            self.facets[field] = counts
        self.raw_response = None
        return {"results": self.results, "count": self.count}


class LdjTestPlugin(plugins.SingletonPlugin):
    plugins.implements(plugins.IConfigurer)

    def update_config(self, config):
        # Called while CKAN loads its environment, before anything touches the index.
        search._INDICES["package"] = NoSolrPackageIndex
        search._QUERIES["package"] = DatabasePackageSearchQuery
        search.PackageSearchQuery = DatabasePackageSearchQuery  # model_dictize uses the class directly
