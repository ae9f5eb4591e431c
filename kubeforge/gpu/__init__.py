"""GPU node facts (parsers of NVIDIA tool output), MIG layout rules and the node check script.

Standard library only: parsers.py and nodecheck.py are copied to GPU nodes as they are.
"""
