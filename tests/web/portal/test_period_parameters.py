"""Every period a request names is a month the engine can bill (engine/periods.py `Period.parse`): one out of
range is a 400 with a message, never a 500 (issue 13, item 7)."""

from __future__ import annotations

import pytest

from .conftest import CUSTOMER


@pytest.mark.parametrize("period", ["9999-12", "0000-01", "1899-12", "3000-01"])
def test_a_period_out_of_range_is_a_clear_refusal(signed_in_client, period):
    client = signed_in_client("finance")
    page = client.get(f"/dashboard/{CUSTOMER}?period={period}")
    assert page.status_code == 400 and "is not a month between 1900-01 and 2999-12" in page.get_data(as_text=True)
    data = client.get(f"/dashboard/{CUSTOMER}/data?period={period}")
    assert data.status_code == 400 and "is not a month between" in data.get_json()["error"]
    compare = client.get(f"/contracts/{CUSTOMER}/compare?period={period}")
    assert compare.status_code == 400 and "is not a month between" in compare.get_data(as_text=True)


def test_a_customer_user_is_refused_alike(signed_in_client):
    page = signed_in_client("customer_finance").get(f"/dashboard/{CUSTOMER}/data?period=9999-12")
    assert page.status_code == 400 and "is not a month between" in page.get_json()["error"]
