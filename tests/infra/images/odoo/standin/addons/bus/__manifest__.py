# ruff: noqa: B018, E501  (a manifest is one expression)
{
    'name': 'IM Bus',
    'version': '1.0',
    'category': 'Hidden',
    'depends': ['base', 'web'],
    'installable': True,
    'auto_install': True,
    'license': 'LGPL-3',
    'author': 'Odoo S.A.',
}
