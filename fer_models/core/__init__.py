"""Facts and plumbing every other part shares: the classes and face size (constants), atomic file
writes (files) and the one-line-error argument parser every command uses (arguments).

Imports nothing of fer_models: it is the bottom layer.
"""
