"""The LDJ portal: a Panel application served as a JupyterHub service, with the hub as OAuth provider.

Pages only call the domain layer (ldj.governance, ldj.vraagbank, ldj.factsheet, ldj.indicators, ...):
every rule and every permission check lives there, so a request sent directly is refused as well.
"""
