"""illumos / OmniOS backend: etherstub + two VNICs + libdlpi (DESIGN.md, OS backends).

* :mod:`.libdlpi` — cffi ABI-mode binding of ``libdlpi.so.1``
* :mod:`.commands` — dladm, ifconfig, route, routeadm, netstat wrappers
* :mod:`.names` — datalink names illumos accepts
* :mod:`.dlpi_device` — the port's frame device (two libdlpi handles)
* :mod:`.link` — the port's link configuration (ifconfig, route, dladm)
* :mod:`.tap` — :class:`IllumosTap` (device + link) and :class:`IllumosTapFactory`
* :mod:`.preflight` — :func:`run_preflight` (``ztone-cli doctor``, daemon start)

Real OmniOS has not been tested yet; the OmniOS simulation in ``tests/illumos_sim``
runs this code unchanged on Linux.
"""

from __future__ import annotations

from ztone.osdep.illumos.preflight import Problem, run_preflight
from ztone.osdep.illumos.tap import IllumosTap, IllumosTapFactory

__all__ = ["IllumosTap", "IllumosTapFactory", "Problem", "run_preflight"]
