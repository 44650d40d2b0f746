"""Local training of the regional agents: MaskablePPO, FedProx, baselines, evaluation.

Imports torch and Stable-Baselines3, never flwr (the federation sits above).
"""
