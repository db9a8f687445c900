"""What a model looks at and what its filters respond to: Captum attributions (attributions), feature
maps, filter rankings and activation maximisation (features), the precomputed filter atlas (atlas),
maps as pictures (pictures), and how a model many sessions share is used safely (shared).

May import: runs, nets, datasets, faces, core. Independent of evaluation.
"""
