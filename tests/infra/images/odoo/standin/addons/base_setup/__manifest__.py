# ruff: noqa: B018, E501  (a manifest is one expression)
{
    'name': 'Initial Setup Tools',
    'version': '1.0',
    'category': 'Hidden',
    'description': "This module helps to configure the system at the installation of a new database.",
    'depends': ['base', 'web'],
    'installable': True,
    'auto_install': True,
    'license': 'LGPL-3',
    'author': 'Odoo S.A.',
}
