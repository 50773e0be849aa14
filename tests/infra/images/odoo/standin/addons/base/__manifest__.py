# ruff: noqa: B018, E501  (a manifest is one expression)
{
    'name': 'Base',
    'version': '1.3',
    'category': 'Hidden',
    'description': "The kernel of Odoo, needed for all installation.",
    'depends': [],
    'data': [],
    'demo': [],
    'installable': True,
    'auto_install': True,
    'license': 'LGPL-3',
    'author': 'Odoo S.A.',
}
