"""Outputs written once for every model kind: plots, the drawn graph, files and JSON."""
