"""The time-zone menu: chosen and common zones first, every zone once, grouped by region."""
from __future__ import annotations

import zoneinfo

from node.timezones import zone_menu


def test_the_chosen_zone_leads_then_the_common_ones_then_every_region():
    menu = zone_menu("Asia/Kathmandu")
    label, common = menu[0]
    assert label == "Common" and common[0] == "Asia/Kathmandu"
    assert "Europe/Berlin" in common and len(common) < 40
    regions = [label for label, _ in menu[1:]]
    assert regions[:3] == ["Europe", "Americas", "Africa"] and regions[-1] == "Other"
    for region, zones in menu[1:]:
        prefix = {"Americas": "America", "Indian Ocean": "Indian"}.get(region, region)
        if region != "Other":
            assert all(z.startswith(prefix + "/") for z in zones), region


def test_every_known_zone_is_offered_exactly_once():
    offered = [z for _, zones in zone_menu("Europe/London") for z in zones]
    assert len(offered) == len(set(offered))
    assert set(offered) == zoneinfo.available_timezones()


def test_an_unknown_first_zone_is_left_out():
    assert "Mars/Olympus_Mons" not in zone_menu("Mars/Olympus_Mons")[0][1]
