"""Sphinx configuration for xr_d2ar (MyST Markdown pages, API reference from docstrings)."""

from __future__ import annotations

import xr_d2ar

project = "xr_d2ar"
author = "xr_d2ar developers"
release = xr_d2ar.__version__
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
html_theme = "furo"
html_title = "xr_d2ar"
suppress_warnings = ["myst.header"]
