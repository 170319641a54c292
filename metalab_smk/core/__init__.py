"""The definition layer (pure): identity, params, seeds, operations, experiments, plans.

See docs/architecture.md for the layers and what each may import.
"""
