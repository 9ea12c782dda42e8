"""The research records: the screens of the label-efficiency and dual-head work whose
tables docs/ still shows (``python -m benchmarks.research.<name>``; benchmarks/README.md
says which section each backs). They may import the harness and the reproductions; nothing
imports them but each other and their tests.
"""
