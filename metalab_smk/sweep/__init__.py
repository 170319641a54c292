"""Host-side orchestration: metalab.run, packing, locks, status, detached heads.

See docs/architecture.md for the layers and what each may import.
"""
