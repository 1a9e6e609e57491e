"""Run and experiment reports (HTML + inline SVG, offline). Reads what the processes wrote.

Imports only `rods` and the standard library: no torch, so a report builds anywhere.
"""
