"""The networks and what they are made of: the model registry and architectures (models), the number
format a device computes in (precision), the layer table and block chain (architecture), what the 48x48
input leaves unused (reach), the conv arithmetic walk (shapes), and `structure.structure_of(arch)`, the
one call that returns all of it for a page or the report.

May import: core.
"""
