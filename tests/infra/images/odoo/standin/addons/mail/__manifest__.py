# ruff: noqa: B018, E501  (a manifest is one expression)
{
    'name': 'Discuss',
    'version': '1.15',
    'category': 'Productivity/Discuss',
    'sequence': 145,
    'summary': 'Chat, mail gateway and private channels',
    'description': "Chat, mail gateway and private channel.",
    'depends': ['base', 'base_setup', 'bus', 'web'],
    'installable': True,
    'application': True,
    # The stand-in installs it with base so that the mail queue cron exists (see README).
    'auto_install': True,
    'license': 'LGPL-3',
    'author': 'Odoo S.A.',
}
