"""Training a run folder: the command line and its settings (command), the data splits (splits), the
model, optimizer, EMA and teacher (components), the learning-rate schedule and per-step seeds
(schedule), the state that makes a run resumable (state), DDP helpers (distributed), the epoch loop
(loop), and shipping a finished run as a reference run (ship).

May import: explain, evaluation, runs, nets, datasets, faces, core. Independent of media.
"""
