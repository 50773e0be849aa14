# ruff: noqa: B018, E501  (a manifest is one expression)
{
    'name': 'Contacts',
    'category': 'Sales/CRM',
    'sequence': 150,
    'summary': 'Centralize your address book',
    'description': "This module gives you a quick view of your contacts directory.",
    'version': '1.0',
    'depends': ['base', 'mail'],
    'application': True,
    'license': 'LGPL-3',
    'author': 'Odoo S.A.',
}
