"""The time-zone menu: the zones people here are likely to mean first, then every zone by region.

A flat list of ~600 IANA names is unusable on a phone; the menu starts with the
zone already chosen (or the node's usual one) and the common zones of the
regions the node's users live in, then groups the rest under their region.
"""
from __future__ import annotations

import functools
import zoneinfo

from node.i18n import N_

# Zones most meetings are held in, one or two per populous region.
COMMON = (
    "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
    "Europe/Madrid", "Europe/Rome", "Europe/Amsterdam", "Europe/Vienna", "Europe/Zurich",
    "Europe/Warsaw", "Europe/Athens", "Europe/Istanbul", "America/New_York",
    "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Toronto",
    "America/Mexico_City", "America/Bogota", "America/Lima", "America/Santiago",
    "America/Argentina/Buenos_Aires", "America/Sao_Paulo", "Africa/Lagos", "Africa/Nairobi",
    "Africa/Johannesburg", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney",
    "Pacific/Auckland", "UTC",
)
# IANA's region prefixes; the labels are translated where the menu is shown.
REGIONS = ("Europe", "America", "Africa", "Asia", "Australia", "Pacific", "Atlantic",
           "Indian", "Antarctica")
LABELS = {"Common": N_("Common"), "Europe": N_("Europe"), "America": N_("Americas"),
          "Africa": N_("Africa"), "Asia": N_("Asia"), "Australia": N_("Australia"),
          "Pacific": N_("Pacific"), "Atlantic": N_("Atlantic"), "Indian": N_("Indian Ocean"),
          "Antarctica": N_("Antarctica"), "Other": N_("Other")}


@functools.cache
def _by_region() -> tuple[tuple[str, tuple[str, ...]], ...]:
    zones = sorted(zoneinfo.available_timezones())
    grouped = [(region, tuple(z for z in zones if z.startswith(region + "/")))
               for region in REGIONS]
    other = tuple(z for z in zones if z.split("/", 1)[0] not in REGIONS)
    return tuple((region, names) for region, names in [*grouped, ("Other", other)] if names)


def zone_menu(first: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """(group label, zones) in menu order: ``first`` and the common zones, then by region;
    the label is English, to be translated for display (`LABELS`).

    Each zone appears once; a zone this machine does not know is left out.
    """
    known = zoneinfo.available_timezones()
    common = tuple(dict.fromkeys(z for z in (first, *COMMON) if z in known))
    return [(LABELS["Common"], common),
            *((LABELS[region], tuple(z for z in names if z not in common))
              for region, names in _by_region())]
