"""Command-line entry points (``python -m scripts.<name>``); no library imports them."""
