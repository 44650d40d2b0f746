"""Command-line entry points (``python -m scripts.<name>``); no library code imports them."""
