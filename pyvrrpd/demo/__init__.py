"""The main job's demo: an LVS-DR director pair run by pyvrrpd in network namespaces.

``python -m pyvrrpd.demo`` builds two directors, two web and two DNS real servers and a
client on one bridge, then narrates (with measured timings) the election, round-robin and
source-hash balancing through the VIP, a real server failing, the master being killed and
the old master coming back. Without IPVS in the running kernel it re-runs itself in a VM
(``scripts/vm-run``) or, failing that, shows the VRRP part alone.
"""
