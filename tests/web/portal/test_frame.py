"""The portal's frame (issue #14 item 13): the current area highlighted on every page of it, the role badge
naming the customer as people know it, and an icon at /favicon.ico rather than a 404."""

from __future__ import annotations

import re

CURRENT = re.compile(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>')


def current_areas(html: str) -> list[str]:
    return [title for _, title in CURRENT.findall(html)]


def test_backtest_and_compare_are_in_the_contracts_area(signed_in_client):
    client = signed_in_client("finance")
    for path in ("/contracts/acme-health/backtest", "/contracts/acme-health/compare", "/contracts/acme-health"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert current_areas(response.get_data(as_text=True)) == ["Contracts"], path


def test_each_area_alone_is_current_on_its_own_page(signed_in_client):
    client = signed_in_client("finance")
    for path, title in (("/invoices", "Invoices"), ("/reconciliation", "Reconciliation"), ("/dashboard", "Dashboard")):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert current_areas(response.get_data(as_text=True)) == [title], path
    assert current_areas(client.get("/").get_data(as_text=True)) == []


def test_the_badge_names_the_customer_by_its_contract_name(signed_in_client):
    html = signed_in_client("customer_finance").get("/").get_data(as_text=True)
    badge = re.search(r'<span class="badge">(.*?)</span>\s*<form', html, re.DOTALL).group(1)
    assert "Acme Health Ltd" in badge        # contracts/acme-health.pricing: customer "Acme Health Ltd"
    assert "acme-health" not in badge
    other = signed_in_client("other_customer").get("/").get_data(as_text=True)
    assert "Acme Health Ltd" not in other and "Northwind" in re.search(r'<span class="badge">(.*?)</span>\s*<form',
                                                                       other, re.DOTALL).group(1)
    staff = signed_in_client("finance").get("/").get_data(as_text=True)
    assert re.search(r'<span class="badge"><span class="badge-role">finance</span></span>', staff)


def test_favicon_is_served_to_anyone(portal_client, signed_in_client):
    for client in (portal_client, signed_in_client("finance")):
        response = client.get("/favicon.ico")
        assert response.status_code == 200
        assert response.mimetype == "image/vnd.microsoft.icon"
        assert response.data[:4] == b"\x00\x00\x01\x00"      # an ICO header
    login = portal_client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/favicon.ico">' in login
