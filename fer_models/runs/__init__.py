"""The run folder contract and everything that reads or manages run folders: file names and validated
reads (folder), training settings as config.json records them (settings) and named recipes (recipes),
checkpoints (checkpoints), the registry of runs and the README's models table (registry), training
jobs launched from the dashboard (jobs) and the process checks that keep signals on our own trainers
(processes). Run folders are untrusted input: every read here validates what it returns.

May import: nets, datasets, faces, core. The registry, settings, recipes and folder stay torch-free.
"""
