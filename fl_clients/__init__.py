"""The Flower ClientApp of a region: local training and evaluation on its own env.

``fl_clients.client_app`` holds the app, ``fl_clients.trainer`` the logic and
``fl_clients.worker`` the warm ClientApp executor of the Deployment Engine.
"""
