"""Composes the World-Gymnast packages: the `gymnast` CLI, launch files and parameters."""
