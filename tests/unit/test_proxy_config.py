"""The proxy's pure parts: hostname rules, routes.json, the generated Caddyfile, odoo.conf."""

from __future__ import annotations

import configparser
import json

import pytest

from havsh_tui.core.model import Host, Service, ServiceType
from havsh_tui.core.serde import from_dict, to_dict
from havsh_tui.ops import odoo, proxy
from havsh_tui.ops.proxy import InvalidHostname, ProxyState


@pytest.mark.parametrize("good, normal", [
    ("erp.example.com", "erp.example.com"),
    ("ERP.Example.COM", "erp.example.com"),
    ("erp.example.com.", "erp.example.com"),
    ("a.b", "a.b"),
    ("x-1.y2.example", "x-1.y2.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    ("1.2.3.example", "1.2.3.example"),
])
def test_valid_hostnames(good, normal):
    assert proxy.validate_hostname(good) == normal


@pytest.mark.parametrize("bad, why", [
    ("", "empty"),
    ("localhost", "two labels"),
    ("erp", "two labels"),
    ("erp..example.com", "empty label"),
    (".example.com", "empty label"),
    ("-erp.example.com", "must not start or end"),
    ("erp-.example.com", "must not start or end"),
    ("erp_1.example.com", "a-z, 0-9"),
    ("erp.example.com/", "bare hostname"),
    ("https://erp.example.com", "bare hostname"),
    ("erp.example.com:443", "bare hostname"),
    ("admin@erp.example.com", "bare hostname"),
    ("*.example.com", "wildcard"),
    ("10.0.0.1", "IP address"),
    ("::1", "bare hostname"),
    ("erp.example.123", "all digits"),
    ("bücher.example", "not ASCII"),
    ("ab--cd.example.com", "third"),
    ("erp.example.com ", "white space"),
    (" erp.example.com", "white space"),
    ("erp.exa mple.com", "white space"),
    ("erp.example.com\n", "white space"),
    ("erp.example.com;", "a-z, 0-9"),
    ("erp.example.com{", "a-z, 0-9"),
    ("a.localhost", "localhost"),
    ("a" * 64 + ".com", "longer than 63"),
    (".".join(["a" * 60] * 5), "longer than 253"),
])
def test_invalid_hostnames(bad, why):
    with pytest.raises(InvalidHostname, match=why):
        proxy.validate_hostname(bad)


def test_base_domain_leaves_room_for_a_service_name():
    long = ".".join(["a" * 42] * 5)  # 214 characters: a valid hostname, too long a base
    proxy.validate_hostname(long)
    with pytest.raises(InvalidHostname, match="too long"):
        proxy.validate_base_domain(long)
    assert proxy.validate_base_domain("EU1.Example.com") == "eu1.example.com"


def test_tls_and_bind_settings():
    assert proxy.validate_tls("acme") == "acme" and proxy.validate_tls("internal") == "internal"
    with pytest.raises(proxy.OpsError):
        proxy.validate_tls("off")
    assert proxy.validate_bind("127.0.0.1") == "127.0.0.1"
    assert proxy.validate_bind("::") == "::"
    with pytest.raises(proxy.OpsError):
        proxy.validate_bind("example.com")


def test_state_roundtrip_and_forgiving_parse():
    st = ProxyState("a.havsh.test", "internal", {"px-a": ["erp.example.com", "b.example.com"]})
    again = ProxyState.from_json(st.to_json())
    assert again == st
    assert st.to_json() == again.to_json()  # stable text: a no-op compares equal
    # A hand edit or a newer havsh: bad entries are dropped, never rendered.
    doc = {"format": 9, "base_domain": "bad domain", "tls": "weird", "extra": 1,
           "hostnames": {"px-a": ["ok.example.com", "bad host", "ok.example.com"],
                         "Bad_Slug": ["x.example.com"], "px-b": "not-a-list"}}
    parsed = ProxyState.from_json(json.dumps(doc))
    assert parsed == ProxyState(None, "acme", {"px-a": ["ok.example.com"]})
    with pytest.raises(proxy.ProxyError):
        ProxyState.from_json("{not json")


def test_routes_platform_custom_and_clashes():
    st = ProxyState("a.havsh.test", "internal", {
        "px-a": ["erp.example.com"],
        # px-b took px-c's platform name as a custom one: it stays px-b's.
        "px-b": ["px-c.a.havsh.test", "erp.example.com"],
        "gone": ["old.example.com"],
    })
    routes = proxy.plan_routes(st, ["px-c", "px-b", "px-a"])
    by = {r.slug: r.hostnames for r in routes}
    assert by["px-a"] == ("px-a.a.havsh.test", "erp.example.com")
    assert by["px-b"] == ("px-b.a.havsh.test", "px-c.a.havsh.test")  # erp: px-a was first
    assert "px-c" not in by  # its only name is taken
    assert "gone" not in by  # no container: no route
    every = [h for r in routes for h in r.hostnames]
    assert len(every) == len(set(every))
    # No base domain and no custom hostnames: no routes at all.
    assert proxy.plan_routes(ProxyState(), ["px-a"]) == []


def test_primary_hostname_and_url():
    st = ProxyState("a.havsh.test", "acme", {"px-a": ["erp.example.com"]})
    assert proxy.service_url(st, "px-a") == "https://erp.example.com"
    assert proxy.service_url(st, "px-b") == "https://px-b.a.havsh.test"
    assert proxy.service_url(ProxyState(), "px-b") == ""
    assert proxy.service_url(None, "px-b") == ""


def test_caddyfile_internal_serves_http_and_https():
    st = ProxyState("a.havsh.test", "internal", {"px-a": ["erp.example.com"]})
    text = proxy.render_caddyfile(st, ["px-a", "px-b"])
    assert text.startswith("# Generated by havsh")
    assert ("http://px-a.a.havsh.test, https://px-a.a.havsh.test, http://erp.example.com, "
            "https://erp.example.com {") in text
    assert "http://px-b.a.havsh.test, https://px-b.a.havsh.test {" in text
    assert text.count("\ttls internal") == 2
    ws = text.index("@websocket path /websocket /websocket/*")
    # /websocket: 8072 (prefork), else 8069 (threaded mode serves it there); the rest: 8069.
    assert (ws < text.index("reverse_proxy havsh-px-a:8072 havsh-px-a:8069 {")
            < text.index("lb_policy first") < text.index("reverse_proxy havsh-px-a:8069\n"))
    assert "skip_install_trust" in text
    assert text == proxy.render_caddyfile(st, ["px-b", "px-a", "px-a"])  # deterministic


def test_caddyfile_acme_is_https_only():
    st = ProxyState("eu1.example.com", "acme", {})
    text = proxy.render_caddyfile(st, ["shop"])
    assert "\nshop.eu1.example.com {" in text
    assert "http://" not in text and "tls internal" not in text


def test_caddyfile_without_routes_is_only_global_options():
    text = proxy.render_caddyfile(ProxyState(), ["px-a"])
    assert "reverse_proxy" not in text and "{\n" in text


def test_proxy_mode_in_odoo_conf():
    conf = odoo.render_conf("px_a", {"workers": "2"})
    out = proxy.with_proxy_mode(conf)
    parsed = configparser.ConfigParser()
    parsed.read_string(out)
    assert parsed["options"]["proxy_mode"] == "True"
    assert parsed["options"]["workers"] == "2"
    assert proxy.with_proxy_mode(out) == out  # once
    # A user's explicit choice stays, and is not doubled (configparser would refuse it).
    mine = odoo.render_conf("px_a", {"proxy_mode": "False"})
    assert proxy.with_proxy_mode(mine) == mine


def test_dns_record():
    assert proxy.dns_record("erp.example.com", "203.0.113.5")["type"] == "A"
    rec = proxy.dns_record("erp.example.com", "2001:db8::5")
    assert rec["type"] == "AAAA" and rec["name"] == "erp.example.com."
    assert "not a public" in rec["note"]  # documentation ranges are not global
    assert proxy.dns_record("erp.example.com", "8.8.8.8")["note"] == ""
    assert "public address" in proxy.dns_record("erp.example.com", None)["value"]


def test_model_fields_roundtrip():
    h = Host("h1", "10.0.0.1", base_domain="a.example.com", tls="internal",
             proxy_bind="10.0.0.1")
    assert from_dict(Host, to_dict(h)) == h
    assert Host("h2", "10.0.0.2").proxy_bind == "0.0.0.0"
    s = Service("px-a", "h1", ServiceType.TEST, "17.0", "odoo:17.0",
                url="https://erp.example.com", hostnames=["erp.example.com"])
    assert from_dict(Service, to_dict(s)).hostnames == ["erp.example.com"]
    old = to_dict(s)
    del old["hostnames"]  # a record written before hostnames existed
    assert from_dict(Service, old).hostnames == []


def _attrs(image="caddy:2", cmd=None, bind="0.0.0.0", mounts=None):
    return {
        "Config": {"Image": image, "Cmd": cmd if cmd is not None else list(proxy.COMMAND)},
        "HostConfig": {"PortBindings": {
            "80/tcp": [{"HostIp": bind, "HostPort": "80"}],
            "443/tcp": [{"HostIp": bind, "HostPort": "443"}],
            "443/udp": [{"HostIp": bind, "HostPort": "443"}]}},
        "Mounts": mounts if mounts is not None else [
            {"Destination": "/data", "Name": proxy.DATA_VOLUME},
            {"Destination": "/config", "Name": proxy.CONFIG_VOLUME}],
    }


def test_an_existing_proxy_is_kept_only_when_it_matches_the_host_settings():
    host = Host("h1", "10.0.0.1")  # caddy:2 on 0.0.0.0
    assert proxy._mismatch(_attrs(), host) is None
    # Docker may report the any-address as "": the same binding.
    assert proxy._mismatch(_attrs(bind=""), host) is None
    assert "image" in proxy._mismatch(_attrs(image="caddy:2.7"), host)
    assert "command" in proxy._mismatch(_attrs(cmd=["caddy", "run"]), host)
    assert "ports" in proxy._mismatch(_attrs(bind="127.0.0.1"), host)
    assert proxy._mismatch(_attrs(bind="127.0.0.1"),
                           Host("h1", "10.0.0.1", proxy_bind="127.0.0.1")) is None
    assert proxy._mismatch(_attrs(mounts=[]), host) == "volumes"
