"""Odoo's configuration: command line options over the `[options]` of the config file.

The option list is Odoo 16-19's (optparse, like Odoo), so a valid Odoo command line parses
and an invalid one fails the same way (exit 2). Most options are accepted and ignored.
"""

from __future__ import annotations

import configparser
import logging
import optparse
import os
from typing import Any

from . import release

_logger = logging.getLogger("odoo.tools.config")

# (flags, dest, kind, default).  kind: str int float true false append const:<v> choice:<a|b>
_COMMON: list[tuple[tuple[str, ...], str, str, Any]] = [
    (("-c", "--config"), "config", "str", None),
    (("-s", "--save"), "save", "true", False),
    (("-i", "--init"), "init", "str", ""),
    (("-u", "--update"), "update", "str", ""),
    (("--reinit",), "reinit", "str", ""),
    (("-P", "--import-partial"), "import_partial", "str", ""),
    (("--pidfile",), "pidfile", "str", ""),
    (("--addons-path",), "addons_path", "str", ""),
    (("--upgrade-path",), "upgrade_path", "str", ""),
    (("--pre-upgrade-scripts",), "pre_upgrade_scripts", "str", ""),
    (("--load",), "server_wide_modules", "str", "base,web"),
    (("-D", "--data-dir"), "data_dir", "str", None),
    # HTTP
    (("--http-interface",), "http_interface", "str", ""),
    (("-p", "--http-port"), "http_port", "int", 8069),
    (("--gevent-port",), "gevent_port", "int", 8072),
    (("--longpolling-port",), "gevent_port", "int", None),
    (("--no-http",), "http_enable", "false", True),
    (("--proxy-mode",), "proxy_mode", "true", False),
    (("--x-sendfile",), "x_sendfile", "true", False),
    (("--xmlrpc-interface",), "http_interface", "str", None),
    (("--xmlrpc-port",), "http_port", "int", None),
    (("--no-xmlrpc",), "http_enable", "false", None),
    # Web
    (("--db-filter",), "dbfilter", "str", ""),
    # Testing
    (("--test-file",), "test_file", "str", ""),
    (("--test-enable",), "test_enable", "true", False),
    (("--test-tags",), "test_tags", "str", None),
    (("--screencasts",), "screencasts", "str", ""),
    (("--screenshots",), "screenshots", "str", "/tmp/odoo_tests"),
    # Logging
    (("--logfile",), "logfile", "str", ""),
    (("--syslog",), "syslog", "true", False),
    (("--log-handler",), "log_handler", "append", None),
    (("--log-web",), "log_handler", "const:odoo.http:DEBUG", None),
    (("--log-sql",), "log_handler", "const:odoo.sql_db:DEBUG", None),
    (("--log-request",), "log_handler", "const:odoo.http.rpc.request:DEBUG", None),
    (("--log-response",), "log_handler", "const:odoo.http.rpc.response:DEBUG", None),
    (("--log-db",), "log_db", "str", ""),
    (("--log-db-level",), "log_db_level", "str", "warning"),
    (("--log-level",), "log_level",
     "choice:info|debug_rpc|warn|test|critical|runbot|debug_sql|error|debug|debug_rpc_answer|notset",
     "info"),
    # SMTP
    (("--email-from",), "email_from", "str", ""),
    (("--from-filter",), "from_filter", "str", ""),
    (("--smtp",), "smtp_server", "str", "localhost"),
    (("--smtp-port",), "smtp_port", "int", 25),
    (("--smtp-ssl",), "smtp_ssl", "true", False),
    (("--smtp-user",), "smtp_user", "str", ""),
    (("--smtp-password",), "smtp_password", "str", ""),
    (("--smtp-ssl-certificate-filename",), "smtp_ssl_certificate_filename", "str", ""),
    (("--smtp-ssl-private-key-filename",), "smtp_ssl_private_key_filename", "str", ""),
    # Database
    (("-d", "--database"), "db_name", "str", ""),
    (("-r", "--db_user"), "db_user", "str", ""),
    (("-w", "--db_password"), "db_password", "str", ""),
    (("--pg_path",), "pg_path", "str", ""),
    (("--db_host",), "db_host", "str", ""),
    (("--db_replica_host",), "db_replica_host", "str", None),
    (("--db_port",), "db_port", "int", None),
    (("--db_replica_port",), "db_replica_port", "int", None),
    (("--db_sslmode",), "db_sslmode",
     "choice:disable|allow|prefer|require|verify-ca|verify-full", "prefer"),
    (("--db_app_name",), "db_app_name", "str", "odoo-{pid}"),
    (("--db_maxconn",), "db_maxconn", "int", 64),
    (("--db_maxconn_gevent",), "db_maxconn_gevent", "int", None),
    (("--db-template",), "db_template", "str", "template0"),
    # i18n
    (("--load-language",), "load_language", "str", ""),
    (("-l", "--language"), "language", "str", None),
    (("--i18n-export",), "translate_out", "str", None),
    (("--i18n-import",), "translate_in", "str", None),
    (("--i18n-overwrite",), "overwrite_existing_translations", "true", False),
    (("--modules",), "translate_modules", "str", None),
    # Security
    (("--no-database-list",), "list_db", "false", True),
    # Advanced
    (("--dev",), "dev_mode", "str", ""),
    (("--shell-interface",), "shell_interface", "str", None),
    (("--stop-after-init",), "stop_after_init", "true", False),
    (("--osv-memory-count-limit",), "osv_memory_count_limit", "int", 0),
    (("--transient-age-limit",), "transient_age_limit", "float", 1.0),
    (("--max-cron-threads",), "max_cron_threads", "int", 2),
    (("--limit-time-worker-cron",), "limit_time_worker_cron", "int", 0),
    (("--unaccent",), "unaccent", "true", False),
    (("--geoip-city-db", "--geoip-db"), "geoip_city_db", "str", ""),
    (("--geoip-country-db",), "geoip_country_db", "str", ""),
    # Multiprocessing
    (("--workers",), "workers", "int", 0),
    (("--limit-memory-soft",), "limit_memory_soft", "int", 2048 * 1024 * 1024),
    (("--limit-memory-soft-gevent",), "limit_memory_soft_gevent", "int", None),
    (("--limit-memory-hard",), "limit_memory_hard", "int", 2560 * 1024 * 1024),
    (("--limit-memory-hard-gevent",), "limit_memory_hard_gevent", "int", None),
    (("--limit-time-cpu",), "limit_time_cpu", "int", 60),
    (("--limit-time-real",), "limit_time_real", "int", 120),
    (("--limit-time-real-cron",), "limit_time_real_cron", "int", -1),
    (("--limit-request",), "limit_request", "int", 2**16),
]

# Keys that only the config file sets.
_FILE_ONLY: dict[str, Any] = {
    "admin_passwd": "admin",
    "csv_internal_sep": ",",
    "publisher_warranty_url": "http://services.odoo.com/publisher-warranty/",
    "reportgz": False,
    "websocket_keep_alive_timeout": 3600,
    "websocket_rate_limit_burst": 10,
    "websocket_rate_limit_delay": 0.2,
}

# Old config-file names Odoo still reads.
_ALIASES = {
    "xmlrpc_port": "http_port",
    "xmlrpc_interface": "http_interface",
    "xmlrpc": "http_enable",
    "longpolling_port": "gevent_port",
}

# Odoo 19 reads these from the environment (under the command line, over the file).
_ENV_19 = {
    "PGHOST": "db_host",
    "PGPORT": "db_port",
    "PGUSER": "db_user",
    "PGPASSWORD": "db_password",
    "PGDATABASE": "db_name",
    "PGSSLMODE": "db_sslmode",
    "PGAPPNAME": "db_app_name",
    "PGDATABASE_TEMPLATE": "db_template",
}


class ConfigError(Exception):
    pass


def _types() -> dict[str, str]:
    out: dict[str, str] = {}
    for _flags, dest, kind, _default in _COMMON:
        if kind in ("int", "float"):
            out[dest] = kind
        elif kind in ("true", "false"):
            out[dest] = "bool"
    out.update(with_demo="bool", reportgz="bool", websocket_keep_alive_timeout="int",
               websocket_rate_limit_burst="int", websocket_rate_limit_delay="float")
    return out


TYPES = _types()


def build_parser(major: int = release.major) -> optparse.OptionParser:
    parser = optparse.OptionParser(
        version=f"{release.description} {release.version}",
        usage="%prog [options]",
    )
    for flags, dest, kind, _default in _COMMON:
        kw: dict[str, Any] = {"dest": dest}
        if kind == "true":
            kw["action"] = "store_true"
        elif kind == "false":
            kw["action"] = "store_false"
        elif kind == "append":
            kw["action"] = "append"
        elif kind.startswith("const:"):
            kw.update(action="append_const", const=kind[6:])
        elif kind.startswith("choice:"):
            kw.update(type="choice", choices=kind[7:].split("|"))
        elif kind in ("int", "float"):
            kw["type"] = kind
        parser.add_option(*flags, **kw)
    if major >= 19:
        parser.add_option("--with-demo", dest="with_demo", action="store_true")
        parser.add_option("--without-demo", dest="without_demo_19", metavar="BOOL")
    else:
        parser.add_option("--without-demo", dest="without_demo")
    return parser


def defaults(major: int = release.major) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for _flags, dest, _kind, default in _COMMON:
        if dest not in opts and default is not None:
            opts[dest] = default
        opts.setdefault(dest, None)
    opts["log_handler"] = [":INFO"]
    opts.update(_FILE_ONLY)
    if major >= 19:
        opts["with_demo"] = False
    else:
        opts["without_demo"] = False
    home = os.path.expanduser("~")
    if os.path.isdir(home):
        opts["data_dir"] = os.path.join(home, ".local", "share", "Odoo")
    else:
        opts["data_dir"] = "/var/lib/odoo"
    return opts


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "yes", "true", "on"):
        return True
    if v in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"invalid boolean value: {value!r}")


def _cast(key: str, value: str) -> Any:
    """A config-file value as Odoo reads it: True/False/None words, then the option's type."""
    if value in ("True", "true"):
        return True
    if value in ("False", "false"):
        return False
    if value == "None":
        return None
    kind = TYPES.get(key)
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return parse_bool(value)
    except ValueError as exc:
        raise ConfigError(f"option {key}: invalid value {value!r} in the config file") from exc
    return value


def read_file(path: str) -> dict[str, Any]:
    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        return {}
    out: dict[str, Any] = {}
    if parser.has_section("options"):
        for key, value in parser.items("options"):
            key = _ALIASES.get(key, key)
            if key == "log_handler":
                out[key] = _list_value(value)
                continue
            out[key] = _cast(key, value)
    return out


def _list_value(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        import ast

        try:
            parsed = ast.literal_eval(value)
            return [str(v) for v in parsed]
        except (ValueError, SyntaxError):
            pass
    return [v.strip() for v in value.split(",") if v.strip()]


class Config(dict):  # type: ignore[type-arg]
    """The merged options, plus a few derived values."""

    @property
    def db_names(self) -> list[str]:
        value = self.get("db_name") or ""
        if isinstance(value, list):
            return [v for v in value if v]
        return [v.strip() for v in str(value).split(",") if v.strip()]

    @property
    def with_demo(self) -> bool:
        if release.major >= 19:
            return bool(self.get("with_demo"))
        return not self.get("without_demo")

    def comma(self, key: str) -> list[str]:
        value = self.get(key) or ""
        if isinstance(value, list):
            return value
        return [v.strip() for v in str(value).split(",") if v.strip()]


def _preprocess_19(args: list[str]) -> list[str]:
    # Odoo 19 gives --without-demo an optional value (nargs='?').
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--without-demo" and (i == len(args) - 1 or args[i + 1].startswith("-")):
            args[i] = "--without-demo=True"
    return args


def parse(args: list[str], parser: optparse.OptionParser | None = None) -> Config:
    """Parse a command line the way Odoo does; optparse errors exit 2."""
    major = release.major
    parser = parser or build_parser(major)
    if major >= 19:
        args = _preprocess_19(args)
    opt, rest = parser.parse_args(args)
    if rest:
        parser.error(f"unrecognized parameters: {' '.join(rest)}")

    cfg = Config(defaults(major))
    rcfile = opt.config or os.environ.get("ODOO_RC") or os.environ.get("OPENERP_SERVER")
    if not rcfile:
        rcfile = os.path.expanduser("~/.odoorc")
    rcfile = os.path.abspath(os.path.expanduser(rcfile))
    if opt.config and major >= 19 and not os.access(rcfile, os.R_OK):
        parser.error(
            f"the config file {opt.config!r} selected with -c/--config doesn't exist or is "
            "not readable, use -s/--save if you want to generate it"
        )
    try:
        cfg.update(read_file(rcfile))
    except ConfigError as exc:
        parser.error(str(exc))
    except configparser.Error as exc:
        parser.error(f"the config file {rcfile!r} cannot be parsed: {exc}")
    cfg["config"] = rcfile

    if major >= 19:
        for env, key in _ENV_19.items():
            if env in os.environ:
                cfg[key] = int(os.environ[env]) if key == "db_port" else os.environ[env]
        if "without_demo" in cfg:
            # a pre-19 file key: read it the 19.0 way (inverted into with_demo)
            value = cfg.pop("without_demo")
            if isinstance(value, bool):
                cfg.setdefault("with_demo", not value)

    cli = {k: v for k, v in vars(opt).items() if v is not None}
    handlers = cli.pop("log_handler", None)
    wd19 = cli.pop("without_demo_19", None)
    cfg.update(cli)
    if handlers:
        cfg["log_handler"] = list(cfg.get("log_handler") or []) + list(handlers)
    if wd19 is not None:
        try:
            cfg["with_demo"] = not parse_bool(wd19)
        except ValueError:
            cfg.setdefault("_warnings", []).append(
                f"option --without-demo: since 19.0, invalid boolean value: {wd19!r}, assume "
                f"{wd19 != 'None'}"
            )
            cfg["with_demo"] = wd19 == "None"
    if major < 19 and cfg.get("without_demo") in ("", None):
        cfg["without_demo"] = False

    if len(cfg.db_names) > 1 and (cfg.get("init") or cfg.get("update")):
        parser.error(
            "Cannot use -i/--init or -u/--update with multiple databases in the "
            "-d/--database/db_name"
        )
    cfg["_cli_addons_path"] = bool(opt.addons_path)
    return cfg
