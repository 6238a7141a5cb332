"""llama.cpp: one loaded model, jobs decoded together in batches, and what the machine offers.

Nothing here imports llama_cpp at package level: `hardware` is usable without loading it.
"""
