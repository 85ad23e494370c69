"""mtalign: when do surprising RL results for language models hold?

Measure model-task alignment (the base model's pass@k), run every claim's RL variant on a grid of
models x tasks, and report which claims hold where. See STUDY.md in the project docs and README.md.
"""

__version__ = "0.1.0"
