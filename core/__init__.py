"""Zero Install Admin without a screen: manifests, stores, verification, the command line.

Nothing in this package may import Qt (tests/test_layering.py keeps it so).
"""
