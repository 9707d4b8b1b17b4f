from setuptools import setup

setup(
    name="ckanext-ldjtest",
    version="0.1.0",
    description="Test-only CKAN plugin for the LDJ suite: CKAN without Solr",
    packages=["ckanext", "ckanext.ldjtest"],
    entry_points={"ckan.plugins": ["ldjtest = ckanext.ldjtest.plugin:LdjTestPlugin"]},
)
