"""GPU support: parsers of NVIDIA tool output, MIG layout rules, the node check script and the
device plugin's sharing config.

parsers.py, mig.py and nodecheck.py are standard library only (nodecheck.py and parsers.py are
copied to GPU nodes as they are); sharing.py is kubeforge-side.
"""
