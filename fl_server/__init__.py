"""The Flower ServerApp: strategy from config, server-side evaluation, checkpoints.

Importing the package pulls in nothing heavy; ``fl_server.server_app`` holds the app.
"""
