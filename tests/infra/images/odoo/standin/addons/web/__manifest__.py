# ruff: noqa: B018, E501  (a manifest is one expression)
{
    'name': 'Web',
    'category': 'Hidden',
    'version': '1.0',
    'description': "Odoo Web core module.",
    'depends': ['base'],
    'auto_install': True,
    'bootstrap': True,
    'license': 'LGPL-3',
    'author': 'Odoo S.A.',
}
